//! Keeps the board fed (browser only): the clock, history for each view at the charts' resolution, live
//! points from `/api/live`, and after any disconnect a backfill of what was committed meanwhile, so a
//! chart never shows a false gap. Also mirrors the view into the address bar and notices a hidden tab.

use crate::api::read_history;
use crate::model::{LiveMessage, MINUTE};
use crate::ui::board::{Board, Connection};
use crate::ui::browser;
use crate::ui::view::{View, Window};
use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message, State};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// A backfill starts this long before the newest point seen, for producers whose clocks lag a little.
const BACKFILL_OVERLAP_MS: i64 = MINUTE;
/// A live window's reads reach this far past the browser's clock: producers' clocks may run ahead.
const AHEAD_MS: i64 = 5 * MINUTE;
/// A live window ends this far past the clock, one tick: a point that arrives before the next tick is
/// already inside it, drawn on arrival (on top of the picture), not at the next tick.
const LEAD_MS: i64 = 1_000;

pub fn start(board: Board) {
    if let Some(root) = document().document_element() {
        // Lets tests (and scripts) know the page is interactive.
        let _ = root.set_attribute("data-hydrated", "true");
    }
    let tick = move || {
        let now = browser::now() + LEAD_MS;
        board.now.set(now);
        if let Window::Last(span) = board.view.with_untracked(|v| v.window) {
            board.trim_before(now - span);
        }
        let visible = browser::tab_visible();
        if board.visible.get_untracked() != visible {
            board.visible.set(visible);
        }
        // For the memory soak test (and anyone watching): the WebAssembly heap's size.
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute(
                "data-wasm-memory",
                &browser::wasm_memory_bytes().to_string(),
            );
        }
    };
    tick();
    spawn_local(async move {
        loop {
            TimeoutFuture::new(1_000).await;
            tick();
        }
    });
    // A shown tab catches up at once, not at the next tick.
    let _ = window_event_listener_untyped("visibilitychange", move |_| tick());
    Effect::new(move |_| browser::replace_query(&board.view.with(View::to_query)));
    load_views(board);
    crate::ui::health::start(board.health);
    spawn_local(stay_connected(board));
    spawn_local(async move {
        loop {
            crate::ui::alerts::refresh(board).await;
            TimeoutFuture::new(crate::ui::alerts::REFRESH_MS).await;
        }
    });
}

/// Reads history whenever the window or the charted signals change, decimated to four points per
/// pixel column of the charts. Only the newest request's answer is applied.
fn load_views(board: Board) {
    let wanted = Memo::new(move |_| (board.view.with(|v| v.window), board.charted.get()));
    let generation = StoredValue::new(0u64);
    Effect::new(move |_| {
        let (window, names) = wanted.get();
        generation.update_value(|g| *g += 1);
        let current = generation.get_value();
        if names.is_empty() {
            return;
        }
        let (from, to) = board.view.with_untracked(|v| v.bounds(browser::now()));
        let to = match window {
            Window::Last(_) => to + AHEAD_MS,
            Window::Fixed { .. } => to,
        };
        let max_points = 4 * browser::charts_width() as usize;
        spawn_local(async move {
            match read_history(from, to, Some(names), Some(max_points)).await {
                Ok(history) if generation.get_value() == current => {
                    board.apply_history(history, false, max_points)
                }
                Ok(_) => {} // a newer view was asked for meanwhile
                Err(e) => leptos::logging::warn!("history read failed: {e}"),
            }
        });
    });
}

async fn stay_connected(board: Board) {
    let mut failures = 0;
    loop {
        let error = follow(board).await;
        if board.connection.get_untracked() == Connection::Live {
            failures = 0;
        }
        failures += 1;
        board.health.reconnects.update_value(|n| *n += 1);
        leptos::logging::warn!("live feed lost ({error}); reconnecting");
        board.connection.set(Connection::Reconnecting);
        // 250 ms, doubling, at most 4 s: quick after a blip, gentle on a server that is down.
        TimeoutFuture::new(250 << failures.min(4)).await;
    }
}

/// One connection's life: subscribe, backfill, then apply live messages until the socket ends.
async fn follow(board: Board) -> String {
    let socket = match WebSocket::open(&live_url()) {
        Ok(socket) => socket,
        Err(e) => return e.to_string(),
    };
    // Subscribe before reading history: whatever is committed in between arrives live, and the board
    // merges the overlap.
    while matches!(socket.state(), State::Connecting) {
        TimeoutFuture::new(20).await;
    }
    if !matches!(socket.state(), State::Open) {
        return "the live feed refused the connection".into();
    }
    // A live window gets what it missed; a paused one is redrawn from history when it moves.
    let view = board.view.get_untracked();
    let names = board.charted_names();
    if let (Window::Last(span), false) = (view.window, names.is_empty()) {
        let now = browser::now();
        let from = board
            .last_seen()
            .map_or(now - span, |t| (t - BACKFILL_OVERLAP_MS).max(now - span));
        let max_points = 4 * browser::charts_width() as usize;
        match read_history(from, now + AHEAD_MS, Some(names), Some(max_points)).await {
            Ok(missed) => board.apply_history(missed, true, max_points),
            Err(e) => return format!("history: {e}"),
        }
    }
    board.connection.set(Connection::Live);
    let (_, mut incoming) = socket.split();
    while let Some(message) = incoming.next().await {
        match message {
            Ok(Message::Text(text)) => match serde_json::from_str::<LiveMessage>(&text) {
                Ok(live) => board.merge_live(live),
                Err(e) => leptos::logging::warn!("unreadable live message: {e}"),
            },
            Ok(Message::Bytes(_)) => {}
            Err(e) => return e.to_string(),
        }
    }
    "the server closed the live feed".into()
}

fn live_url() -> String {
    let location = window().location();
    let host = location.host().unwrap_or_default();
    let secure = location.protocol().is_ok_and(|p| p == "https:");
    format!("{}://{host}/api/live", if secure { "wss" } else { "ws" })
}
