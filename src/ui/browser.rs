//! The few things only a browser can answer or do, in one place: the clock and time zone, the charts'
//! width, the address bar, downloads, and whether the tab is visible. Compiled for the WebAssembly
//! build only.

use wasm_bindgen::{JsCast, JsValue};

pub fn now() -> i64 {
    js_sys::Date::now() as i64
}

/// The local time zone's offset from UTC at `t`, in ms east (UTC+1 → 3,600,000).
pub fn offset_at(t: i64) -> i64 {
    let minutes_west = js_sys::Date::new(&JsValue::from_f64(t as f64)).get_timezone_offset();
    -(minutes_west as i64) * 60_000
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
    leptos::prelude::document()
        .query_selector(".charts")
        .ok()
        .flatten()
        .map_or(1000, |e| e.client_width())
        .max(200)
}

/// Puts the view into the address bar without a navigation, so reload and links reopen it.
pub fn replace_query(query: &str) {
    let window = leptos::prelude::window();
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
    let link: web_sys::HtmlAnchorElement = leptos::prelude::document()
        .create_element("a")?
        .unchecked_into();
    link.set_href(&url);
    link.set_download(filename);
    link.click();
    web_sys::Url::revoke_object_url(&url)
}

pub fn tab_visible() -> bool {
    leptos::prelude::document().visibility_state() == web_sys::VisibilityState::Visible
}
