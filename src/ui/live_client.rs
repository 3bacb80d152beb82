//! Keeps the board fed (browser only): history for the window, then live points from `/api/live`, and
//! after any disconnect, a backfill of what was committed meanwhile, so a chart never shows a false gap.

use crate::api::read_history;
use crate::model::{LiveMessage, DASHBOARD_WINDOW_MS};
use crate::ui::board::{Board, Connection};
use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message, State};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// A backfill starts this long before the newest point seen, for producers whose clocks lag a little.
const BACKFILL_OVERLAP_MS: i64 = 60_000;

pub fn start(board: Board) {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        // Lets tests (and scripts) know the page is interactive.
        let _ = root.set_attribute("data-hydrated", "true");
    }
    let tick = move || {
        let now = js_sys::Date::now() as i64;
        board.now.set(now);
        board.trim_before(now - DASHBOARD_WINDOW_MS);
    };
    tick();
    spawn_local(async move {
        loop {
            TimeoutFuture::new(1_000).await;
            tick();
        }
    });
    spawn_local(stay_connected(board));
}

async fn stay_connected(board: Board) {
    let mut failures = 0;
    loop {
        let error = follow(board).await;
        if board.connection.get_untracked() == Connection::Live {
            failures = 0;
        }
        failures += 1;
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
    let now = js_sys::Date::now() as i64;
    let window_start = now - DASHBOARD_WINDOW_MS;
    let from = board.last_seen().map_or(window_start, |t| {
        (t - BACKFILL_OVERLAP_MS).max(window_start)
    });
    // The upper bound admits what producers may stamp a little ahead of this browser's clock.
    match read_history(from, now + 5 * 60_000, None, None).await {
        Ok(missed) => board.merge_history(missed),
        Err(e) => return format!("history: {e}"),
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
    let location = web_sys::window().map(|w| w.location());
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_default();
    let secure = location
        .and_then(|l| l.protocol().ok())
        .is_some_and(|p| p == "https:");
    format!("{}://{host}/api/live", if secure { "wss" } else { "ws" })
}
