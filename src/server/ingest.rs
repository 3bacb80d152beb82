//! The write endpoints: JSON on `POST /api/telemetry`, Influx line protocol on `POST /api/v2/write` and
//! `POST /write`. A body is parsed and validated completely before anything is queued, so a request is
//! stored whole or not at all; the answer comes only after the writer has committed it.

use crate::config::Limits;
use crate::model::Accepted;
use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};
use crate::server::error::ApiError;
use crate::server::intake::{Intake, Skipped};
use crate::server::lineproto::{self, Precision};
use crate::server::log_throttle::LogThrottle;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// `POST /api/telemetry`: one JSON sample or an array of them → `200 {"accepted": points}`.
pub async fn post_json<I: Intake>(
    State(intake): State<I>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Accepted>, ApiError> {
    require_json(&headers)?;
    let body = read_body(body, intake.limits())?;
    let points =
        parse_samples(&body, intake.now(), intake.limits()).map_err(ApiError::BadRequest)?;
    let accepted = intake.write(points).await?;
    Ok(Json(Accepted { accepted }))
}

#[derive(Deserialize)]
pub struct WriteParams {
    /// Unit of the timestamps: ns (default), us, ms, s. Other InfluxDB parameters (db, bucket, org, rp)
    /// are accepted and ignored: there is one database.
    precision: Option<String>,
}

/// The header that tells a line-protocol client how many string fields were skipped.
pub const SKIPPED_HEADER: &str = "x-signalboard-skipped-string-fields";

/// `POST /api/v2/write` and `POST /write`: Influx line protocol → `204`, string fields skipped and
/// counted in `SKIPPED_HEADER`.
pub async fn post_line_protocol<I: Intake>(
    State(intake): State<I>,
    params: Result<Query<WriteParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let precision = params
        .precision
        .as_deref()
        .map_or(Ok(Precision::Nanoseconds), Precision::parse)
        .map_err(ApiError::BadRequest)?;
    let body = read_body(body, intake.limits())?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not UTF-8: {e}")))?;
    let parsed = lineproto::parse(
        text,
        precision,
        intake.now(),
        intake.limits(),
        intake.line_names(),
    )
    .map_err(ApiError::BadRequest)?;
    if !parsed.points.is_empty() {
        intake.write(parsed.points).await?;
    }
    let mut answer = StatusCode::NO_CONTENT.into_response();
    if parsed.skipped_strings > 0 {
        log_skipped(parsed.skipped_strings);
        answer
            .headers_mut()
            .insert(SKIPPED_HEADER, HeaderValue::from(parsed.skipped_strings));
        answer.extensions_mut().insert(Skipped {
            reason: "string_field",
            count: parsed.skipped_strings,
        });
    }
    Ok(answer)
}

/// Logs skipped string fields at most once a minute, with how many were skipped since the last
/// line: a Telegraf sending one in every batch must not fill the log.
fn log_skipped(count: usize) {
    static SKIPPED: LogThrottle = LogThrottle::new(1, Duration::from_secs(60));
    if let Some(skipped) = SKIPPED.admit(count as u64) {
        tracing::info!(
            skipped,
            "skipped string fields of line protocol (a chart cannot draw them)"
        );
    }
}

/// The body, or the error that says why there is none: over the size limit (counted after gzip
/// decompression, so a small bomb is caught too), or unreadable.
fn read_body(body: Result<Bytes, BytesRejection>, limits: &Limits) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        },
        _ => ApiError::BadRequest(rejection.body_text()),
    })
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let found = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    // `application/json; charset=utf-8` is JSON too.
    let essence = found.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            found,
            expected: "application/json",
        })
    }
}

