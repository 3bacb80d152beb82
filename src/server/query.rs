//! History: `GET /api/telemetry`, `GET /api/signals`, and the same reads for the dashboard's server
//! functions. Parameters are validated here; the store only ever sees a valid `Range`.

use crate::model::{History, Series, SignalInfo, DEFAULT_WINDOW_MS, HOUR};
use crate::server::domain::{SignalName, Timestamp};
use crate::server::error::ApiError;
use crate::server::gzip::{self, InParts};
use crate::server::store::{Range, Shape, Store};
use crate::server::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The raw query string of `GET /api/telemetry`. Everything arrives as text so that every mistake gets
/// our own message, not a generic deserialisation error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    hours: Option<String>,
    from: Option<String>,
    to: Option<String>,
    signals: Option<String>,
    max_points: Option<String>,
}

/// Fewest points a decimated series may be cut to: one bucket's first, lowest, highest and last.
pub const MIN_MAX_POINTS: usize = 4;

pub async fn get_telemetry(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let range = parse_range(&params, state.clock.now())?;
    let cap = state.limits.max_raw_points;
    let max_points = parse_max_points(params.max_points.as_deref(), cap)?;
    let answer = history(&state.store, range, max_points, cap).await?;
    negotiate(&headers, answer, |answer| Ok(HistoryJson(answer)))
}

pub async fn get_signals(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    negotiate(&headers, state.store.signals().await?, |signals| {
        Ok(SignalsJson(signals))
    })
}

const JSON: &str = "application/json";
const MSGPACK: &str = "application/msgpack";

/// MessagePack (same field names) for a client that sends `Accept: application/msgpack`, otherwise
/// JSON as `json` writes it.
fn negotiate<T: Serialize, B: InParts>(
    headers: &HeaderMap,
    answer: T,
    json: impl FnOnce(T) -> Result<B, ApiError>,
) -> Result<Response, ApiError> {
    let wants_msgpack = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(MSGPACK));
    if wants_msgpack {
        let body = rmp_serde::to_vec_named(&answer).map_err(encoding_failed)?;
        return Ok(gzip::respond(headers, MSGPACK, body));
    }
    Ok(gzip::respond(headers, JSON, json(answer)?))
}

/// Plain data of strings and numbers always encodes; should it not, the error says so.
fn encoding_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Encoding(e.to_string())
}

/// A history answer as JSON, written in parts of about equal size so that serializing (a third of
/// what deflating costs) is shared out between the cores too. Joined, the parts are exactly what
/// `serde_json` makes of the `History`.
struct HistoryJson(History);

impl HistoryJson {
    /// Pieces of a series' JSON, counted so that parts can start anywhere: its opening up to the
    /// timestamps, each timestamp, the text between the arrays, each value, and its close.
    fn pieces(s: &Series) -> usize {
        2 * s.timestamps.len() + 3
    }
}

impl InParts for HistoryJson {
    fn size_hint(&self) -> usize {
        // A timestamp and its value take about 32 bytes of JSON.
        self.0.series.iter().map(|s| 32 * s.timestamps.len()).sum()
    }

