//! A chart: one signal, or several overlaid with a legend, drawn by plotters on a `<canvas>` over the
//! view's window. In the browser it redraws at most once per animation frame, and not at all while the
//! tab is hidden; dragging across it zooms in, shift-dragging pans, a double-click zooms out, and the
//! pointer's time is shared with every other chart (the crosshair). The server renders the frame,
//! figures and data attributes (which let tests, and curious users, see what the chart holds).

use crate::ui::alerts::RuleForm;
use crate::ui::axis::format_value;
use crate::ui::board::{Board, SeriesHandle};
use crate::ui::gaps::stale_since;
use crate::ui::plot::{Frame, PlotSpan, PALETTE};
use leptos::html::Canvas;
use leptos::prelude::*;

/// `picture`: the server's SVG of the chart (empty in the browser, where hydration keeps the server's).
#[component]
pub fn Chart(handles: Vec<SeriesHandle>, board: Board, picture: String) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let article = NodeRef::<leptos::html::Article>::new();
    let plot = RwSignal::new((0.0, 0.0) as PlotSpan);
    // How long the last draw took (ms), shown as `data-draw-ms` for tests and the curious, and the
    // gaps it drew (`data-gaps`).
    let draw_ms = RwSignal::new(None::<f64>);
    let gaps = RwSignal::new(None::<usize>);
    // Where the last picture put times and values: what is drawn over it is placed by it.
    let frame = RwSignal::new(None::<Frame>);
    // Off-screen charts do not draw: a board of fifty charts costs what the visible few cost. Until
    // the observer has looked, a chart counts as off screen.
    #[cfg(feature = "hydrate")]
    let on_screen = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(element) = article.get() {
            crate::ui::browser::watch_on_screen(&element, on_screen);
        }
    });
    // A drag in progress: where it started and where the pointer is, in canvas pixels.
    let drag = RwSignal::new(None::<(f64, f64)>);
    let bounds = move || board.view.with(|v| v.bounds(board.now.get()));

    // The alert thresholds drawn over the chart, which its value axis must hold (in the browser,
    // which draws them).
    #[cfg(feature = "hydrate")]
    let levels = {
        let names: Vec<String> = handles.iter().map(|h| h.name.clone()).collect();
        Memo::new(move |_| crate::ui::alerts::levels_of(board, &names))
    };
    #[cfg(feature = "hydrate")]
    draw::schedule(
        canvas,
        handles.clone(),
        levels,
        board,
        draw::Outputs {
            on_screen,
            plot,
            draw_ms,
            gaps,
            frame,
        },
    );

    // Pointer handling needs the canvas' position on screen: browser only.
    #[cfg(feature = "hydrate")]
    let (on_down, on_move, on_up, on_leave, on_double) = {
        use leptos::ev::MouseEvent;
        let signals: Vec<String> = handles.iter().map(|h| h.name.clone()).collect();
        let x_of = move |ev: &MouseEvent| {
            canvas
                .get_untracked()
                .map(|c| f64::from(ev.client_x()) - c.get_bounding_client_rect().left())
        };
        // The time at canvas pixel `x`, in the window as it is now.
        let time_at = move |x: f64| {
            let (left, right) = plot.get_untracked();
            let (from, to) = board
                .view
                .with_untracked(|v| v.bounds(board.now.get_untracked()));
            if right <= left {
                return None;
            }
            let fraction = ((x - left) / (right - left)).clamp(0.0, 1.0);
            Some(from + (fraction * (to - from) as f64) as i64)
        };
        let on_down = move |ev: MouseEvent| {
            if ev.button() == 0 {
                ev.prevent_default();
                drag.set(x_of(&ev).map(|x| (x, x)));
            }
        };
        let on_move = move |ev: MouseEvent| {
            let Some(x) = x_of(&ev) else { return };
            if drag.get_untracked().is_some() {
                drag.update(|d| {
                    if let Some(d) = d {
                        d.1 = x;
                    }
                });
            }
            let (left, right) = plot.get_untracked();
            board
                .hover
                .set((left..=right).contains(&x).then(|| time_at(x)).flatten());
        };
        let on_up = move |ev: MouseEvent| {
            let Some((start, _)) = drag.get_untracked() else {
                return;
            };
            drag.set(None);
            let Some(end) = x_of(&ev) else { return };
            if (end - start).abs() < 4.0 {
                // A click, not a drag: with Alt, an annotation at that time.
                if let Some(t) = time_at(end).filter(|_| ev.alt_key()) {
                    crate::ui::alerts::annotate_at(board, t, signals.clone());
                }
                return;
            }
            let now = board.now.get_untracked();
            if ev.shift_key() {
                let (left, right) = plot.get_untracked();
                let fraction = (start - end) / (right - left).max(1.0);
                board.view.update(|v| *v = v.panned(fraction, now));
            } else if let (Some(a), Some(b)) = (time_at(start), time_at(end)) {
                board.view.update(|v| *v = v.zoomed_to(a, b));
            }
        };
        let on_leave = move |_: MouseEvent| {
            drag.set(None);
            board.hover.set(None);
        };
        let on_double = move |_: MouseEvent| {
            let now = board.now.get_untracked();
            board.view.update(|v| *v = v.zoomed_out(now));
        };
        (on_down, on_move, on_up, on_leave, on_double)
    };
    #[cfg(not(feature = "hydrate"))]
    let (on_down, on_move, on_up, on_leave, on_double) = {
        let ignore = |_: leptos::ev::MouseEvent| {};
        (ignore, ignore, ignore, ignore, ignore)
    };

    // The crosshair and the selection are page elements over the canvas: moving them redraws nothing.
    let crosshair_left = move || {
        let t = board.hover.get()?;
        let (from, to) = bounds();
        let (left, right) = plot.get();
        (from..=to)
            .contains(&t)
            .then(|| left + (t - from) as f64 / (to - from).max(1) as f64 * (right - left))
    };
    let selection = move || {
        let (a, b) = drag.get()?;
        ((a - b).abs() >= 4.0).then(|| (a.min(b), (a - b).abs()))
    };

    let single = (handles.len() == 1).then(|| handles[0].clone());
    let title = match &single {
        Some(h) => h.name.clone(),
        None => format!("{} signals", handles.len()),
    };
    let points = {
        let handles = handles.clone();
        move || {
            handles
                .iter()
                .map(|h| h.data.with(|d| d.len()))
                .sum::<usize>()
        }
    };
    let last_timestamp = single
        .clone()
        .map(|h| move || h.data.with(|d| d.last().map(|(t, _)| t)));
    // A single signal's freshness: silent for several of its usual steps, it is stale, and the
    // badge says since when instead of "live".
    let stale_since = single.clone().map(|h| {
        move || {
            let now = board.now.get();
            let (last, _) = h.last.get()?;
            let (from, to) = board.view.with(|v| v.bounds(now));
            let usual = h.data.with(|d| d.usual_step(from, to));
            stale_since(last, usual.or(h.cadence.get().usual()), now)
        }
    });
    let badge = stale_since.clone().map(|stale| {
        move || match (stale(), board.view.with(|v| v.is_live())) {
            (Some(since), _) => Some(view! {
                <span class="badge" data-state="stale" title=format!("no point since {}", clock_time(since))>
                    {format!("stale since {}", &clock_time(since)[11..])}
                </span>
            }.into_any()),
            (None, true) => Some(view! { <span class="badge" data-state="live">"live"</span> }.into_any()),
            (None, false) => None,
        }
    });
    let names: Vec<String> = handles.iter().map(|h| h.name.clone()).collect();
    let overlays = move || {
        frame
            .get()
            .map(|f| crate::ui::alerts::overlays(board, &names, f))
    };
    let rule_form = single
        .clone()
        .map(|h| view! { <RuleForm signal=h.name board/> });
    let legend = handles
        .into_iter()
        .enumerate()
        .map(|(i, handle)| view! { <Figures handle colour=i board/> })
        .collect_view();
    view! {
        <article
            node_ref=article
            class="chart"
            data-draw-ms=move || draw_ms.get().map(|ms| format!("{ms:.2}"))
            data-signal=single.map(|h| h.name).unwrap_or_else(|| "overlay".into())
            data-points=points
            data-last-ts=last_timestamp
            data-gaps=move || gaps.get()
            data-stale-since=stale_since
        >
            <header>
                <h2>{title}</h2>
                {badge}
                {rule_form}
            </header>
            <ul class="figures">{legend}</ul>
            <div
                class="plot"
                title="drag: zoom in · shift-drag: pan · double-click: zoom out · alt-click: annotate"
                on:mousedown=on_down
                on:mousemove=on_move
                on:mouseup=on_up
                on:mouseleave=on_leave
                on:dblclick=on_double
            >
                <div class="picture" class:replaced=move || plot.with(|p| p.1 > 0.0) inner_html=picture></div>
                <canvas node_ref=canvas></canvas>
                {overlays}
                <div
                    class="crosshair"
                    style:display=move || if crosshair_left().is_some() { "block" } else { "none" }
                    style:left=move || format!("{}px", crosshair_left().unwrap_or(0.0))
                ></div>
                <div
                    class="selection"
                    style:display=move || if selection().is_some() { "block" } else { "none" }
                    style:left=move || format!("{}px", selection().map_or(0.0, |s| s.0))
                    style:width=move || format!("{}px", selection().map_or(0.0, |s| s.1))
                ></div>
            </div>
        </article>
    }
}

