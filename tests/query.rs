//! History reads: decimation that keeps extremes, and the same answer in every encoding.

mod common;

use common::TestServer;
use signalboard::model::History;
use std::io::Read;

/// Six hours before the test servers' clock: the 20,000 seconds of `post_wave` end before it.
const T0: i64 = common::NOW - 6 * 3_600_000;

/// 20,000 points of a gentle wave on `wave`, one per second, with one spike and one dip.
async fn post_wave(server: &TestServer) {
    let mut samples = Vec::with_capacity(20_000);
    for i in 0..20_000i64 {
        let value = match i {
            7_777 => 1_000.0,
            12_345 => -1_000.0,
            _ => (i as f64 / 300.0).sin(),
        };
        samples.push(serde_json::json!({"timestamp": T0 + i * 1000, "signals": {"wave": value}}));
    }
    let (status, _) = server.post(&serde_json::to_string(&samples).unwrap()).await;
    assert_eq!(status, 200);
}

fn range(extra: &str) -> String {
    format!("/api/telemetry?from={T0}&to={}{extra}", T0 + 19_999_000)
}

#[tokio::test]
async fn a_spike_and_a_dip_survive_max_points() {
    let server = TestServer::start().await;
    post_wave(&server).await;

    let (status, body) = server.get(&range("&max_points=500")).await;
    assert_eq!(status, 200);
    let history: History = serde_json::from_value(body).unwrap();
    let wave = &history.series[0];
    assert!(wave.downsampled);
    assert!(
        wave.timestamps.len() <= 500,
        "{} points",
        wave.timestamps.len()
    );
    // About 125 buckets (fewer once aligned to rollup minutes); on a smooth stretch first = lowest
    // and last = highest, so 2 to 4 points each.
    assert!(
        wave.timestamps.len() >= 200,
        "{} points",
        wave.timestamps.len()
    );
    let at = |t: i64| {
        wave.timestamps
            .iter()
            .position(|&x| x == t)
            .map(|i| wave.values[i])
    };
    assert_eq!(at(T0 + 7_777_000), Some(1_000.0));
    assert_eq!(at(T0 + 12_345_000), Some(-1_000.0));

    // A budget larger than the range: the raw points, not marked.
    let (_, body) = server.get(&range("&max_points=50000")).await;
    let raw: History = serde_json::from_value(body).unwrap();
    assert!(!raw.series[0].downsampled);
    assert_eq!(raw.series[0].timestamps.len(), 20_000);
    server.stop().await;
}

#[tokio::test]
async fn bad_max_points_is_a_400() {
    let server = TestServer::start().await;
    for bad in ["0", "3", "-1", "many", "1e3", "1000000000"] {
        let (status, body) = server.get(&range(&format!("&max_points={bad}"))).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().unwrap().contains("max_points"),
            "{bad}: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_range_over_the_raw_cap_asks_for_max_points() {
    let server = TestServer::start_with(|s| s.limits.max_raw_points = 20_000).await;
    post_wave(&server).await;
    let (status, body) = server.get(&range("")).await;
    assert_eq!(status, 200, "exactly the cap: {body}");
    assert_eq!(
        body["series"][0]["timestamps"].as_array().unwrap().len(),
        20_000
    );

    let one_more = serde_json::json!({"timestamp": T0 + 500, "signals": {"other": 1.0}});
    assert_eq!(server.post(&one_more.to_string()).await.0, 200);
    let (status, body) = server.get(&range("")).await;
    assert_eq!(status, 400, "one point over the cap, in another signal");
    assert!(
        body["error"].as_str().unwrap().contains("max_points"),
        "{body}"
    );
    let (status, _) = server.get(&range("&max_points=1000")).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn gzip_brotli_and_msgpack_answers_carry_the_same_data() {
    let server = TestServer::start().await;
    post_wave(&server).await;
    let (_, plain) = server.get(&range("")).await;
    let plain: History = serde_json::from_value(plain).unwrap();

    // A client that leaves the bytes as sent: the point is to see the compression.
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let fetch = |encoding: &'static str, accept: &'static str| {
        let request = client
            .get(server.url(&range("")))
            .header("accept-encoding", encoding)
            .header("accept", accept);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            let (content_encoding, content_type) =
                (header("content-encoding"), header("content-type"));
            (
                content_encoding,
                content_type,
                response.bytes().await.unwrap().to_vec(),
            )
        }
    };

    let (encoding, _, body) = fetch("gzip", "application/json").await;
    assert_eq!(encoding, "gzip");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .unwrap();
    assert_eq!(serde_json::from_slice::<History>(&json).unwrap(), plain);

    let (encoding, _, body) = fetch("br", "application/json").await;
    assert_eq!(encoding, "br");
    let mut json = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut json)
        .unwrap();
    assert_eq!(serde_json::from_slice::<History>(&json).unwrap(), plain);

    let (_, content_type, body) = fetch("identity", "application/msgpack").await;
    assert_eq!(content_type, "application/msgpack");
    assert_eq!(rmp_serde::from_slice::<History>(&body).unwrap(), plain);
    assert!(
        body.len() < json.len(),
        "MessagePack is the smaller encoding"
    );
    server.stop().await;
}
