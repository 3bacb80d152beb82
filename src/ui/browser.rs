//! The few things only a browser can answer or do, in one place: the clock and time zone, the charts'
//! width, the address bar, downloads, and whether the tab is visible. Compiled for the WebAssembly
//! build only.

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

pub fn now() -> i64 {
    js_sys::Date::now() as i64
}

/// The local time zone's offset from UTC at `t`, in ms east (UTC+1 → 3,600,000).
pub fn offset_at(t: i64) -> i64 {
    let minutes_west = js_sys::Date::new(&JsValue::from_f64(t as f64)).get_timezone_offset();
    -(minutes_west as i64) * crate::model::MINUTE
}

/// A `<input type="datetime-local">` value (local time) as epoch ms.
pub fn parse_local(text: &str) -> Option<i64> {
    let t = js_sys::Date::new(&JsValue::from_str(text)).get_time();
    t.is_finite().then_some(t as i64)
}

/// Epoch ms as a `datetime-local` value, in local time.
pub fn local_input(t: i64) -> String {
    crate::ui::axis::date_time(t, offset_at(t))
        .replace(' ', "T")
        .chars()
        .take(16)
        .collect()
}

/// The width available to a chart, in CSS pixels: what a history read is decimated to.
pub fn charts_width() -> i32 {
    document()
        .query_selector(".charts")
        .ok()
        .flatten()
        .map_or(1000, |e| e.client_width())
        .max(200)
}

/// Puts the view into the address bar without a navigation, so reload and links reopen it.
pub fn replace_query(query: &str) {
    let window = window();
    let path = window.location().pathname().unwrap_or_else(|_| "/".into());
    let url = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
}

/// Offers `text` as a file download.
pub fn download(filename: &str, mime: &str, text: &str) -> Result<(), JsValue> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let link: web_sys::HtmlAnchorElement = document().create_element("a")?.unchecked_into();
    link.set_href(&url);
    link.set_download(filename);
    link.click();
    web_sys::Url::revoke_object_url(&url)
}

pub fn tab_visible() -> bool {
    document().visibility_state() == web_sys::VisibilityState::Visible
}

/// A monotonic clock in ms, for timing draws.
pub fn performance_now() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// The WebAssembly memory's size in bytes (it grows, never shrinks: flat means nothing leaks).
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

/// The JavaScript heap in use, where the browser says (Chromium's `performance.memory`).
pub fn js_heap_bytes() -> Option<f64> {
    let performance = window().performance()?;
    let memory = js_sys::Reflect::get(&performance, &JsValue::from_str("memory")).ok()?;
    js_sys::Reflect::get(&memory, &JsValue::from_str("usedJSHeapSize"))
        .ok()?
        .as_f64()
}

/// Milliseconds from navigation to the first contentful paint, once there was one.
pub fn first_paint_ms() -> Option<f64> {
    let performance = window().performance()?;
    let entries = performance.get_entries_by_name("first-contentful-paint");
    let entry = entries.get(0);
    js_sys::Reflect::get(&entry, &JsValue::from_str("startTime"))
        .ok()?
        .as_f64()
}

/// Keeps `on_screen` telling whether `element` is within (or 200 px of) the viewport, until the
/// current owner (the chart) is cleaned up.
pub fn watch_on_screen(element: &web_sys::Element, on_screen: RwSignal<bool>) {
    let callback = Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
        for entry in entries.iter() {
            let entry: web_sys::IntersectionObserverEntry = entry.unchecked_into();
            on_screen.set(entry.is_intersecting());
        }
    });
    let options = web_sys::IntersectionObserverInit::new();
    options.set_root_margin("200px");
    let Ok(observer) = web_sys::IntersectionObserver::new_with_options(
        callback.as_ref().unchecked_ref(),
        &options,
    ) else {
        on_screen.set(true); // no observer: the chart simply always draws
        return;
    };
    observer.observe(element);
    let kept = send_wrapper::SendWrapper::new((observer, callback));
    on_cleanup(move || kept.0.disconnect());
}
