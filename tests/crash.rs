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

/// Series in the wide crash test: a fleet's worth, each sent a point a round as scrapes send them.
const FLEET: i64 = 100_000;
const LINES_PER_REQUEST: i64 = 1_000;

/// Request `n` of the wide test: lines `n * 1000..`, line `l` the point of host `l % FLEET` at
/// `first_timestamp() + l / FLEET`.
fn fleet_lines(n: i64) -> String {
    (n * LINES_PER_REQUEST..(n + 1) * LINES_PER_REQUEST)
        .map(|l| {
            let t = first_timestamp() + l / FLEET;
            format!("fleet,host=h{} up={l} {t}000000\n", l % FLEET)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_a_hundred_thousand_series_loses_no_acknowledged_point() {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("wide.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/api/v2/write");
    let client = reqwest::Client::new();
    let mut server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;

    // Four producers post until the server is gone; it is killed once 700,000 points are
    // acknowledged. Listing the signals on the way folds the journal (a read sees every committed
    // point), so both folded and journaled points are at stake.
    let (next, acked_points) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url, next, acked_points) = (
            client.clone(),
            url.clone(),
            next.clone(),
            acked_points.clone(),
        );
        producers.spawn(async move {
            let (mut acked, mut unacked) = (Vec::new(), Vec::new());
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let sent = client
                    .post(&url)
                    .body(fleet_lines(n))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().is_success()) {
                    acked.push(n);
                    acked_points.fetch_add(LINES_PER_REQUEST, Ordering::Relaxed);
                } else {
                    unacked.push(n);
                    return (acked, unacked);
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut folded = false;
    while acked_points.load(Ordering::Relaxed) < 700_000 {
        assert!(
            Instant::now() < deadline,
            "700,000 points took over two minutes"
        );
        if !folded && acked_points.load(Ordering::Relaxed) >= 300_000 {
            let listed = client.get(format!("{base}/api/signals")).send().await;
            assert!(listed.unwrap().status().is_success());
            folded = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let (mut acked, mut unacked) = (Vec::new(), Vec::new());
    while let Some(result) = producers.join_next().await {
        let (a, u) = result.unwrap();
        acked.extend(a);
        unacked.extend(u);
    }

    let _server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;
    // Each request gives a point to each of 1,000 hosts, every (host, time) once: a host's count
    // is at least its acknowledged points, at most those and the ones whose answer the kill cut off.
    let per_host = |requests: &[i64]| {
        let mut counts = vec![0i64; FLEET as usize];
        for n in requests {
            for l in n * LINES_PER_REQUEST..(n + 1) * LINES_PER_REQUEST {
                counts[(l % FLEET) as usize] += 1;
            }
        }
        counts
    };
    let fewest = per_host(&acked);
    let most = per_host(&[acked, unacked].concat());
    let signals = get_json(&client, &format!("{base}/api/signals")).await;
    let mut seen = 0;
    for signal in signals.as_array().unwrap() {
        let name = signal["signal"].as_str().unwrap();
        let Some(host) = name.strip_prefix("fleet.up{host=h") else {
            continue;
        };
        let host: usize = host.trim_end_matches('}').parse().unwrap();
        let points = signal["points"].as_i64().unwrap();
        assert!(
            (fewest[host]..=most[host]).contains(&points),
            "host {host}: {points} points, {} acknowledged, {} sent",
            fewest[host],
            most[host]
        );
        seen += 1;
    }
    assert_eq!(seen, FLEET, "every host is listed");
}