/// A time as the reader's clock shows it, `2026-11-28 14:05:09` (UTC on the server, which renders
/// no stale signal: its page is drawn before the clock runs).
pub fn clock_time(t: i64) -> String {
    #[cfg(feature = "hydrate")]
    let offset = crate::ui::browser::offset_at(t);
    #[cfg(not(feature = "hydrate"))]
    let offset = 0;
    crate::ui::axis::date_time(t, offset)
}

/// One signal's line in a chart's legend: its colour, name, and min, max, mean, last over the view,
/// and its value under the crosshair.
#[component]
fn Figures(handle: SeriesHandle, colour: usize, board: Board) -> impl IntoView {
    let (r, g, b) = PALETTE[colour % PALETTE.len()];
    let data = handle.data.clone();
    let stats = Memo::new(move |_| {
        let (from, to) = board.view.with(|v| v.bounds(board.now.get()));
        data.with(|d| d.stats(from, to))
    });
    let figure = move |pick: fn(&crate::ui::board::Stats) -> f64| {
        move || {
            stats
                .get()
                .map(|s| format_value(pick(&s)))
                .unwrap_or_else(|| "–".into())
        }
    };
    let decimated = handle.downsampled.clone();
    let downsampled = handle.downsampled;
    let data = handle.data;
    let under_crosshair = move || {
        let t = board.hover.get()?;
        let (from, to) = board.view.with(|v| v.bounds(board.now.get()));
        // Within a few pixels' worth of time of the pointer, or nothing.
        let tolerance = (to - from) / 100;
        data.with(|d| d.nearest(t, tolerance))
            .map(|(_, v)| format_value(v))
    };
    let name = handle.name;
    let key = name.clone();
    view! {
        <li class="figure" data-signal=key>
            <span class="swatch" style:background=format!("rgb({r},{g},{b})")></span>
            <span class="name">{name}</span>
            <span class="stat" title="lowest in view">"min " <b data-stat="min">{figure(|s| s.min)}</b></span>
            <span class="stat" title="highest in view">"max " <b data-stat="max">{figure(|s| s.max)}</b></span>
            <span
                class="stat"
                title=move || if decimated.get() { "mean of the points drawn (the range is decimated)" } else { "mean in view" }
            >
                {move || if downsampled.get() { "mean ≈ " } else { "mean " }}
                <b data-stat="mean">{figure(|s| s.mean)}</b>
            </span>
            <span class="stat" title="newest in view">"last " <b data-stat="last">{figure(|s| s.last)}</b></span>
            <span class="hover-value" data-stat="hover">{under_crosshair}</span>
        </li>
    }
}