    fn part(&self, k: usize, n: usize) -> Cow<'_, [u8]> {
        let History { from, to, series } = &self.0;
        let total: usize = series.iter().map(Self::pieces).sum();
        // Part k holds pieces [first, end) of all the series' pieces in a row.
        let (first, end) = (k * total / n, (k + 1) * total / n);
        let mut out = Vec::with_capacity(32 * (end - first) / 2 + 64);
        if k == 0 {
            out.extend_from_slice(format!(r#"{{"from":{from},"to":{to},"series":["#).as_bytes());
        }
        let mut before = 0;
        for (i, s) in series.iter().enumerate() {
            // Every field named, so that a new field cannot be forgotten here.
            let Series {
                signal,
                timestamps,
                values,
                downsampled,
            } = s;
            let (pieces, len) = (Self::pieces(s), timestamps.len());
            let (lo, hi) = (first.max(before), end.min(before + pieces));
            for piece in lo.saturating_sub(before)..hi.saturating_sub(before) {
                match piece {
                    0 => {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(br#"{"signal":"#);
                        json(&mut out, signal);
                        out.extend_from_slice(br#","timestamps":["#);
                    }
                    p if p <= len => {
                        if p > 1 {
                            out.push(b',');
                        }
                        json(&mut out, &timestamps[p - 1]);
                    }
                    p if p == len + 1 => out.extend_from_slice(br#"],"values":["#),
                    p if p <= 2 * len + 1 => {
                        if p > len + 2 {
                            out.push(b',');
                        }
                        json(&mut out, &values[p - len - 2]);
                    }
                    _ => out.extend_from_slice(
                        format!(r#"],"downsampled":{downsampled}}}"#).as_bytes(),
                    ),
                }
            }
            before += pieces;
        }
        if k == n - 1 {
            out.extend_from_slice(b"]}");
        }
        Cow::Owned(out)
    }
}

/// The signal list as JSON, written in parts by the threads that deflate them, as `HistoryJson`, so
/// that a long list never lies in memory whole as JSON too. Joined, the parts are exactly what
/// `serde_json` makes of the list.
struct SignalsJson(Vec<SignalInfo>);

impl SignalsJson {
    /// About how many bytes of JSON `signals` take: the name and ~70 bytes of field names and
    /// numbers each.
    fn guess(signals: &[SignalInfo]) -> usize {
        signals.iter().map(|s| s.signal.len() + 70).sum()
    }
}

impl InParts for SignalsJson {
    fn size_hint(&self) -> usize {
        Self::guess(&self.0) + 2
    }

    fn part(&self, k: usize, n: usize) -> Cow<'_, [u8]> {
        let all = &self.0;
        // Part k holds signals [first, end).
        let (first, end) = (k * all.len() / n, (k + 1) * all.len() / n);
        let mut out = Vec::with_capacity(Self::guess(&all[first..end]) + 2);
        if k == 0 {
            out.push(b'[');
        }
        for (i, signal) in all[first..end].iter().enumerate() {
            if first + i > 0 {
                out.push(b',');
            }
            json(&mut out, signal);
        }
        if k == n - 1 {
            out.push(b']');
        }
        Cow::Owned(out)
    }
}

/// Appends `value` as serde_json writes it (so exactly as in a whole answer).
fn json(out: &mut Vec<u8>, value: &impl Serialize) {
    // Writing strings and numbers into a `Vec` cannot fail.
    serde_json::to_writer(out, value).expect("plain data serializes");
}

/// `max_points=N`: at least 4 (a bucket's first, lowest, highest, last), at most the raw cap.
fn parse_max_points(text: Option<&str>, cap: usize) -> Result<Option<usize>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    match text.parse::<usize>() {
        Ok(n) if (MIN_MAX_POINTS..=cap).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::BadRequest(format!(
            "max_points: {text:?} is not a whole number between {MIN_MAX_POINTS} and {cap}"
        ))),
    }
}

/// Turns query parameters into a range: `hours=H` means the last H hours; otherwise `from` (default: an
/// hour before `to`) and `to` (default: now), each RFC 3339 or epoch milliseconds.
pub fn parse_range(params: &HistoryParams, now: Timestamp) -> Result<Range, ApiError> {
    let bad = |what: String| ApiError::BadRequest(what);
    let signals = params
        .signals
        .as_deref()
        .map(|list| SignalName::parse_list(list).map_err(ApiError::BadRequest))
        .transpose()?;
    let (from, to) = match &params.hours {
        Some(_) if params.from.is_some() || params.to.is_some() => {
            return Err(bad("give either hours or from/to, not both".into()))
        }
        Some(hours) => {
            let h: f64 = hours
                .parse()
                .map_err(|_| bad(format!("hours: {hours:?} is not a number")))?;
            if !(h.is_finite() && h > 0.0) {
                return Err(bad(format!(
                    "hours: must be a positive number, got {hours}"
                )));
            }
            (now.saturating_add(-((h * HOUR as f64) as i64)), now)
        }
        None => {
            let parse = |name: &str, text: &Option<String>| {
                text.as_deref()
                    .map(|t| Timestamp::parse(t).map_err(|e| bad(format!("{name}: {e}"))))
                    .transpose()
            };
            let to = parse("to", &params.to)?.unwrap_or(now);
            let from = parse("from", &params.from)?
                .unwrap_or_else(|| to.saturating_add(-DEFAULT_WINDOW_MS));
            (from, to)
        }
    };
    ordered_range(from, to, signals)
}

/// The range, if it does not end before it starts: the last check of both ways of asking.
fn ordered_range(
    from: Timestamp,
    to: Timestamp,
    signals: Option<Vec<SignalName>>,
) -> Result<Range, ApiError> {
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "from ({}) is after to ({})",
            from.millis(),
            to.millis()
        )));
    }
    Ok(Range { from, to, signals })
}

/// Reads a range: decimated to `max_points` per series when given, else raw. Either way the answer
/// holds at most `cap` points in all: raw, a range that holds more is refused (400); decimated, each
/// series gets its share of the cap when `max_points` for every signal asked for would exceed it.
pub async fn history(
    store: &Store,
    range: Range,
    max_points: Option<usize>,
    cap: usize,
) -> Result<History, ApiError> {
    let shape = match max_points {
        Some(max_points) => {
            let signals = match &range.signals {
                Some(names) => names.len(),
                None => store.signal_count(),
            };
            let share = (cap / signals.max(1)).max(MIN_MAX_POINTS);
            Shape::Decimated {
                max_points: max_points.min(share),
            }
        }
        None => Shape::Raw { limit: cap },
    };
    let series = store.read(&range, shape).await?;
    let total: usize = series.iter().map(|s| s.timestamps.len()).sum();
    if total > cap {
        return Err(ApiError::BadRequest(match max_points {
            None => format!(
                "the range holds more than {cap} points; narrow the range or the signals, \
                 or ask for max_points"
            ),
            Some(_) => format!(
                "{} signals at {MIN_MAX_POINTS} points each are more than the {cap} points an \
                 answer may hold; ask for fewer signals",
                series.len()
            ),
        }));
    }
    Ok(History {
        from: range.from.millis(),
        to: range.to.millis(),
        series,
    })
}

