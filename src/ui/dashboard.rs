//! The page: the signal list, the connection state, and a chart per signal.

use crate::api::list_signals;
use crate::ui::board::Board;
use crate::ui::chart::Chart;
use crate::ui::signal_list::SignalList;
use leptos::prelude::*;

#[component]
pub fn Dashboard() -> impl IntoView {
    // Resolved on the server and shipped inside the page, so hydration starts from the same list.
    let signals = Resource::new(|| (), |_| list_signals());
    view! {
        <Suspense fallback=|| view! { <p class="status">"Loading signals…"</p> }>
            {move || Suspend::new(async move {
                match signals.await {
                    Ok(infos) => view! { <BoardView board=Board::new(infos)/> }.into_any(),
                    Err(e) => view! { <p class="status error">"Cannot list signals: " {e.to_string()}</p> }
                        .into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn BoardView(board: Board) -> impl IntoView {
    // Effects run only in the browser: this starts the live feed once the page is hydrated.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| crate::ui::live_client::start(board));
    let connection = board.connection;
    view! {
        <header class="topbar">
            <h1>"Signalboard"</h1>
            <span id="connection" class="connection" data-state=move || connection.get().key()>
                {move || connection.get().label()}
            </span>
        </header>
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
                <For
                    each=move || board.series.get()
                    key=|handle| handle.name.clone()
                    children=move |handle| view! { <Chart handle now=board.now/> }
                />
            </section>
        </div>
    }
}