#[cfg(feature = "hydrate")]
mod draw {
    use crate::ui::board::{Board, SeriesData, SeriesHandle};
    use crate::ui::browser;
    use crate::ui::plot::{self, Frame, PlotSpan};
    use crate::ui::view::Theme;
    use leptos::html::Canvas;
    use leptos::prelude::*;
    use plotters::prelude::*;
    use plotters_canvas::CanvasBackend;
    use web_sys::HtmlCanvasElement;

    /// What a chart's drawing reads and reports besides its data.
    pub struct Outputs {
        pub on_screen: RwSignal<bool>,
        pub plot: RwSignal<PlotSpan>,
        pub draw_ms: RwSignal<Option<f64>>,
        pub gaps: RwSignal<Option<usize>>,
        pub frame: RwSignal<Option<Frame>>,
    }

    /// Redraws whenever what the chart shows changes, at most once per animation frame (ten live
    /// messages in one frame make one drawing), and never while the tab is hidden or the chart is
    /// scrolled out of sight: it catches up when shown.
    pub fn schedule(
        canvas: NodeRef<Canvas>,
        handles: Vec<SeriesHandle>,
        levels: Memo<Vec<f64>>,
        board: Board,
        outputs: Outputs,
    ) {
        let Outputs {
            on_screen,
            plot,
            draw_ms,
            gaps,
            frame,
        } = outputs;
        let pending = StoredValue::new(false);
        // The last picture's state: the next frame may only need to add to it.
        let painted = StoredValue::new_local(None::<plot::Painted>);
        Effect::new(move |_| {
            // Track everything the picture depends on.
            let view = board.view.get();
            if view.is_live() {
                board.now.track();
            }
            for h in &handles {
                h.data.track();
            }
            levels.track();
            let shown = board.visible.get() && on_screen.get();
            if !shown || canvas.get().is_none() || pending.get_value() {
                return;
            }
            pending.set_value(true);
            let handles = handles.clone();
            request_animation_frame(move || {
                pending.set_value(false);
                let Some(canvas) = canvas.get_untracked() else {
                    return;
                };
                let view = board.view.get_untracked();
                let (from, to) = view.bounds(board.now.get_untracked());
                let began = browser::performance_now();
                // Read in place: a million points are not copied per frame.
                let guards: Vec<_> = handles.iter().map(|h| h.data.read_untracked()).collect();
                let series: Vec<&SeriesData> = guards.iter().map(|g| &**g).collect();
                // `None` from the store: the chart is gone.
                let drawn = painted
                    .try_update_value(|painted| {
                        let levels = levels.get_untracked();
                        draw(&canvas, painted, &series, (from, to), (view.theme, &levels))
                    })
                    .unwrap_or(Ok(None));
                match drawn {
                    Ok(Some((drawn, drawn_gaps))) => {
                        plot.set(drawn.span);
                        if frame.get_untracked() != Some(drawn) {
                            frame.set(Some(drawn));
                        }
                        gaps.set(Some(drawn_gaps));
                        let took = browser::performance_now() - began;
                        draw_ms.set(Some(took));
                        board.health.redraw_ms.set_value(Some(took));
                    }
                    Ok(None) => {}
                    Err(e) => leptos::logging::warn!("chart draw failed: {e}"),
                }
            });
        });
    }