/// Parses and validates a whole body. `now` is the server's receive time: the timestamp of samples that
/// carry none, and the reference for "too far in the future".
pub fn parse_samples(
    body: &[u8],
    now: Timestamp,
    limits: &Limits,
) -> Result<Vec<DataPoint>, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let samples: Vec<RawSample> = match first {
        Some(b'[') => parse_array(body)?,
        Some(b'{') => vec![serde_json::from_slice(body).map_err(json_error)?],
        Some(_) => {
            return Err("body must be a JSON object (one sample) or array of samples".into())
        }
        None => return Err("body is empty: expected a JSON sample or array of samples".into()),
    };
    if samples.is_empty() {
        return Err("body is an empty array: expected at least one sample".into());
    }
    if samples.len() > limits.max_samples {
        return Err(format!(
            "{} samples, the limit per request is {}",
            samples.len(),
            limits.max_samples
        ));
    }
    let batch = samples.len() > 1;
    let mut points = Vec::new();
    for (index, sample) in samples.into_iter().enumerate() {
        let whose = |what: String| {
            if batch {
                format!("sample {index}: {what}")
            } else {
                what
            }
        };
        let timestamp = sample
            .timestamp
            .map_or(Ok(now), |t| t.0.and_then(|t| t.not_ahead_of(now)))
            .map_err(whose)?;
        if sample.signals.is_empty() {
            return Err(whose("signals must hold at least one signal".into()));
        }
        if sample.signals.len() > limits.max_signals {
            return Err(whose(format!(
                "{} signals, the limit per sample is {}",
                sample.signals.len(),
                limits.max_signals
            )));
        }
        for (name, value) in sample.signals {
            let signal = SignalName::parse(&name).map_err(whose)?;
            let value = Value::new(value).map_err(|e| whose(format!("signal {name:?}: {e}")))?;
            points.push(DataPoint {
                signal,
                timestamp,
                value,
            });
        }
    }
    Ok(points)
}

/// Parses an array of samples; an error names the sample it is in.
fn parse_array(body: &[u8]) -> Result<Vec<RawSample>, String> {
    let at = Cell::new(0);
    let mut json = serde_json::Deserializer::from_slice(body);
    SampleArray(&at)
        .deserialize(&mut json)
        .and_then(|samples| json.end().map(|()| samples))
        .map_err(|e| format!("sample {}: {}", at.get(), json_error(e)))
}

/// Deserialises `[sample, …]`, keeping in `.0` the index of the sample being read.
struct SampleArray<'a>(&'a Cell<usize>);

impl<'de> DeserializeSeed<'de> for SampleArray<'_> {
    type Value = Vec<RawSample>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SampleArray<'_> {
    type Value = Vec<RawSample>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of samples")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut samples = Vec::with_capacity(seq.size_hint().unwrap_or(16));
        loop {
            self.0.set(samples.len());
            match seq.next_element()? {
                Some(sample) => samples.push(sample),
                None => return Ok(samples),
            }
        }
    }
}

