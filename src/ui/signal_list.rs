//! The side list: every signal with its last value, updated live.

use crate::ui::board::{Board, SeriesHandle};
use crate::ui::format_value;
use leptos::prelude::*;

#[component]
pub fn SignalList(board: Board) -> impl IntoView {
    view! {
        <nav class="signal-list">
            <h2>"Signals"</h2>
            <ul>
                <For
                    each=move || board.series.get()
                    key=|handle| handle.name.clone()
                    children=move |handle: SeriesHandle| {
                        let data = handle.data;
                        let last = move || {
                            data.with(|d| d.last().map(|(_, v)| format_value(v)).unwrap_or_default())
                        };
                        view! {
                            <li>
                                <span class="name">{handle.name}</span>
                                <span class="value">{last}</span>
                            </li>
                        }
                    }
                />
            </ul>
        </nav>
    }
}
