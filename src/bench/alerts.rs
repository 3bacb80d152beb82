//! `signalboard bench --rules N`: what alert rules cost. On a server of its own (a new SQLite
//! database), the line-protocol batches go in without rules and with `N` rules on the batch's
//! signals (thresholds no point reaches: the cost of evaluating, not of firing), taking turns; then the time from a post that crosses a rule's threshold to its webhook's delivery, at
//! a receiver on loopback, alternating firing and resolving.

use super::ingest::{batch_phase, day_ago, Format};
use super::servers::{BenchDatabase, OwnServer};
use super::{median, ms, BenchArgs};
use anyhow::{bail, Context};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Crossings timed for the webhook latency, and turns of ingest with and without rules.
const CROSSINGS: usize = 200;
const ROUNDS: usize = 4;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let database = BenchDatabase::new(None).await?;
    let server = OwnServer::start(&database.url, args.durability).await?;
    let client = reqwest::Client::new();
    let clock = day_ago();
    let write = [format!("{}/api/v2/write", server.url)];
    println!("| phase | figure |\n|---|---|");
    // Taking turns, four times each, in the order A B B A A B B A: the database grows as the phases
    // run, and this way neither side has more of the later (larger) turns.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            without.push(batch_phase(&client, &write, args, &clock, Format::LineProtocol).await?);
        }
        let mut ids = Vec::with_capacity(args.rules);
        for i in 0..args.rules {
            let rule = serde_json::json!({
                "name": format!("bench {i}"),
                "signal": format!("bench.batch.{}", i % args.signals as usize),
                "condition": {"kind": "above", "threshold": 1e12},
            });
            ids.push(create(&client, &server.url, &rule).await?);
        }
        with.push(batch_phase(&client, &write, args, &clock, Format::LineProtocol).await?);
        for id in ids {
            client
                .delete(format!("{}/api/alerts/{id}", server.url))
                .send()
                .await?
                .error_for_status()?;
        }
        if round % 2 == 1 {
            without.push(batch_phase(&client, &write, args, &clock, Format::LineProtocol).await?);
        }
    }
    let (without, with) = (median(&without), median(&with));
    println!(
        "| line protocol, {} signals, no rules / {} rules (medians of {ROUNDS} turns each) | {without:.0} / {with:.0} points/s (ratio {:.3}) |",
        args.signals,
        args.rules,
        with / without
    );

    let (hook, mut heard) = receiver().await?;
    let rule = serde_json::json!({
        "name": "latency", "signal": "bench.crossing",
        "condition": {"kind": "above", "threshold": 50}, "webhook": hook,
    });
    create(&client, &server.url, &rule).await?;
    let mut latencies = Vec::with_capacity(CROSSINGS);
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
    for k in 0..CROSSINGS {
        let value = if k % 2 == 0 { 100.0 } else { 0.0 };
        let sample =
            serde_json::json!({"timestamp": t0 + k as i64, "signals": {"bench.crossing": value}});
        let began = Instant::now();
        let posted = client
            .post(format!("{}/api/telemetry", server.url))
            .json(&sample)
            .send()
            .await?;
        if !posted.status().is_success() {
            bail!("posting a crossing answered {}", posted.status());
        }
        tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .context("no webhook within 10 s")?;
        latencies.push(began.elapsed());
    }
    latencies.sort();
    let at = |q: f64| Some(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
    println!(
        "| post crossing a threshold → webhook delivered, {CROSSINGS} crossings | p50 {} / p99 {} |",
        ms(at(0.50)),
        ms(at(0.99))
    );
    server.stop().await
}

/// Creates a rule; returns its id.
async fn create(
    client: &reqwest::Client,
    base: &str,
    rule: &serde_json::Value,
) -> anyhow::Result<i64> {
    let created = client
        .post(format!("{base}/api/alerts"))
        .json(rule)
        .send()
        .await?;
    if created.status() != 201 {
        bail!("creating a rule answered {}", created.status());
    }
    let id = created.json::<serde_json::Value>().await?["id"].as_i64();
    id.context("a created rule's answer has no id")
}

/// A webhook receiver on loopback: its URL, and a message per notification received.
async fn receiver() -> anyhow::Result<(String, mpsc::UnboundedReceiver<()>)> {
    let (heard, listen) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let _ = heard.send(());
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, listen))
}
