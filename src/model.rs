//! Wire types: everything that crosses HTTP or the WebSocket, defined once and compiled into both the
//! server and the WebAssembly dashboard, so the two can never disagree on a field name.
//!
//! Timestamps on the wire are milliseconds since the Unix epoch (UTC), values are `f64`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One sample in the canonical form a producer sends to `POST /api/telemetry`. (The server also accepts
/// an RFC 3339 `timestamp`, or none at all, meaning "now".)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub timestamp: i64,
    pub signals: BTreeMap<String, f64>,
}

/// One stored point, as pushed to live subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub signal: String,
    pub timestamp: i64,
    pub value: f64,
}

/// What `/api/live` sends for every committed write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveMessage {
    pub points: Vec<Point>,
}

/// One signal's points over a range, in ascending time. Column-wise: half the JSON of an array of objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub signal: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// True when the range held more than `max_points` points and these are each bucket's first, last,
    /// lowest and highest.
    #[serde(default)]
    pub downsampled: bool,
}

/// The answer of `GET /api/telemetry` and of the `history` server function.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub from: i64,
    pub to: i64,
    pub series: Vec<Series>,
}

/// One row of `GET /api/signals`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalInfo {
    pub signal: String,
    pub points: u64,
    pub last_timestamp: i64,
    pub last_value: f64,
}

/// The body of every error response: `{"error": "what is wrong and where"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The answer to an accepted `POST /api/telemetry`: how many points were committed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub accepted: usize,
}

/// An alert rule as the API takes it and the database keeps it (`server/alerts/rule.rs` checks it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// A signal's name, or a pattern where `*` stands for any run of characters.
    pub signal: String,
    pub condition: Condition,
    /// Seconds the condition must hold (by the points' own times) before the rule fires.
    #[serde(default)]
    pub for_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where notifications are POSTed (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Send a Slack-compatible body (`{"text": …}`) instead of Signalboard's JSON.
    #[serde(default)]
    pub slack: bool,
}

impl RuleSpec {
    /// Whether the rule watches `signal`.
    pub fn watches(&self, signal: &str) -> bool {
        matches_pattern(&self.signal, signal)
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters (and nothing else
/// is special, so any signal name can be matched exactly).
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// When a rule's condition holds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    Above {
        threshold: f64,
    },
    Below {
        threshold: f64,
    },
    /// Below `low` or above `high`.
    Outside {
        low: f64,
        high: f64,
    },
    /// No point for this many seconds (by the server's clock).
    NoData {
        secs: u64,
    },
}

impl Condition {
    /// In words, for notifications and the dashboard: `above 90`.
    pub fn describe(&self) -> String {
        match *self {
            Condition::Above { threshold } => format!("above {threshold}"),
            Condition::Below { threshold } => format!("below {threshold}"),
            Condition::Outside { low, high } => format!("outside {low}…{high}"),
            Condition::NoData { secs } => format!("no data for {secs} s"),
        }
    }
}

/// A rule as listed: its definition, silence, and where it is not ok.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: i64,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub silenced_until_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub states: Vec<AlertState>,
}

/// A rule's state on one signal: `pending` (the condition holds, not yet for long enough) or
/// `firing`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub signal: String,
    pub state: String,
    /// When the condition began to hold.
    pub since_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_ms: Option<i64>,
    pub value: Option<f64>,
}

/// A mark on the charts: an instant, or a span with `end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Annotation {
    /// Given by the server (ignored in a new annotation).
    #[serde(default)]
    pub id: i64,
    /// Epoch ms.
    pub time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    pub text: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The signals whose charts show it; none: every chart.
    #[serde(default)]
    pub signals: Vec<String>,
}

/// What the dashboard shows of alerting: every rule, and the annotations in view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertOverview {
    pub rules: Vec<AlertRule>,
    pub annotations: Vec<Annotation>,
}

/// What a dashboard measures of itself (`ui/health.rs`): shown in its health panel and, where the
/// server's `browser-signals` setting allows, sent back as `signalboard.browser.*` signals. `None`:
/// not measured (yet, or not by this browser).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageFigures {
    pub frames_per_sec: Option<f64>,
    /// The last chart redraw's time.
    pub redraw_ms: Option<f64>,
    /// Chromium's `performance.memory`; other browsers do not say.
    pub js_heap_bytes: Option<f64>,
    pub wasm_memory_bytes: Option<f64>,
    /// Times the live feed was lost and taken up again since the page opened.
    pub reconnects: u32,
    /// From navigation to the first contentful paint.
    pub first_paint_ms: Option<f64>,
}

/// One figure of a `PageFigures`, named as its signal is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    pub name: &'static str,
    pub value: Option<f64>,
}

impl PageFigures {
    pub fn figures(&self) -> [Figure; 6] {
        let figure = |name, value| Figure { name, value };
        [
            figure("frames_per_sec", self.frames_per_sec),
            figure("redraw_ms", self.redraw_ms),
            figure("js_heap_bytes", self.js_heap_bytes),
            figure("wasm_memory_bytes", self.wasm_memory_bytes),
            figure("reconnects", Some(f64::from(self.reconnects))),
            figure("first_paint_ms", self.first_paint_ms),
        ]
    }
}

/// Spans of time in milliseconds, the unit of every timestamp here.
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// How far back a history read without `from` looks, and the dashboard's window until one is picked.
pub const DEFAULT_WINDOW_MS: i64 = HOUR;

/// 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write, and far inside `i64` milliseconds.
/// Every timestamp stored or asked for lies in `0..=LAST_TIMESTAMP_MS`.
pub const LAST_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Several signal names as one `signals=` value: joined by commas, with a comma or a backslash
/// inside a name escaped by a backslash, so any name survives (a line-protocol tag value may hold a
/// comma). Names without either read as they always did: `a,b`.
pub fn join_signal_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut list = String::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        for c in name.chars() {
            if c == ',' || c == '\\' {
                list.push('\\');
            }
            list.push(c);
        }
    }
    list
}

/// The names of a `signals=` value (`join_signal_list`'s inverse). A backslash takes the next
/// character as it is; one at the very end stands for itself.
pub fn split_signal_list(list: &str) -> Vec<String> {
    let mut names = vec![String::new()];
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        let name = names.last_mut().expect("one name at least");
        match c {
            '\\' => name.push(chars.next().unwrap_or('\\')),
            ',' => names.push(String::new()),
            c => name.push(c),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_lists_carry_any_name() {
        let names = [
            "wea ther,x.temp{loc=a,b}",
            "a=b&c",
            "100%",
            "back\\slash\\",
            "Zürich.température",
            "",
            "plain",
        ];
        let list = join_signal_list(names);
        assert_eq!(split_signal_list(&list), names);
        assert_eq!(split_signal_list("a,b"), ["a", "b"], "as before");
        assert_eq!(join_signal_list(["a", "b"]), "a,b");
    }

    proptest::proptest! {
        #[test]
        fn any_names_round_trip(names in proptest::collection::vec(".*", 1..5)) {
            let list = join_signal_list(names.iter().map(String::as_str));
            proptest::prop_assert_eq!(split_signal_list(&list), names);
        }
    }
}
