//! The side list: every signal with its last value, a filter, and a box to chart it or not. It lists
//! one page of matches at a time, so a board of thousands of signals stays quick.

use crate::ui::axis::format_value;
use crate::ui::board::{Board, SeriesHandle};
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
        <nav class="signal-list">
            <h2>"Signals"</h2>
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
                        let value = move || last.get().map(|(_, v)| format_value(v)).unwrap_or_default();
                        let name = handle.name.clone();
                        let row_name = name.clone();
                        let checked = {
                            let name = name.clone();
                            move || charted.with(|c| c.contains(&name))
                        };
                        view! {
                            <li data-signal=row_name>
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
        </nav>
    }
}
