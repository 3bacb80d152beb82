//! What the dashboard shows: the time window, the signals, one chart each or overlaid, and the theme.
//! It lives in the URL's query string, so a link reopens the same view; everything here is plain data
//! and pure functions, tested natively.

use crate::model::{
    join_signal_list, split_signal_list, DAY, HOUR, LAST_TIMESTAMP_MS, MINUTE, SECOND,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The range picker's choices: (label, as in `?range=`, span in ms).
pub const PRESETS: [(&str, i64); 7] = [
    ("5m", 5 * MINUTE),
    ("15m", 15 * MINUTE),
    ("1h", HOUR),
    ("6h", 6 * HOUR),
    ("24h", DAY),
    ("7d", 7 * DAY),
    ("30d", 30 * DAY),
];

/// The shortest window a zoom can reach: a few seconds still shows individual points.
pub const MIN_SPAN: i64 = 5 * SECOND;
/// The longest window: zooming out stops where the rollups' reach does.
pub const MAX_SPAN: i64 = 730 * DAY;

/// The time window of every chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    /// The last `span` ms, sliding with the clock and fed by live points.
    Last(i64),
    /// Fixed bounds (epoch ms): paused, zoomed, panned or picked by hand. Live points do not move it.
    Fixed { from: i64, to: i64 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Theme {
    #[default]
    Light,
    Dark,
}

impl Theme {
    pub fn key(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn toggled(self) -> Theme {
        match self {
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::Light,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub window: Window,
    /// The signals charted, by name; `None`: the first `DEFAULT_CHARTS` signals.
    pub signals: Option<Vec<String>>,
    /// All charted signals in one chart, with a legend.
    pub overlay: bool,
    pub theme: Theme,
}

/// Charts shown when the URL names no signals: enough to see a system at a glance, few enough to
/// keep a board of a thousand signals quick.
pub const DEFAULT_CHARTS: usize = 12;

impl Default for View {
    fn default() -> Self {
        View {
            window: Window::Last(crate::model::DEFAULT_WINDOW_MS),
            signals: None,
            overlay: false,
            theme: Theme::Light,
        }
    }
}

impl View {
    /// Reads a view from a query string (with or without `?`), ignoring what it does not understand
    /// (an old or hand-edited link still opens, with defaults for the rest).
    pub fn from_query(query: &str) -> View {
        let query: BTreeMap<String, String> =
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        let mut view = View::default();
        // Bounds outside what can be stored are clamped to it, so spans stay far from overflowing.
        let millis = |key: &str| {
            let ms = query.get(key)?.parse::<i64>().ok()?;
            Some(ms.clamp(0, LAST_TIMESTAMP_MS))
        };
        if let (Some(from), Some(to)) = (millis("from"), millis("to")) {
            if to - from >= MIN_SPAN / 5 {
                view.window = Window::Fixed { from, to };
            }
        } else if let Some(span) = query.get("range").and_then(|r| parse_span(r)) {
            view.window = Window::Last(span.clamp(MIN_SPAN, MAX_SPAN));
        }
        view.signals = query.get("signals").map(|s| {
            split_signal_list(s)
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect()
        });
        view.overlay = query.get("overlay").is_some_and(|v| v == "1");
        view.theme = match query.get("theme").map(String::as_str) {
            Some("dark") => Theme::Dark,
            _ => Theme::Light,
        };
        view
    }

    /// The query string (without `?`) that `from_query` reads back as this view; defaults left out.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        match self.window {
            window if window == View::default().window => {}
            Window::Last(span) => parts.push(format!("range={}", span_label(span))),
            Window::Fixed { from, to } => parts.push(format!("from={from}&to={to}")),
        }
        if let Some(signals) = &self.signals {
            let list = join_signal_list(signals.iter().map(String::as_str));
            parts.push(format!("signals={}", encode(&list)));
        }
        if self.overlay {
            parts.push("overlay=1".into());
        }
        if self.theme == Theme::Dark {
            parts.push("theme=dark".into());
        }
        parts.join("&")
    }

    /// The window's bounds at `now`.
    pub fn bounds(&self, now: i64) -> (i64, i64) {
        match self.window {
            Window::Last(span) => (now - span, now),
            Window::Fixed { from, to } => (from, to),
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self.window, Window::Last(_))
    }

    /// Shows `from..to` (a drag across a chart), no narrower than `MIN_SPAN`.
    pub fn zoomed_to(&self, from: i64, to: i64) -> View {
        let (from, to) = (from.min(to), from.max(to));
        let middle = from + (to - from) / 2;
        let half = (to - from).max(MIN_SPAN) / 2;
        self.with_window(Window::Fixed {
            from: middle - half,
            to: middle + half,
        })
    }

    /// Twice the span around the same middle (a double-click). A window that would reach past `now`
    /// follows the clock again.
    pub fn zoomed_out(&self, now: i64) -> View {
        let (from, to) = self.bounds(now);
        let span = ((to - from) * 2).min(MAX_SPAN);
        let middle = from + (to - from) / 2;
        self.settled(middle - span / 2, middle + span / 2, now)
    }

    /// The window moved by `fraction` of its span (negative: back in time).
    pub fn panned(&self, fraction: f64, now: i64) -> View {
        let (from, to) = self.bounds(now);
        let shift = ((to - from) as f64 * fraction) as i64;
        self.settled(from + shift, to + shift, now)
    }

    /// Stops following the clock, keeping what is on screen; or follows it again with the same span.
    pub fn paused(&self, paused: bool, now: i64) -> View {
        let (from, to) = self.bounds(now);
        if paused {
            self.with_window(Window::Fixed { from, to })
        } else {
            self.with_window(Window::Last((to - from).clamp(MIN_SPAN, MAX_SPAN)))
        }
    }

    pub fn with_window(&self, window: Window) -> View {
        View {
            window,
            ..self.clone()
        }
    }

    /// Fixed bounds, unless they reach `now`: then the window follows the clock.
    fn settled(&self, from: i64, to: i64, now: i64) -> View {
        if to >= now {
            self.with_window(Window::Last((now - from).clamp(MIN_SPAN, MAX_SPAN)))
        } else {
            self.with_window(Window::Fixed { from, to })
        }
    }

    /// The signals charted, out of all known ones (sorted by name).
    pub fn charted<'a>(&'a self, all: &'a [String]) -> Vec<&'a str> {
        match &self.signals {
            Some(chosen) => chosen.iter().map(String::as_str).collect(),
            None => all
                .iter()
                .take(DEFAULT_CHARTS)
                .map(String::as_str)
                .collect(),
        }
    }
}

/// `5m`, `6h`, `7d`, `30s` → milliseconds.
pub fn parse_span(text: &str) -> Option<i64> {
    let unit = match text.chars().last()? {
        's' => SECOND,
        'm' => MINUTE,
        'h' => HOUR,
        'd' => DAY,
        _ => return None,
    };
    let n: i64 = text[..text.len() - 1].parse().ok()?;
    (n > 0).then(|| n.saturating_mul(unit))
}

/// The shortest exact label of a span: `7d`, `36h`, `90m`, `45s`.
pub fn span_label(span: i64) -> String {
    for (unit, suffix) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m")] {
        if span % unit == 0 {
            return format!("{}{suffix}", span / unit);
        }
    }
    format!("{}s", (span / SECOND).max(1))
}

/// Percent-encodes what a query value must not contain raw.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_survives_its_url() {
        let views = [
            View::default(),
            View {
                window: Window::Last(7 * DAY),
                signals: Some(vec![
                    "boiler.temp".into(),
                    "cpu.usage{host=a}".into(),
                    // Any name a producer may write: commas, =, &, %, spaces, backslashes, non-ASCII.
                    "wea ther,x.temp{loc=a,b}".into(),
                    "a=b&c 100% \\ Zürich".into(),
                ]),
                overlay: true,
                theme: Theme::Dark,
            },
            View::default().with_window(Window::Fixed {
                from: 1_795_000_000_000,
                to: 1_795_000_600_000,
            }),
        ];
        for view in views {
            assert_eq!(View::from_query(&view.to_query()), view);
        }
        assert_eq!(View::default().to_query(), "");
    }

    #[test]
    fn odd_urls_fall_back_to_defaults() {
        assert_eq!(View::from_query("range=banana&theme=neon"), View::default());
        // Bounds the wrong way round, or one missing, are not a window.
        assert_eq!(View::from_query("from=10&to=5"), View::default());
        assert_eq!(View::from_query("from=10"), View::default());
        assert_eq!(View::from_query("range=1s").window, Window::Last(MIN_SPAN));
    }

    #[test]
    fn extreme_bounds_are_clamped_to_storable_times() {
        let view = View::from_query(&format!("from={}&to={}", i64::MIN, i64::MAX));
        let window = Window::Fixed {
            from: 0,
            to: LAST_TIMESTAMP_MS,
        };
        assert_eq!(view.window, window);
        // Zooming and panning such a window stays in range instead of overflowing.
        let now = 1_795_687_200_000;
        assert!(view.zoomed_out(now).bounds(now).1 <= LAST_TIMESTAMP_MS + MAX_SPAN);
        let (from, to) = view.panned(-0.5, now).bounds(now);
        assert!(from < to);
    }

    #[test]
    fn spans_read_and_print() {
        for (text, ms) in [
            ("5m", 5 * MINUTE),
            ("24h", DAY),
            ("30d", 30 * DAY),
            ("45s", 45_000),
        ] {
            assert_eq!(parse_span(text), Some(ms));
        }
        assert_eq!(span_label(DAY), "1d");
        assert_eq!(span_label(36 * HOUR), "36h");
        assert_eq!(parse_span("0m"), None);
        assert_eq!(parse_span("m"), None);
        assert_eq!(parse_span("5w"), None);
    }

    #[test]
    fn zoom_pan_and_pause() {
        let now = 1_795_000_000_000;
        let live = View::default();
        let zoomed = live.zoomed_to(now - 20 * MINUTE, now - 30 * MINUTE);
        assert_eq!(
            zoomed.window,
            Window::Fixed {
                from: now - 30 * MINUTE,
                to: now - 20 * MINUTE
            }
        );
        // Zooming out three times from there reaches now: the view follows the clock again.
        let out = zoomed.zoomed_out(now);
        assert_eq!(
            out.window,
            Window::Fixed {
                from: now - 35 * MINUTE,
                to: now - 15 * MINUTE
            }
        );
        assert_eq!(
            out.zoomed_out(now).zoomed_out(now).window,
            Window::Last(65 * MINUTE)
        );
        // Panning back half a window, then forward past now.
        let back = live.panned(-0.5, now);
        assert_eq!(
            back.window,
            Window::Fixed {
                from: now - 90 * MINUTE,
                to: now - 30 * MINUTE
            }
        );
        assert!(back.panned(1.0, now).is_live());
        // A zoom never goes below the minimum span.
        let (from, to) = live.zoomed_to(now - 10, now - 5).bounds(now);
        assert_eq!(to - from, MIN_SPAN);
        // Pause keeps the picture; resuming follows the clock with the same span.
        let paused = live.paused(true, now);
        assert_eq!(
            paused.window,
            Window::Fixed {
                from: now - HOUR,
                to: now
            }
        );
        assert_eq!(paused.paused(false, now + 5_000).window, Window::Last(HOUR));
    }

    #[test]
    fn charted_signals_default_to_the_first_few() {
        let all: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
        assert_eq!(View::default().charted(&all).len(), DEFAULT_CHARTS);
        let chosen = View {
            signals: Some(vec!["s050".into()]),
            ..View::default()
        };
        assert_eq!(chosen.charted(&all), ["s050"]);
    }
}
