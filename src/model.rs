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
