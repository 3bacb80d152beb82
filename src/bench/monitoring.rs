//! `signalboard bench --metrics`: what watching itself costs the server. Two servers side by side,
//! each on a new SQLite database: one with the shipped monitoring (`/metrics` and the counting of
//! every request, its own signals every 5 s), one with all of it off; line-protocol batches and
//! single-sample POSTs go to both, taking turns. Then what one scrape of `/metrics` costs as the
//! signals grow: none, `--signals`, and 100,000.

use super::ingest::{batch_phase, day_ago, single_phase, Format};
use super::servers::{BenchDatabase, OwnServer};
use super::{median, ms, BenchArgs};
use anyhow::bail;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Turns of each phase on each server.
const ROUNDS: usize = 4;
/// Scrapes timed at each size.
const SCRAPES: usize = 101;
/// Signals in the widest scrape.
const MANY_SIGNALS: usize = 100_000;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (on_db, off_db) = (
        BenchDatabase::new(None).await?,
        BenchDatabase::new(None).await?,
    );
    let on_config = settings(dir.path(), true)?;
    let on = OwnServer::start_configured(&on_db.url, args.durability, &on_config).await?;
    let off_config = settings(dir.path(), false)?;
    let off = OwnServer::start_configured(&off_db.url, args.durability, &off_config).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections.max(8))
        .build()?;
    println!("| phase | figure |\n|---|---|");
    let empty = scrape_cost(&client, &on.url).await?;

    // Turns in the order A B B A A B B A: the databases grow as the phases run, and this way
    // neither side has more of the later (larger) turns.
    let clock = day_ago();
    let mut batches = Turns::default();
    let mut singles = Turns::default();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [&on, &off]
        } else {
            [&off, &on]
        };
        for server in order {
            let write = [format!("{}/api/v2/write", server.url)];
            let rate = batch_phase(&client, &write, args, &clock, Format::LineProtocol).await?;
            let telemetry = format!("{}/api/telemetry", server.url);
            let single = single_phase(&client, &telemetry, args, &clock, None).await;
            let single = single.ok as f64 / single.elapsed.as_secs_f64();
            let monitored = std::ptr::eq(server, &on);
            batches.record(monitored, rate);
            singles.record(monitored, single);
        }
    }
    println!(
        "| line-protocol batches, {} signals: monitoring on / off (medians of {ROUNDS} turns) | {} |",
        args.signals,
        batches.summary("points/s")
    );
    println!(
        "| single-sample POSTs, {} clients: monitoring on / off (medians of {ROUNDS} turns) | {} |",
        args.connections,
        singles.summary("requests/s")
    );
    off.stop().await?;

    let some = scrape_cost(&client, &on.url).await?;
    let many: String = (0..MANY_SIGNALS)
        .map(|i| {
            format!(
                "bench.wide.{i} value=1 {}\n",
                clock.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect();
    let posted = client
        .post(format!("{}/api/v2/write?precision=ms", on.url))
        .body(many)
        .send()
        .await?;
    if !posted.status().is_success() {
        bail!(
            "posting {MANY_SIGNALS} signals answered {}",
            posted.status()
        );
    }
    let wide = scrape_cost(&client, &on.url).await?;
    for (signals, cost) in [
        (0, empty),
        (args.signals as usize + 1, some),
        (MANY_SIGNALS, wide),
    ] {
        println!(
            "| GET /metrics with {signals} signals (median of {SCRAPES}) | {} , {} bytes |",
            ms(Some(cost.median)),
            cost.bytes
        );
    }
    on.stop().await
}

/// A settings file with the server's monitoring on (as shipped) or all of it off.
fn settings(dir: &Path, monitoring: bool) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("monitoring-{monitoring}.toml"));
    let own_signals = if monitoring { 5 } else { 0 };
    std::fs::write(
        &path,
        format!(
            "[package.metadata.leptos]\noutput-name = \"signalboard\"\nsite-root = \"target/site\"\n\n\
             [signalboard]\nmetrics = {monitoring}\nself-signals-secs = {own_signals}\n"
        ),
    )?;
    Ok(path)
}

/// Rates measured with monitoring on and off.
#[derive(Default)]
struct Turns {
    on: Vec<f64>,
    off: Vec<f64>,
}

impl Turns {
    fn record(&mut self, monitored: bool, rate: f64) {
        match monitored {
            true => self.on.push(rate),
            false => self.off.push(rate),
        }
    }

    fn summary(&self, unit: &str) -> String {
        let (on, off) = (median(&self.on), median(&self.off));
        format!("{on:.0} / {off:.0} {unit} (ratio {:.3})", on / off)
    }
}

struct ScrapeCost {
    median: Duration,
    bytes: usize,
}

async fn scrape_cost(client: &reqwest::Client, base: &str) -> anyhow::Result<ScrapeCost> {
    let mut times = Vec::with_capacity(SCRAPES);
    let mut bytes = 0;
    for _ in 0..SCRAPES {
        let began = Instant::now();
        let response = client.get(format!("{base}/metrics")).send().await?;
        if !response.status().is_success() {
            bail!("GET /metrics answered {}", response.status());
        }
        bytes = response.bytes().await?.len();
        times.push(began.elapsed());
    }
    times.sort();
    Ok(ScrapeCost {
        median: times[SCRAPES / 2],
        bytes,
    })
}
