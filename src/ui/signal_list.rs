//! The side list: every signal with its last value, a filter, and a box to chart it or not. It lists
//! one page of matches at a time, so a board of thousands of signals stays quick.

use crate::ui::axis::format_value;
use crate::ui::board::{Board, SeriesHandle};
use crate::ui::chart::clock_time;
use crate::ui::gaps::stale_since;
use leptos::prelude::*;

/// Rows listed at once; the filter narrows the rest.
const PAGE: usize = 100;

#[component]
pub fn SignalList(board: Board) -> impl IntoView {
    let filter = RwSignal::new(String::new());
    let charted = board.charted;
    let matching = move || {
        let needle = filter.get().to_lowercase();
        board.series.with(|all| {
            all.iter()
                .filter(|h| h.name.to_lowercase().contains(&needle))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let rows = move || matching().into_iter().take(PAGE).collect::<Vec<_>>();
    let more = move || {
        let n = matching().len();
        (n > PAGE).then(|| format!("{} more: narrow the filter", n - PAGE))
    };
    let toggle = move |name: String| {
        // Read before the update borrows the view; the first choice starts from what is on screen.
        let shown = board.charted_names();
        let showing = shown.contains(&name);
        board.view.update(|v| {
            let mut chosen = v.signals.clone().unwrap_or(shown);
            if showing {
                chosen.retain(|c| *c != name);
            } else {
                chosen.push(name);
            }
            v.signals = Some(chosen);
        });
    };
    view! {
        // On a phone the charts come first and the list folds away behind its heading; the box
        // that unfolds it works before (and without) the WebAssembly.
        <nav class="signal-list">
            <input type="checkbox" id="signal-list-open" class="fold"/>
            <h2><label for="signal-list-open">"Signals"</label></h2>
            <div class="fold-body">
                <input
                    type="search"
                    class="filter"
                    placeholder="Filter signals"
                    aria-label="Filter signals"
                    prop:value=filter
                    on:input=move |ev| filter.set(event_target_value(&ev))
                />
                <ul>
                    <For
                        each=rows
                        key=|handle| handle.name.clone()
                        children=move |handle: SeriesHandle| {
                            let last = handle.last;
                            let cadence = handle.cadence;
                            let value = {
                                let last = last.clone();
                                move || last.get().map(|(_, v)| format_value(v)).unwrap_or_default()
                            };
                            // Silent for several of its usual steps: greyed, and since when on hover.
                            let stale = move || {
                                let (t, _) = last.get()?;
                                stale_since(t, cadence.get().usual(), board.now.get())
                            };
                            let name = handle.name.clone();
                            let row_name = name.clone();
                            let checked = {
                                let name = name.clone();
                                move || charted.with(|c| c.contains(&name))
                            };
                            view! {
                                <li
                                    data-signal=row_name
                                    class:stale={
                                        let stale = stale.clone();
                                        move || stale().is_some()
                                    }
                                    data-stale-since=stale.clone()
                                    title=move || stale().map(|since| format!("stale: no point since {}", clock_time(since)))
                                >
                                    <label>
                                        <input
                                            type="checkbox"
                                            checked=checked.clone()
                                            prop:checked=checked
                                            on:change={
                                                let name = name.clone();
                                                move |_| toggle(name.clone())
                                            }
                                        />
                                        <span class="name">{name}</span>
                                    </label>
                                    <span class="value">{value}</span>
                                </li>
                            }
                        }
                    />
                </ul>
                <p class="more">{more}</p>
            </div>
        </nav>
    }
}
