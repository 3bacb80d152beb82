//! The bundled producer against real outages: its spool (`--spool`) keeps what the server has not
//! acknowledged through a server outage and through a crash of the producer itself, and a batch the
//! server refuses for good goes to the dead-letter file instead of being retried forever.

mod common;

use common::{free_port, get_json, wait_healthy, ServeProcess};
use signalboard::producer::spool::Spool;
use std::time::{Duration, Instant};
use tokio::process::Command;

fn producer(url: &str, spool: &std::path::Path) -> tokio::process::Child {
    Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .args([
            "produce",
            "--signals",
            "1",
            "--rate",
            "20",
            "--url",
            url,
            "--spool",
        ])
        .arg(spool)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The timestamps waiting in a spool.
async fn spooled(spool: &std::path::Path) -> Vec<i64> {
    let spool = Spool::open(Some(spool), 1 << 30, false).await.unwrap();
    spool
        .oldest(u64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|record| {
            serde_json::from_str::<serde_json::Value>(&record.json).unwrap()["timestamp"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_producer_loses_nothing_to_an_outage_or_to_its_own_crash() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/api/telemetry");

    // No server yet: the producer's samples wait in its spool, and it is killed there.
    let mut first = producer(&url, &spool);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    first.kill().await.unwrap();
    let waiting = spooled(&spool).await;
    assert!(waiting.len() >= 10, "{} samples spooled", waiting.len());

    // Restarted, it delivers them, and what it makes since, once the server is up.
    let _second = producer(&url, &spool);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let database = format!("sqlite://{}", dir.path().join("server.db").display());
    let _server = ServeProcess::start(&database, port);
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;
    let (from, to) = (waiting[0], waiting[waiting.len() - 1]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored: Vec<i64> = loop {
        let history = get_json(
            &client,
            &format!("{base}/api/telemetry?from={from}&to={to}"),
        )
        .await;
        let stored: Vec<i64> = history["series"][0]["timestamps"]
            .as_array()
            .map(|t| t.iter().map(|t| t.as_i64().unwrap()).collect())
            .unwrap_or_default();
        if stored.len() >= waiting.len() || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored, waiting, "every spooled sample, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_server_refuses_goes_to_the_dead_letter_file() {
    use tokio::io::AsyncWriteExt;
    let server =
        common::TestServer::start_with(|s| s.clock = signalboard::server::clock::system()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .args([
            "produce",
            "--stdin",
            "--url",
            &server.url("/api/telemetry"),
            "--spool",
        ])
        .arg(&spool)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let long = "x".repeat(300);
    input
        .write_all(format!("{long} 1\n").as_bytes())
        .await
        .unwrap();
    drop(input);
    let exited = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    assert!(exited.expect("gives up on it and exits").unwrap().success());
    let dead = std::fs::read_to_string(spool.join("dead.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert!(
        letter["reason"].as_str().unwrap().starts_with("400"),
        "{letter}"
    );
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("300 characters"),
        "{letter}"
    );
    assert_eq!(letter["samples"][0]["signals"][&long], 1.0);
    assert!(spooled(&spool).await.is_empty());
    server.stop().await;
}
