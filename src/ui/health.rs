//! The page's own health, in a panel of the top bar: the frame rate the browser paints at, the last
//! chart redraw's time, JavaScript heap and WebAssembly memory, live-feed reconnects and time to
//! first paint. Measured once a second while the panel is open, or while the server keeps what the
//! page sends (its `browser-signals` setting: then every `REPORT_EVERY` samples go back as
//! `signalboard.browser.*` signals). A closed panel on a server that does not want them costs
//! nothing: frames are counted only while someone looks.

use crate::model::PageFigures;
use crate::ui::axis::format_value;
use leptos::prelude::*;

/// What the page counts as it runs, and its latest sample.
#[derive(Clone, Copy)]
pub struct PageHealth {
    /// The last chart redraw's time, set by the charts.
    pub redraw_ms: StoredValue<Option<f64>>,
    /// Set by the live client each time it takes the feed up again.
    pub reconnects: StoredValue<u32>,
    /// The latest sample, which the panel shows.
    pub figures: RwSignal<PageFigures>,
    /// Whether the panel is open.
    pub open: RwSignal<bool>,
}

impl PageHealth {
    pub fn new() -> PageHealth {
        PageHealth {
            redraw_ms: StoredValue::new(None),
            reconnects: StoredValue::new(0),
            figures: RwSignal::new(PageFigures::default()),
            open: RwSignal::new(false),
        }
    }
}

impl Default for PageHealth {
    fn default() -> Self {
        PageHealth::new()
    }
}

#[component]
pub fn HealthPanel(health: PageHealth) -> impl IntoView {
    let figures = health.figures;
    let row = move |key: &'static str, label: &'static str, text: Signal<String>| {
        view! {
            <dt>{label}</dt>
            <dd data-figure=key>{move || text.get()}</dd>
        }
    };
    view! {
        <details
            class="page-health"
            on:toggle=move |event| {
                let details = event_target::<leptos::web_sys::Element>(&event);
                health.open.set(details.has_attribute("open"));
            }
        >
            <summary title="This page's own health">"Page health"</summary>
            <dl>
                {row("frames_per_sec", "Frame rate", Signal::derive(move || shown(figures.with(|f| f.frames_per_sec), " fps")))}
                {row("redraw_ms", "Last redraw", Signal::derive(move || shown(figures.with(|f| f.redraw_ms), " ms")))}
                {row("js_heap_bytes", "JS heap", Signal::derive(move || mib(figures.with(|f| f.js_heap_bytes))))}
                {row("wasm_memory_bytes", "WebAssembly memory", Signal::derive(move || mib(figures.with(|f| f.wasm_memory_bytes))))}
                {row("reconnects", "Live reconnects", Signal::derive(move || figures.with(|f| f.reconnects).to_string()))}
                {row("first_paint_ms", "First paint", Signal::derive(move || shown(figures.with(|f| f.first_paint_ms), " ms")))}
            </dl>
        </details>
    }
}

/// A figure with its unit, or a dash where there is none.
fn shown(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{}{unit}", format_value(v)))
}

fn mib(bytes: Option<f64>) -> String {
    shown(bytes.map(|b| b / (1024.0 * 1024.0)), " MiB")
}

/// Samples every second for good (browser only; started with the live client).
#[cfg(feature = "hydrate")]
pub fn start(health: PageHealth) {
    use crate::ui::browser;
    use gloo_timers::future::TimeoutFuture;
    use leptos::task::spawn_local;

    /// Samples between two reports to the server.
    const REPORT_EVERY: u32 = 10;
    let frames = StoredValue::new(0u32);
    // Until the server says otherwise it may want the figures: the first report asks.
    let reporting = StoredValue::new(true);
    let measuring = move || health.open.get_untracked() || reporting.get_value();
    // Frames are counted from the first sample on, and again whenever the panel opens.
    let counting = StoredValue::new(false);
    let count_frames = move || {
        if !counting.get_value() {
            counting.set_value(true);
            count_frames_while(frames, counting, measuring);
        }
    };
    Effect::new(move |_| {
        if health.open.get() {
            count_frames();
        }
    });
    spawn_local(async move {
        let mut since = browser::performance_now();
        let mut samples = 0u32;
        loop {
            TimeoutFuture::new(1_000).await;
            let now = browser::performance_now();
            if !measuring() {
                since = now;
                continue;
            }
            count_frames();
            let seconds = ((now - since) / 1e3).max(1e-3);
            since = now;
            let counted = frames.get_value();
            frames.set_value(0);
            let figures = PageFigures {
                frames_per_sec: (counted > 0).then(|| f64::from(counted) / seconds),
                redraw_ms: health.redraw_ms.get_value(),
                js_heap_bytes: browser::js_heap_bytes(),
                wasm_memory_bytes: Some(browser::wasm_memory_bytes()),
                reconnects: health.reconnects.get_value(),
                first_paint_ms: browser::first_paint_ms(),
            };
            health.figures.set(figures.clone());
            samples += 1;
            if reporting.get_value() && samples % REPORT_EVERY == 1 {
                let kept = crate::api::report_page_health(figures).await;
                // Off, or refused: the page stops sending.
                reporting.set_value(kept.unwrap_or(false));
            }
        }
    });
}

/// Counts painted frames, one animation frame at a time, while `measuring`.
#[cfg(feature = "hydrate")]
fn count_frames_while(
    frames: StoredValue<u32>,
    counting: StoredValue<bool>,
    measuring: impl Fn() -> bool + Copy + 'static,
) {
    request_animation_frame(move || {
        if !measuring() {
            counting.set_value(false);
            return;
        }
        frames.update_value(|n| *n += 1);
        count_frames_while(frames, counting, measuring);
    });
}