/// Syntax errors and shape errors read differently; both carry serde_json's line and column.
fn json_error(e: serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!("invalid sample: {e}"),
        _ => format!("invalid JSON: {e}"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSample {
    #[serde(default)]
    timestamp: Option<RawTimestamp>,
    #[serde(deserialize_with = "signal_values")]
    signals: Vec<(String, f64)>,
}

/// A timestamp as sent: RFC 3339 text or epoch milliseconds. Parsing errors are kept, not raised, so the
/// message can say which sample they belong to.
struct RawTimestamp(Result<Timestamp, String>);

impl<'de> Deserialize<'de> for RawTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawTimestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<RawTimestamp, E> {
                Ok(RawTimestamp(Timestamp::from_millis(ms)))
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<RawTimestamp, E> {
                let ms = i64::try_from(ms).unwrap_or(i64::MAX);
                Ok(RawTimestamp(Timestamp::from_millis(ms)))
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<RawTimestamp, E> {
                Ok(RawTimestamp(if ms.fract() == 0.0 {
                    // `as` saturates, so a huge value is reported as out of range.
                    Timestamp::from_millis(ms as i64)
                } else {
                    Err(format!(
                        "timestamp {ms} is not a whole number of milliseconds"
                    ))
                }))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawTimestamp, E> {
                Ok(RawTimestamp(Timestamp::parse(text)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `{"name": number, …}` in document order. A value that is not a number fails with the signal's name;
/// numbers beyond `f64` (like `1e400`) already fail in the JSON parser.
fn signal_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, f64)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of signal names to numbers")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut signals = Vec::with_capacity(map.size_hint().unwrap_or(4));
            while let Some(name) = map.next_key::<String>()? {
                let value = map.next_value_seed(NumberFor(&name))?;
                signals.push((name, value));
            }
            Ok(signals)
        }
    }
    d.deserialize_map(V)
}

/// A JSON number read straight into `f64` (no intermediate `serde_json::Value`: this is the hot path),
/// with the signal's name in the error when it is anything else.
struct NumberFor<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for NumberFor<'_> {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for NumberFor<'_> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a number for signal {:?}", self.0)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::domain::MAX_FUTURE_MS;

    const NOW: i64 = 1_795_687_200_000; // 2026-11-26T10:00:00Z

    fn parse(body: &str) -> Result<Vec<DataPoint>, String> {
        parse_samples(
            body.as_bytes(),
            Timestamp::from_millis(NOW).unwrap(),
            &Limits::default(),
        )
    }

    fn error(body: &str) -> String {
        match parse(body) {
            Ok(points) => panic!("{body} was accepted as {points:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn one_sample_with_rfc3339_timestamp() {
        let points =
            parse(r#"{"timestamp": "2026-11-26T10:00:00.123Z", "signals": {"boiler.temp": 71.5}}"#)
                .unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].signal.as_str(), "boiler.temp");
        assert_eq!(points[0].timestamp.millis(), NOW + 123);
        assert_eq!(points[0].value.get(), 71.5);
    }

    #[test]
    fn array_of_samples_with_epoch_ms_and_integers() {
        let points = parse(
            r#"[{"timestamp": 1795687200000, "signals": {"a": 1, "b": -2.5e3}},
                {"timestamp": 1795687201000.0, "signals": {"a": 2}}]"#,
        )
        .unwrap();
        let flat: Vec<(&str, i64, f64)> = points
            .iter()
            .map(|p| (p.signal.as_str(), p.timestamp.millis(), p.value.get()))
            .collect();
        assert_eq!(
            flat,
            [("a", NOW, 1.0), ("b", NOW, -2500.0), ("a", NOW + 1000, 2.0)]
        );
    }

    #[test]
    fn missing_or_null_timestamp_is_receive_time() {
        assert_eq!(
            parse(r#"{"signals": {"a": 1}}"#).unwrap()[0]
                .timestamp
                .millis(),
            NOW
        );
        let null = parse(r#"{"timestamp": null, "signals": {"a": 1}}"#).unwrap();
        assert_eq!(null[0].timestamp.millis(), NOW);
    }

    #[test]
    fn a_little_in_the_future_is_clock_skew_and_accepted() {
        let body = format!(
            r#"{{"timestamp": {}, "signals": {{"a": 1}}}}"#,
            NOW + MAX_FUTURE_MS
        );
        assert!(parse(&body).is_ok());
    }

    #[test]
    fn rejects_malformed_json() {
        assert!(error(r#"{"signals": {"a": 1}"#).contains("invalid JSON"));
        assert!(error(r#"[{"signals": {"a": 1}},]"#).contains("invalid JSON"));
        assert!(error("").contains("empty"));
        assert!(error("42").contains("JSON object"));
        assert!(error("[]").contains("at least one sample"));
    }

    #[test]
    fn rejects_wrong_types() {
        assert!(error(r#"{"signals": {"a": "1"}}"#).contains(r#"expected a number for signal "a""#));
        assert!(error(r#"{"signals": {"a": true}}"#).contains("expected a number for signal"));
        assert!(error(r#"{"signals": {"a": null}}"#).contains("expected a number for signal"));
        assert!(error(r#"{"signals": [1, 2]}"#).contains("invalid sample"));
        assert!(error(r#"{"timestamp": true, "signals": {"a": 1}}"#).contains("RFC 3339"));
        assert!(error(r#"{"signal": {"a": 1}}"#).contains("unknown field `signal`"));
        assert!(error(r#"{"timestamp": 5}"#).contains("missing field `signals`"));
    }

    #[test]
    fn rejects_overflowing_numbers() {
        assert!(error(r#"{"signals": {"a": 1e400}}"#).contains("out of range"));
        assert!(error(r#"{"signals": {"a": -1e400}}"#).contains("out of range"));
        assert!(error(r#"{"timestamp": 1e300, "signals": {"a": 1}}"#).contains("out of range"));
        assert!(
            error(r#"{"timestamp": 18446744073709551615, "signals": {"a": 1}}"#)
                .contains("out of range")
        );
        assert!(error(r#"{"timestamp": 1.5, "signals": {"a": 1}}"#).contains("whole number"));
    }

    #[test]
    fn rejects_too_many_samples_or_signals() {
        let limits = Limits {
            max_samples: 2,
            max_signals: 2,
            ..Limits::default()
        };
        let now = Timestamp::from_millis(NOW).unwrap();
        let three = r#"[{"signals": {"a": 1}}, {"signals": {"a": 1}}, {"signals": {"a": 1}}]"#;
        let e = parse_samples(three.as_bytes(), now, &limits).unwrap_err();
        assert!(e.contains("3 samples, the limit per request is 2"), "{e}");
        let wide = r#"{"signals": {"a": 1, "b": 2, "c": 3}}"#;
        let e = parse_samples(wide.as_bytes(), now, &limits).unwrap_err();
        assert!(e.contains("3 signals, the limit per sample is 2"), "{e}");
    }

    #[test]
    fn rejects_empty_signals() {
        assert!(error(r#"{"signals": {}}"#).contains("at least one signal"));
    }

    #[test]
    fn rejects_bad_names_and_says_where() {
        assert!(error(r#"{"signals": {"": 1}}"#).contains("must not be empty"));
        let long = format!(r#"{{"signals": {{"{}": 1}}}}"#, "n".repeat(201));
        assert!(error(&long).contains("201 characters"));
        assert!(error(r#"{"signals": {"a\u0007b": 1}}"#).contains("control character"));
        let second = error(r#"[{"signals": {"ok": 1}}, {"signals": {"a\nb": 1}}]"#);
        assert!(second.starts_with("sample 1: "), "{second}");
        let third =
            error(r#"[{"signals": {"ok": 1}}, {"signals": {"ok": 1}}, {"signals": {"x": "1"}}]"#);
        assert!(
            third.starts_with(
                "sample 2: invalid sample: invalid type: string \"1\", expected a number for signal \"x\""
            ),
            "{third}"
        );
    }

    #[test]
    fn rejects_bad_timestamps() {
        assert!(error(r#"{"timestamp": "yesterday", "signals": {"a": 1}}"#).contains("RFC 3339"));
        assert!(error(r#"{"timestamp": -1, "signals": {"a": 1}}"#).contains("out of range"));
        let future = format!(
            r#"[{{"signals": {{"a": 1}}}}, {{"timestamp": {}, "signals": {{"a": 1}}}}]"#,
            NOW + MAX_FUTURE_MS + 1
        );
        let e = error(&future);
        assert!(
            e.starts_with("sample 1: ") && e.contains("5 minutes ahead"),
            "{e}"
        );
    }

    #[test]
    fn require_json_content_type() {
        let mut headers = HeaderMap::new();
        assert!(require_json(&headers).is_err());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(require_json(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json(&headers).is_ok());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// JSON-ish text built from the pieces that matter: structure, keys, edge-case values.
        fn jsonish() -> impl Strategy<Value = String> {
            let pieces = prop_oneof![
                Just("{"),
                Just("}"),
                Just("["),
                Just("]"),
                Just(":"),
                Just(","),
                Just("\"signals\""),
                Just("\"timestamp\""),
                Just("\"a\""),
                Just("\"\""),
                Just("\"\\u0000\""),
                Just("1.5"),
                Just("-0"),
                Just("1e999"),
                Just("-1e400"),
                Just("18446744073709551616"),
                Just("null"),
                Just("true"),
                Just("\"2026-11-26T10:00:00Z\""),
                Just("\"9999-99-99\""),
                Just("\"\\ud800\""),
                Just(" "),
            ];
            prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse(std::str::from_utf8(&body).unwrap_or("{"));
                let _ = parse_samples(&body, Timestamp::from_millis(NOW).unwrap(), &Limits::default());
            }

            #[test]
            fn near_valid_json_never_panics_and_valid_points_are_valid(body in jsonish()) {
                if let Ok(points) = parse(&body) {
                    for p in points {
                        prop_assert!(p.value.get().is_finite());
                        prop_assert!(!p.signal.as_str().is_empty());
                    }
                }
            }
        }
    }
}
