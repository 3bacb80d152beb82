//! `signalboard bench`: the benchmarks whose figures the README quotes — ingest (`ingest.rs`), with
//! `--query` history reads (`history.rs`), with `--edge` an edge in front of a server (`edge.rs`),
//! with `--rules` what alert rules cost (`alerts.rs`), with `--metrics` what the server's watching
//! of itself costs (`monitoring.rs`), with `--sweep` ingest from `wrk` at several concurrencies
//! (`sweep.rs`) — against real server processes
//! (`servers.rs`): this same binary's `serve` on a fresh database in a temporary directory, and with
//! `--victoria-metrics` the peer. Client and server share the machine, as they do in the peer's
//! figures.

mod alerts;
mod edge;
mod history;
mod ingest;
mod monitoring;
mod servers;
mod sweep;

use clap::Args;
use signalboard::server::store::Durability;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Benchmark a running server at this base URL (e.g. http://127.0.0.1:3000) instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// Store in a new database on this PostgreSQL cluster (postgres://USER@HOST:PORT/postgres, e.g.
    /// one of `scripts/postgres.sh start`) instead of a new SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Servers sharing the database (PostgreSQL only), the clients spread evenly over them; with two
    /// or more, also the time from a post on one server to the WebSocket message on another.
    #[arg(long, default_value_t = 1)]
    pub servers: usize,
    /// Points to send in the batch phase.
    #[arg(long, default_value_t = 1_000_000)]
    pub points: u64,
    /// Distinct signals in the batch phase.
    #[arg(long, default_value_t = 5)]
    pub signals: u32,
    /// Seconds each single-sample phase lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent clients in the saturation phase.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Offered rate of the fixed-rate phase, requests per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Durability of the server started by the benchmark.
    #[arg(long, default_value = "normal")]
    pub durability: Durability,
    /// Benchmark history reads instead: fill a database with `--days` of `--signals` at 1 Hz (through
    /// the store, as the writer would), then time the last hour raw and the whole range at
    /// `max_points=1000`, gzip on, median of 21 runs each; then ingest speed with and without a
    /// retention pass deleting six days of raw points.
    #[arg(long)]
    pub query: bool,
    /// Days of history for `--query`.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Also send the line-protocol batches to VictoriaMetrics (Debian package `victoria-metrics`),
    /// started on a temporary directory, and print the ratio. With `--query`: feed it the same
    /// history and time its raw export and `max_over_time`, taking turns with Signalboard's answers.
    #[arg(long)]
    pub victoria_metrics: bool,
    /// Benchmark `signalboard edge` instead: spool bytes per point and catch-up time after an
    /// outage, then throughput through an edge (`--points` line-protocol points).
    #[arg(long, conflicts_with = "query")]
    pub edge: bool,
    /// Benchmark alert rules instead: line-protocol ingest without rules and with this many on the
    /// batch's signals, then the time from a post crossing a threshold to its webhook's delivery.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["query", "edge"])]
    pub rules: usize,
    /// Benchmark self-monitoring instead: ingest on two servers, one with `/metrics`, request
    /// counting and its own signals, one without, taking turns; then the time and size of a
    /// `/metrics` scrape with none, `--signals` and 100,000 signals.
    #[arg(long, conflicts_with_all = ["query", "edge", "rules"])]
    pub metrics: bool,
    /// Benchmark line-protocol ingest with `wrk` (Debian package) instead, an independent load
    /// generator: 1, 4, 8, 16 and 32 connections, `--seconds` each, Signalboard and VictoriaMetrics
    /// taking turns, `--rounds` turns each at every step.
    #[arg(long, conflicts_with_all = ["query", "edge", "rules", "metrics"])]
    pub sweep: bool,
    /// Turns each server takes at every step of `--sweep`, the table showing their medians.
    #[arg(long, default_value_t = 3, requires = "sweep",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub rounds: usize,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.query {
        history::run(&args).await
    } else if args.edge {
        edge::run(&args).await
    } else if args.rules > 0 {
        alerts::run(&args).await
    } else if args.metrics {
        monitoring::run(&args).await
    } else if args.sweep {
        sweep::run(&args).await
    } else {
        ingest::run(args).await
    }
}

/// The median of `rates` (the mean of the middle two for an even count).
fn median(rates: &[f64]) -> f64 {
    let mut rates = rates.to_vec();
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    (rates[(n - 1) / 2] + rates[n / 2]) / 2.0
}

/// A duration as the tables print it, or a dash for none.
fn ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    })
}
