//! `signalboard bench --edge`: an edge in front of a server, both child processes on a new SQLite
//! database.
//! 1. an outage: the server is away while the points that 10 minutes at 1,000 points/s make
//!    (600,000, in line-protocol batches) go into an edge at its default forwarding rate: the spool's
//!    bytes per point; then the server comes back, and the time until the edge has forwarded them
//!    all, retry wait included (the catch-up);
//! 2. throughput: `--points` line-protocol points into an edge with no rate limit, the server up:
//!    points/s acknowledged by the edge, and points/s until all of them were forwarded.

use super::ingest::{batch_phase, day_ago, Format};
use super::servers::{free_port, BenchDatabase, OwnServer};
use super::BenchArgs;
use anyhow::bail;
use std::time::{Duration, Instant};

/// The edge's default `--forward-rate`, and one high enough to be no limit.
const DEFAULT_RATE: u32 = 100_000;
const NO_LIMIT: u32 = 1_000_000_000;
/// What a 10-minute outage at 1,000 points/s leaves in the spool.
const OUTAGE_POINTS: u64 = 600_000;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let database = BenchDatabase::new(None).await?;
    let spools = tempfile::tempdir()?;
    let port = free_port()?;
    let upstream = format!("http://127.0.0.1:{port}/api/telemetry");
    let client = reqwest::Client::new();
    let clock = day_ago();
    println!("| phase | figure |\n|---|---|");

    let outage_edge =
        OwnServer::edge(&upstream, &spools.path().join("outage"), DEFAULT_RATE).await?;
    let outage = BenchArgs {
        points: OUTAGE_POINTS,
        ..args.clone()
    };
    let write = [format!("{}/api/v2/write", outage_edge.url)];
    batch_phase(&client, &write, &outage, &clock, Format::LineProtocol).await?;
    let spooled = spool(&client, &outage_edge.url).await?;
    println!(
        "| edge spool, server away | {} bytes / {} points = {:.1} bytes/point |",
        spooled.bytes,
        spooled.waiting_points,
        spooled.bytes as f64 / spooled.waiting_points as f64
    );
    let server = OwnServer::start_on(port, &database.url, args.durability).await?;
    let back = Instant::now();
    drained(&client, &outage_edge.url).await?;
    println!(
        "| catch-up after the server returns, {OUTAGE_POINTS} points (10 min at 1,000 points/s), forward-rate {DEFAULT_RATE} | {:.1} s |",
        back.elapsed().as_secs_f64()
    );

    let edge = OwnServer::edge(&upstream, &spools.path().join("throughput"), NO_LIMIT).await?;
    let write = [format!("{}/api/v2/write", edge.url)];
    let began = Instant::now();
    let acknowledged = batch_phase(&client, &write, args, &clock, Format::LineProtocol).await?;
    drained(&client, &edge.url).await?;
    let forwarded = args.points as f64 / began.elapsed().as_secs_f64();
    println!(
        "| through an edge, {} signals, 1,000 lines/request, 4 clients, SQLite | {acknowledged:.0} points/s acknowledged, {forwarded:.0} points/s forwarded |",
        args.signals
    );
    for process in [edge, outage_edge, server] {
        process.stop().await?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct SpoolReport {
    waiting_points: u64,
    bytes: u64,
}

async fn spool(client: &reqwest::Client, edge: &str) -> anyhow::Result<SpoolReport> {
    let url = format!("{edge}/api/spool");
    Ok(client.get(url).send().await?.json().await?)
}

/// Waits (five minutes at most) until the edge's spool is empty.
async fn drained(client: &reqwest::Client, edge: &str) -> anyhow::Result<()> {
    let began = Instant::now();
    while spool(client, edge).await?.waiting_points > 0 {
        if began.elapsed() > Duration::from_secs(300) {
            bail!("the edge did not forward its spool within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
