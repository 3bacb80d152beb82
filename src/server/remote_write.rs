//! Prometheus remote write 1.0 on `POST /api/v1/write`: a snappy-compressed protobuf `WriteRequest`.
//! Each series becomes the signal `name{label=value,…}` (labels sorted by name, as line protocol's tags
//! are), each sample a point. Prometheus retries 5xx and gives up on 4xx, so: 204 once committed,
//! 400 for a body that does not decode, 503 + Retry-After when the write queue is full.

use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};
use crate::server::error::ApiError;
use crate::server::intake::{Intake, Skipped};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use prost::Message;

/// The messages of `prometheus/prompb/remote.proto` and `types.proto` that a write needs; fields
/// not declared here (metadata, exemplars, histograms) are skipped when decoding.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `POST /api/v1/write`.
pub async fn post_remote_write<I: Intake>(
    State(intake): State<I>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: intake.limits().max_body_bytes,
        },
        _ => ApiError::BadRequest(rejection.body_text()),
    })?;
    let request = decode(&body, intake.limits().max_body_bytes).map_err(ApiError::BadRequest)?;
    let samples: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
    let points = points(request, intake.now()).map_err(ApiError::BadRequest)?;
    let stale = samples - points.len();
    if !points.is_empty() {
        intake.write(points).await?;
    }
    let mut answer = StatusCode::NO_CONTENT.into_response();
    if stale > 0 {
        answer.extensions_mut().insert(Skipped {
            reason: "not_finite",
            count: stale,
        });
    }
    Ok(answer)
}

/// The request in `body`, refused before decompressing when it says it would be larger than
/// `limit` bytes: a small body cannot make the server allocate much.
fn decode(body: &[u8], limit: usize) -> Result<WriteRequest, String> {
    let size = snap::raw::decompress_len(body)
        .map_err(|e| format!("body is not snappy-compressed (remote write 1.0): {e}"))?;
    if size > limit {
        return Err(format!(
            "body decompresses to {size} bytes, more than the limit of {limit} (setting max-body-bytes)"
        ));
    }
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("body is not valid snappy: {e}"))?;
    WriteRequest::decode(bytes.as_slice()).map_err(|e| format!("body is not a WriteRequest: {e}"))
}

/// The request's samples as points. A value that is not finite is skipped: Prometheus marks a series
/// gone stale with a special NaN, and a chart cannot draw NaN or infinity.
fn points(request: WriteRequest, now: Timestamp) -> Result<Vec<DataPoint>, String> {
    let mut points = Vec::new();
    for series in request.timeseries {
        let name = signal_name(series.labels)?;
        for sample in series.samples {
            let Ok(value) = Value::new(sample.value) else {
                continue;
            };
            let timestamp = Timestamp::from_millis(sample.timestamp)
                .and_then(|t| t.not_ahead_of(now))
                .map_err(|e| format!("series {name}: {e}"))?;
            points.push(DataPoint {
                signal: name.clone(),
                timestamp,
                value,
            });
        }
    }
    Ok(points)
}

/// `__name__{label=value,…}`, the other labels sorted by name; no braces without labels.
fn signal_name(mut labels: Vec<Label>) -> Result<SignalName, String> {
    let at = labels.iter().position(|l| l.name == "__name__");
    let name = at.map(|i| labels.swap_remove(i).value).unwrap_or_default();
    if name.is_empty() {
        return Err("a series has no __name__ label".into());
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    let text = if labels.is_empty() {
        name
    } else {
        let pairs: Vec<String> = labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect();
        format!("{name}{{{}}}", pairs.join(","))
    };
    SignalName::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_687_200_000;

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn compressed(request: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn series_become_signals_with_sorted_labels_and_stale_markers_are_skipped() {
        // Prometheus' stale marker: a NaN with this exact bit pattern.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    label("mode", "idle"),
                    label("__name__", "node_cpu_seconds_total"),
                    label("cpu", "0"),
                ],
                samples: vec![
                    Sample {
                        value: 1.5,
                        timestamp: NOW - 1_000,
                    },
                    Sample {
                        value: stale,
                        timestamp: NOW,
                    },
                ],
            }],
        };
        let body = compressed(&request);
        let decoded = decode(&body, 1 << 20).unwrap();
        let points = points(decoded, Timestamp::from_millis(NOW).unwrap()).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(
            points[0].signal.as_str(),
            "node_cpu_seconds_total{cpu=0,mode=idle}"
        );
        assert_eq!(
            (points[0].timestamp.millis(), points[0].value.get()),
            (NOW - 1_000, 1.5)
        );
    }

    #[test]
    fn bodies_that_do_not_decode_or_would_grow_too_large_are_refused() {
        assert!(decode(b"not snappy at all", 1 << 20).is_err());
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
        assert!(decode(&garbage, 1 << 20)
            .unwrap_err()
            .contains("not a WriteRequest"));
        let big = snap::raw::Encoder::new()
            .compress_vec(&vec![0; 100_000])
            .unwrap();
        let error = decode(&big, 10_000).unwrap_err();
        assert!(error.contains("more than the limit of 10000"), "{error}");
        let nameless = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![label("job", "x")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: NOW,
                }],
            }],
        };
        let error = points(nameless, Timestamp::from_millis(NOW).unwrap()).unwrap_err();
        assert!(error.contains("no __name__"), "{error}");
    }
}
