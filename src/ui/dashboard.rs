//! The page: the top bar with the connection state, the toolbar, the firing alerts, the signal list,
//! and the charts (one per charted signal, or one with all of them overlaid).

use crate::api::{open_view, Opening};
use crate::ui::alerts::FiringBanner;
use crate::ui::board::Board;
use crate::ui::chart::Chart;
use crate::ui::health::HealthPanel;
use crate::ui::signal_list::SignalList;
use crate::ui::toolbar::Toolbar;
use crate::ui::view::View;
use leptos::prelude::*;

#[component]
pub fn Dashboard() -> impl IntoView {
    // The view comes from the URL, on the server and again in the browser, so both render the same.
    let view = View::from_query(&page_query());
    // Resolved on the server and shipped inside the page, so hydration starts from the same list; the
    // charts' pictures come as markup, visible before the WebAssembly has loaded.
    let opening = Resource::new(|| (), {
        let view = view.clone();
        move |_| open_view(view.clone())
    });
    view! {
        <Suspense fallback=|| view! { <p class="status">"Loading signals…"</p> }>
            {move || {
                let view = view.clone();
                Suspend::new(async move {
                    match opening.await {
                        Ok(Opening { signals, pictures }) => {
                            view! { <BoardView board=Board::new(signals, view) pictures/> }
                                .into_any()
                        }
                        Err(e) => view! { <p class="status error">"Cannot list signals: " {e.to_string()}</p> }
                            .into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// The page's query string: on the server from the request, in the browser from its location.
fn page_query() -> String {
    #[cfg(feature = "ssr")]
    let query = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.uri.query().map(str::to_owned))
        .unwrap_or_default();
    #[cfg(not(feature = "ssr"))]
    let query = window().location().search().unwrap_or_default();
    query
}

#[component]
fn BoardView(board: Board, pictures: Vec<(String, String)>) -> impl IntoView {
    let pictures = StoredValue::new(pictures);
    let picture = move |name: &str| {
        pictures.with_value(|all| {
            all.iter()
                .find(|(n, _)| n == name)
                .map(|(_, svg)| svg.clone())
                .unwrap_or_default()
        })
    };
    // Effects run only in the browser: this starts the clock, history reads and the live feed once
    // the page is hydrated.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| crate::ui::live_client::start(board));
    let connection = board.connection;
    let view = board.view;
    let bounds = move || view.with(|v| v.bounds(board.now.get()));
    // Rebuilt only when the layout or the set of charts changes, not when the window moves.
    let overlay = Memo::new(move |_| view.with(|v| v.overlay));
    let charts = move || {
        if overlay.get() {
            let handles = board.charted_handles();
            (!handles.is_empty())
                .then(|| view! { <Chart handles board picture=picture("overlay")/> })
                .into_any()
        } else {
            view! {
                <For
                    each=move || board.charted_handles()
                    key=|handle| handle.name.clone()
                    children=move |handle| {
                        let picture = picture(&handle.name);
                        view! { <Chart handles=vec![handle] board picture/> }
                    }
                />
            }
            .into_any()
        }
    };
    view! {
        <div
            class="app"
            data-theme=move || view.with(|v| v.theme.key())
            data-live=move || view.with(|v| v.is_live()).to_string()
            data-from=move || bounds().0
            data-to=move || bounds().1
        >
            <header class="topbar">
                <h1>"Signalboard"</h1>
                <span id="connection" class="connection" data-state=move || connection.get().key()>
                    {move || connection.get().label()}
                </span>
                <HealthPanel health=board.health/>
            </header>
            <Toolbar board/>
            <FiringBanner board/>
            <div class="layout">
                <SignalList board/>
                <section class="charts">
                    <Show when=move || board.series.with(|s| s.is_empty())>
                        <p class="status">
                            "No signals yet. Send one: "
                            <code>
                                "curl -X POST localhost:3000/api/telemetry -H 'content-type: application/json' -d '{\"signals\":{\"boiler.temp\":71.5}}'"
                            </code>
                        </p>
                    </Show>
                    {charts}
                </section>
            </div>
        </div>
    }
}
