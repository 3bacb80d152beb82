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
    // One pass over every signal a keystroke (with 100,000 of them, the list is what it costs):
    // the page of rows and how many match, shared by the rows and the count below them.
    let matching = Memo::new(move |_| {
        let needle = filter.get().to_lowercase();
        board.series.with(|all| {
            let mut page = Vec::with_capacity(PAGE);
            let mut count = 0;
            for handle in all.iter().filter(|h| contains_folded(&h.name, &needle)) {
                if page.len() < PAGE {
                    page.push(handle.clone());
                }
                count += 1;
            }
            Matches { page, count }
        })
    });
    let rows = move || matching.with(|m| m.page.clone());
    let more = move || {
        let n = matching.with(|m| m.count);
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

/// A page of the signals that match the filter, and how many match in all.
struct Matches {
    page: Vec<SeriesHandle>,
    count: usize,
}

/// Equal when they list the same signals and count: the rows are keyed by name, so there is
/// nothing to redraw.
impl PartialEq for Matches {
    fn eq(&self, other: &Matches) -> bool {
        fn name(handle: &SeriesHandle) -> &str {
            &handle.name
        }
        self.count == other.count && self.page.iter().map(name).eq(other.page.iter().map(name))
    }
}

/// Whether `name` contains `needle` (lower case) whatever the case: without a lower-case copy of
/// every name when both are ASCII, as signal names nearly always are.
fn contains_folded(name: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if name.is_ascii() && needle.is_ascii() {
        return name
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    }
    name.to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::contains_folded;

    #[test]
    fn the_filter_ignores_case_in_any_script() {
        assert!(contains_folded("Host01.CPU", "01.cpu"));
        assert!(contains_folded("anything", ""));
        assert!(!contains_folded("cpu", "cpus"));
        assert!(contains_folded("Raum.GRÖSSE", "grösse"));
        assert!(contains_folded("ΘΕΡΜΟΚΡΑΣΙΑ", "θερμο"));
        assert!(!contains_folded("ΘΕΡΜΟΚΡΑΣΙΑ", "cpu"));
    }
}
