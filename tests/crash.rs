//! A server killed with SIGKILL mid-stream loses nothing it acknowledged, and a producer's retries after
//! the restart store nothing twice.

use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, get_json, wait_healthy, ServeProcess};

const POINTS_PER_REQUEST: i64 = 100;

/// Where the test's timestamps start: an hour ago, inside any raw retention.
fn first_timestamp() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.as_millis() as i64 - 3_600_000
    })
}

/// Request `n`: 100 points of signal `crash.{n % 4}` with timestamps unique to it.
fn request_body(n: i64) -> String {
    let samples: Vec<_> = (0..POINTS_PER_REQUEST)
        .map(|k| json!({"timestamp": first_timestamp() + n * POINTS_PER_REQUEST + k, "signals": {format!("crash.{}", n % 4): k}}))
        .collect();
    serde_json::to_string(&samples).unwrap()
}

async fn post(client: &reqwest::Client, url: &str, n: i64) -> bool {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(request_body(n))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_point_and_retries_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("crash.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/api/telemetry");
    let client = reqwest::Client::new();

    let mut server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;

    // Four producers post as fast as they are answered; the server is killed while they do.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..4i64 {
        let (client, url) = (client.clone(), url.clone());
        producers.spawn(async move {
            let (mut acked, mut unacked) = (Vec::new(), Vec::new());
            let mut n = p;
            while Instant::now() < deadline {
                if post(&client, &url, n).await {
                    acked.push(n)
                } else {
                    unacked.push(n)
                }
                n += 4;
            }
            (acked, unacked)
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill();

    let (mut acked, mut unacked) = (BTreeSet::new(), BTreeSet::new());
    while let Some(result) = producers.join_next().await {
        let (a, u) = result.unwrap();
        acked.extend(a);
        unacked.extend(u);
    }
    assert!(
        acked.len() > 10,
        "the producers got going before the kill ({} acked)",
        acked.len()
    );
    assert!(!unacked.is_empty(), "the kill happened mid-stream");

    let _server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;
    let stored = |body: serde_json::Value| -> BTreeSet<i64> {
        body["series"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["timestamps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_i64().unwrap())
            })
            .collect()
    };
    let history = format!(
        "{base}/api/telemetry?from={}&to={}",
        first_timestamp(),
        first_timestamp() + 3_600_000
    );
    let before_retry = stored(
        client
            .get(&history)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    for n in &acked {
        let first = first_timestamp() + n * POINTS_PER_REQUEST;
        for t in first..first + POINTS_PER_REQUEST {
            assert!(
                before_retry.contains(&t),
                "acknowledged request {n} lost point {t}"
            );
        }
    }

    // The producers retry what was not acknowledged, and (as a careless producer would) some of what was.
    for n in unacked.iter().chain(acked.iter().take(5)) {
        assert!(post(&client, &url, *n).await, "retry of request {n}");
    }
    let signals = get_json(&client, &format!("{base}/api/signals")).await;
    // The test's points: not the server's own `signalboard.*` signals.
    let points: i64 = signals
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["signal"].as_str().unwrap().starts_with("signalboard."))
        .map(|s| s["points"].as_i64().unwrap())
        .sum();
    let requests = acked.union(&unacked).count() as i64;
    assert_eq!(
        points,
        requests * POINTS_PER_REQUEST,
        "each point stored exactly once"
    );
}
