//! What load balancers, orchestrators and log collectors ask of a server: `/healthz` (the process
//! serves), `/readyz` (it can take traffic, or why not), and log lines a machine can read.

mod common;

use common::{free_port, TestServer};
use std::io::BufRead;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_writes_back_up_while_healthz_stays_up() {
    let server = TestServer::start_with(|s| s.limits.write_queue_points = 10).await;
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(
        (ready["database"].as_str(), ready["writer"].as_str()),
        (Some("ok"), Some("ok"))
    );

    // Ten points wait for a commit that the locked database cannot make yet: the queue is full.
    let block = server.block_writes().await;
    let samples: Vec<serde_json::Value> = (0..10)
        .map(|k| serde_json::json!({"timestamp": common::NOW - 1_000 + k, "signals": {"q": 1}}))
        .collect();
    let posting = tokio::spawn({
        let (client, url) = (server.client.clone(), server.url("/api/telemetry"));
        async move {
            client
                .post(url)
                .json(&samples)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let backlogged = loop {
        let (status, ready) = server.get("/readyz").await;
        if status == 503 {
            break ready;
        }
        assert!(Instant::now() < deadline, "never backlogged: {ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(backlogged["writer"], "backlogged", "{backlogged}");
    assert_eq!(backlogged["queued_points"], 10);
    assert!(server.healthy().await, "alive all the same");

    block.release().await;
    posting.await.unwrap().unwrap();
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(
        (status, &ready["queued_points"]),
        (200, &serde_json::json!(0)),
        "{ready}"
    );
    server.stop().await;
}

/// Every error answer is logged with its reason, up to 60 lines a minute: a flood of bad requests
/// cannot fill the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_a_line_and_refusals_at_a_bounded_rate() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("logs.db").display());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .args(["serve", "--log-format", "json", "--database-url", &database])
        .args(["--addr", &addr])
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    // Every line is an object of its own.
    let next = || {
        let line = lines.recv_timeout(Duration::from_secs(10)).ok()?;
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["timestamp"].is_string() && entry["level"].is_string(),
            "{entry}"
        );
        Some(entry)
    };
    let message =
        |entry: &serde_json::Value| entry["fields"]["message"].as_str().map(str::to_owned);
    let listening = std::iter::from_fn(next)
        .find(|entry| message(entry).is_some_and(|m| m.contains("listening")))
        .expect("a line saying it listens");
    assert_eq!(listening["level"], "INFO");

    let client = reqwest::Client::new();
    for _ in 0..200 {
        let response = client
            .post(format!("http://{addr}/api/telemetry"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    let refused: Vec<serde_json::Value> = std::iter::from_fn(|| {
        let line = lines.recv_timeout(Duration::from_secs(2)).ok()?;
        Some(serde_json::from_str::<serde_json::Value>(&line).unwrap())
    })
    .filter(|entry| message(entry).as_deref() == Some("request refused"))
    .collect();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(refused.len(), 60, "{refused:?}");
    let fields = &refused[0]["fields"];
    assert_eq!(
        (&fields["status"], &fields["reason"], &fields["target"]),
        (
            &serde_json::json!(400),
            &serde_json::json!("invalid"),
            &serde_json::json!("/api/telemetry")
        ),
        "{fields}"
    );
    assert!(
        fields["detail"].as_str().unwrap().contains("JSON"),
        "{fields}"
    );
}
