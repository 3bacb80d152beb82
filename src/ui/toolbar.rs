//! The controls above the charts: the range picker (presets and custom bounds), pan and zoom-out, live
//! or paused, one chart or all overlaid, the theme, CSV export, and the time under the crosshair.

use crate::ui::board::Board;
use crate::ui::view::{View, Window, PRESETS};
use leptos::html::Input;
use leptos::prelude::*;

#[component]
pub fn Toolbar(board: Board) -> impl IntoView {
    let view = board.view;
    let now = move || board.now.get_untracked();
    let live = move || view.with(|v| v.is_live());
    // A paused window ends at the click, not where the live window ended (a tick ahead of the clock):
    // a point that arrives after the click then falls after it, whichever way it comes (the live feed
    // is ignored while paused, but the paused window's history read could otherwise bring it).
    let held = move |paused: View| match paused.window {
        #[cfg(feature = "hydrate")]
        Window::Fixed { from, to } => paused.with_window(Window::Fixed {
            from,
            to: to.min(crate::ui::browser::now()),
        }),
        _ => paused,
    };
    let from_input = NodeRef::<Input>::new();
    let to_input = NodeRef::<Input>::new();
    let apply_custom = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use crate::ui::browser::parse_local;
            let read = |input: NodeRef<Input>| input.get().and_then(|i| parse_local(&i.value()));
            if let (Some(from), Some(to)) = (read(from_input), read(to_input)) {
                if from < to {
                    view.update(|v| *v = v.with_window(Window::Fixed { from, to }));
                }
            }
        }
    };
    // The custom inputs show the window's bounds whenever the window changes.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use crate::ui::browser::local_input;
        let (from, to) = view.with(|v| v.bounds(board.now.get_untracked()));
        for (input, t) in [(from_input, from), (to_input, to)] {
            if let Some(input) = input.get() {
                input.set_value(&local_input(t));
            }
        }
    });
    let export = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let (from, to) = view.with_untracked(|v| v.bounds(now()));
            let series: Vec<_> = board
                .charted_untracked()
                .into_iter()
                .map(|h| (h.name.clone(), h.data.get_untracked()))
                .collect();
            let text = crate::ui::board::csv(&series, from, to);
            if let Err(e) = crate::ui::browser::download("signalboard.csv", "text/csv", &text) {
                leptos::logging::warn!("CSV export failed: {e:?}");
            }
        }
    };
    let hover_time = move || {
        #[cfg(feature = "hydrate")]
        {
            board
                .hover
                .get()
                .map(|t| crate::ui::axis::date_time(t, crate::ui::browser::offset_at(t)))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            None::<String>
        }
    };

    view! {
        <div class="toolbar">
            <div class="ranges" role="group" aria-label="Time range">
                {PRESETS
                    .iter()
                    .map(|&(label, span)| {
                        view! {
                            <button
                                data-range=label
                                class:active=move || view.with(|v| v.window == Window::Last(span))
                                on:click=move |_| view.update(|v| *v = v.with_window(Window::Last(span)))
                            >
                                {label}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <form class="custom" on:submit=apply_custom>
                <input node_ref=from_input type="datetime-local" name="from" aria-label="From"/>
                <input node_ref=to_input type="datetime-local" name="to" aria-label="To"/>
                <button type="submit">"Apply"</button>
            </form>
            <div class="moves" role="group" aria-label="Move">
                <button
                    data-action="pan-back"
                    title="Back half a window"
                    on:click=move |_| view.update(|v| *v = v.panned(-0.5, now()))
                >
                    "◀"
                </button>
                <button
                    data-action="zoom-out"
                    title="Zoom out (or double-click a chart)"
                    on:click=move |_| view.update(|v| *v = v.zoomed_out(now()))
                >
                    "−"
                </button>
                <button
                    data-action="pan-forward"
                    title="Forward half a window"
                    on:click=move |_| view.update(|v| *v = v.panned(0.5, now()))
                >
                    "▶"
                </button>
            </div>
            <button
                data-action="pause"
                class:active=move || !live()
                on:click=move |_| view.update(|v| *v = held(v.paused(v.is_live(), now())))
            >
                {move || if live() { "Pause" } else { "Resume live" }}
            </button>
            <button
                data-action="overlay"
                class:active=move || view.with(|v| v.overlay)
                on:click=move |_| view.update(|v| v.overlay = !v.overlay)
            >
                "Overlay"
            </button>
            <button
                data-action="theme"
                on:click=move |_| view.update(|v| v.theme = v.theme.toggled())
            >
                {move || view.with(|v| v.theme.toggled().key())}
            </button>
            <button data-action="csv" on:click=export>
                "CSV"
            </button>
            <span class="hover-time">{hover_time}</span>
        </div>
    }
}