    /// Draws `series` over `from..=to` on the canvas: only what was added since `painted`, when that
    /// is all that changed, else the whole chart, which then replaces `painted`. The canvas' pixel
    /// size follows its CSS size, so the chart is sharp at any width. Returns where the picture put
    /// times and values, and the gaps drawn; `None`: the canvas is not laid out, nothing to draw.
    pub fn draw(
        canvas: &HtmlCanvasElement,
        painted: &mut Option<plot::Painted>,
        series: &[&SeriesData],
        (from, to): (i64, i64),
        (theme, levels): (Theme, &[f64]),
    ) -> Result<Option<(Frame, usize)>, String> {
        let (width, height) = (canvas.client_width(), canvas.client_height());
        if width <= 0 || height <= 0 {
            return Ok(None);
        }
        // Resizing clears the canvas: a resized chart is painted afresh (the size check in
        // `extend` sees to it).
        if canvas.width() != width as u32 || canvas.height() != height as u32 {
            canvas.set_width(width as u32);
            canvas.set_height(height as u32);
        }
        let backend = CanvasBackend::with_canvas_object(canvas.clone())
            .ok_or("the canvas has no 2D context")?;
        let root = backend.into_drawing_area();
        if let Some(previous) = painted {
            let extended =
                plot::extend(root.clone(), previous, series, (from, to), (theme, levels));
            if let Some(extended) = extended {
                return extended.map(|()| Some((previous.frame, previous.gaps)));
            }
        }
        let offset = browser::offset_at(to);
        let picture = plot::paint(root, series, from, to, theme, offset, levels)?;
        let drawn = (picture.frame, picture.gaps);
        *painted = Some(picture);
        Ok(Some(drawn))
    }
}