/// The dashboard's form of a range: epoch milliseconds from the browser, validated like the REST API's.
pub fn range_from_millis(
    from: i64,
    to: i64,
    signals: Option<Vec<String>>,
) -> Result<Range, ApiError> {
    let stamp = |name: &str, ms: i64| {
        Timestamp::from_millis(ms).map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))
    };
    let signals = signals
        .map(|names| {
            SignalName::parse_all(names.iter().map(String::as_str)).map_err(ApiError::BadRequest)
        })
        .transpose()?;
    ordered_range(stamp("from", from)?, stamp("to", to)?, signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_687_200_000;

    fn range(query: &str) -> Result<Range, ApiError> {
        let Query(params) = Query::<HistoryParams>::try_from_uri(
            &format!("/api/telemetry?{query}").parse().unwrap(),
        )
        .unwrap();
        parse_range(&params, Timestamp::from_millis(NOW).unwrap())
    }

    #[test]
    fn defaults_to_the_last_hour() {
        let r = range("").unwrap();
        assert_eq!((r.from.millis(), r.to.millis()), (NOW - 3_600_000, NOW));
        assert!(r.signals.is_none());
    }

    #[test]
    fn hours_and_signals() {
        let r = range("hours=0.5&signals=a,b.c").unwrap();
        assert_eq!((r.from.millis(), r.to.millis()), (NOW - 1_800_000, NOW));
        let names: Vec<&str> = r
            .signals
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(names, ["a", "b.c"]);
    }

    #[test]
    fn from_and_to_in_either_format() {
        let r = range("from=2026-11-26T09:00:00Z&to=1795687200000").unwrap();
        assert_eq!((r.from.millis(), r.to.millis()), (NOW - 3_600_000, NOW));
    }

    #[test]
    fn max_points_bounds() {
        assert_eq!(parse_max_points(None, 100).unwrap(), None);
        assert_eq!(parse_max_points(Some("4"), 100).unwrap(), Some(4));
        assert_eq!(parse_max_points(Some("100"), 100).unwrap(), Some(100));
        for bad in ["3", "0", "-5", "101", "ten", "1.5", ""] {
            let e = parse_max_points(Some(bad), 100).unwrap_err().to_string();
            assert!(e.contains("max_points"), "{bad}: {e}");
        }
    }

    #[test]
    fn history_json_in_parts_joins_into_what_serde_makes() {
        let series = |name: &str, points: i64| crate::model::Series {
            signal: name.into(),
            timestamps: (0..points).collect(),
            values: (0..points).map(|i| i as f64 / 3.0).collect(),
            downsampled: points % 2 == 0,
        };
        for all in [
            vec![],
            vec![series("a", 5)],
            vec![
                series("a", 0),
                series("b\"c", 90),
                series("d", 10),
                series("e", 1),
            ],
        ] {
            let history = History {
                from: -5,
                to: NOW,
                series: all,
            };
            let expected = serde_json::to_vec(&history).unwrap();
            let json = HistoryJson(history);
            for n in 1..=12 {
                let joined: Vec<u8> = (0..n).flat_map(|k| json.part(k, n).into_owned()).collect();
                assert_eq!(
                    String::from_utf8(joined).unwrap(),
                    String::from_utf8(expected.clone()).unwrap(),
                    "{n} parts"
                );
            }
        }
    }

    #[test]
    fn the_signal_list_in_parts_joins_into_what_serde_makes() {
        let info = |name: &str, i: u64| SignalInfo {
            signal: name.into(),
            points: i,
            last_timestamp: NOW - i as i64,
            last_value: i as f64 / 7.0,
        };
        for all in [
            vec![],
            vec![info("a", 1)],
            (0..25).map(|i| info(&format!("s\"{i}"), i)).collect(),
        ] {
            let expected = String::from_utf8(serde_json::to_vec(&all).unwrap()).unwrap();
            let json = SignalsJson(all);
            for n in 1..=30 {
                let joined: Vec<u8> = (0..n).flat_map(|k| json.part(k, n).into_owned()).collect();
                assert_eq!(String::from_utf8(joined).unwrap(), expected, "{n} parts");
            }
        }
    }

    #[test]
    fn bad_parameters() {
        for (query, needle) in [
            ("hours=abc", "not a number"),
            ("hours=-1", "positive"),
            ("hours=NaN", "positive"),
            ("hours=1&from=5", "either"),
            ("from=yesterday", "from:"),
            ("to=2026-13-01T00:00:00Z", "to:"),
            ("from=1795687200000&to=1795687100000", "after"),
            ("signals=a,,b", "empty"),
        ] {
            let message = range(query)
                .err()
                .unwrap_or_else(|| panic!("{query} accepted"))
                .to_string();
            assert!(message.contains(needle), "{query}: {message}");
        }
    }
}
