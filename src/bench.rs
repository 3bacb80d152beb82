//! `signalboard bench`: the ingest benchmark whose figures the README quotes.
//!
//! It starts a real server process (this same binary, `serve`) on a fresh database in a temporary
//! directory, or targets `--url`, and drives it over loopback HTTP from this process:
//! 1. batch ingest: `--points` points in requests of 1,000 points, as JSON arrays and as Influx line
//!    protocol (and, with `--victoria-metrics`, the same line-protocol batches into VictoriaMetrics);
//! 2. single-sample POSTs at saturation (`--connections` clients, as fast as answered);
//! 3. single-sample POSTs at a fixed offered rate (`--rate` requests/s, open loop: latency is counted
//!    from when a request was due, so a stalled server cannot hide its stall);
//!
//! then, for its own server, stops it gracefully (SQLite checkpoints the WAL) and reports the database
//! file's bytes per stored point and the server's peak RSS. Client and server share the machine, as they
//! do in the figures it is compared with.

use crate::server::store::Durability;
use anyhow::{bail, Context};
use axum::body::Bytes;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Benchmark a running server at this base URL (e.g. http://127.0.0.1:3000) instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
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
}

/// The two batch encodings.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    LineProtocol,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.query {
        return query_bench(&args).await;
    }
    let own = match &args.url {
        Some(_) => None,
        None => {
            let dir = tempfile::tempdir()?;
            let database = dir.path().join("bench.db");
            Some(OwnServer::start(dir, database, args.durability).await?)
        }
    };
    let base = match (&args.url, &own) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(server)) => server.url.clone(),
        (None, None) => unreachable!("a server was started above"),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections.max(8))
        .build()?;
    let ingest = format!("{base}/api/telemetry");
    // Timestamps start a day ago and only grow, so no request overwrites another's points.
    let clock = Arc::new(AtomicI64::new(
        chrono::Utc::now().timestamp_millis() - 86_400_000,
    ));

    println!("| phase | figure |\n|---|---|");
    let json_rate = batch_phase(&client, &ingest, &args, &clock, Format::Json).await?;
    println!(
        "| JSON batch ingest, {} signals, 1,000 points/request, 4 clients | {json_rate:.0} points/s |",
        args.signals
    );
    let write = format!("{base}/api/v2/write");
    let lp_rate = batch_phase(&client, &write, &args, &clock, Format::LineProtocol).await?;
    println!(
        "| line-protocol batch ingest, {} signals, 1,000 lines/request, 4 clients | {lp_rate:.0} points/s |",
        args.signals
    );
    if args.victoria_metrics {
        let vm = Victoria::start().await?;
        let vm_rate = batch_phase(
            &client,
            &vm.write_url(),
            &args,
            &clock,
            Format::LineProtocol,
        )
        .await?;
        println!(
            "| VictoriaMetrics, same line-protocol batches | {vm_rate:.0} points/s (Signalboard/VictoriaMetrics = {:.2}) |",
            lp_rate / vm_rate
        );
    }

    let saturation = single_phase(&client, &ingest, &args, &clock, None).await;
    println!(
        "| single-sample POST, {} clients, saturation | {} |",
        args.connections,
        saturation.summary()
    );
    let fixed = single_phase(&client, &ingest, &args, &clock, Some(args.rate)).await;
    println!(
        "| single-sample POST, {} req/s offered | {} |",
        args.rate,
        fixed.summary()
    );

    if let Some(server) = own {
        let stored: u64 = client
            .get(format!("{base}/api/signals"))
            .send()
            .await?
            .json::<Vec<crate::model::SignalInfo>>()
            .await?
            .iter()
            .map(|s| s.points)
            .sum();
        let peak_rss = server.peak_rss_kib()?;
        let (bytes, _) = server.stop().await?;
        println!(
            "| database after checkpoint | {bytes} bytes / {stored} points = {:.1} bytes/point |",
            bytes as f64 / stored as f64
        );
        println!("| server peak RSS | {:.1} MB |", peak_rss as f64 / 1024.0);
    }
    Ok(())
}

/// Sends `args.points` points in 1,000-point requests from 4 concurrent clients; returns points/s.
async fn batch_phase(
    client: &reqwest::Client,
    url: &str,
    args: &BenchArgs,
    clock: &Arc<AtomicI64>,
    format: Format,
) -> anyhow::Result<f64> {
    let signals: Vec<String> = (0..args.signals)
        .map(|i| format!("bench.batch.{i}"))
        .collect();
    // Line protocol carries one point per line: one field per line, 1,000 lines per request.
    let samples_per_request = match format {
        Format::Json => (1_000 / signals.len()).max(1),
        Format::LineProtocol => 1_000,
    };
    let points_per_request = match format {
        Format::Json => (samples_per_request * signals.len()) as u64,
        Format::LineProtocol => 1_000,
    };
    let requests = args.points.div_ceil(points_per_request);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, url, next, clock, signals) = (
            client.clone(),
            url.to_owned(),
            next.clone(),
            clock.clone(),
            signals.clone(),
        );
        clients.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let t0 = clock.fetch_add(samples_per_request as i64, Ordering::Relaxed);
                let (body, content_type) = match format {
                    Format::Json => (
                        json_batch(t0, samples_per_request, &signals),
                        "application/json",
                    ),
                    Format::LineProtocol => (line_batch(t0, &signals), "text/plain; charset=utf-8"),
                };
                let response = client
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("batch POST answered {}", response.status());
                }
            }
            Ok(())
        }));
    }
    for c in clients {
        c.await??;
    }
    Ok((requests * points_per_request) as f64 / start.elapsed().as_secs_f64())
}

fn json_batch(t0: i64, samples: usize, signals: &[String]) -> String {
    let mut body = String::with_capacity(samples * signals.len() * 24);
    body.push('[');
    for k in 0..samples {
        if k > 0 {
            body.push(',');
        }
        body.push_str(&format!("{{\"timestamp\":{},\"signals\":{{", t0 + k as i64));
        for (i, name) in signals.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("\"{name}\":{}", (k * 7 + i) as f64 * 0.25));
        }
        body.push_str("}}");
    }
    body.push(']');
    body
}

/// 1,000 lines, the signals taking turns, one field each: `bench,signal=bench.batch.3 value=1.25 T`,
/// with nanosecond timestamps, the default of both servers.
fn line_batch(t0: i64, signals: &[String]) -> String {
    let mut body = String::with_capacity(1_000 * 48);
    for k in 0..1_000usize {
        let signal = &signals[k % signals.len()];
        let t = t0 + (k / signals.len()) as i64;
        body.push_str(&format!(
            "bench,signal={signal} value={} {t}000000\n",
            k as f64 * 0.25
        ));
    }
    body
}

struct Outcome {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn percentile(&self, q: f64) -> Option<Duration> {
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies.get(i).copied()
    }

    fn summary(&self) -> String {
        format!(
            "{:.0} req/s committed; p50 {} / p95 {} / p99 {}; {} non-2xx",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.95)),
            ms(self.percentile(0.99)),
            self.failed
        )
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    })
}

/// Single-sample POSTs for `args.seconds`: closed loop from `args.connections` clients when `rate` is
/// `None`, else open loop at `rate` requests per second.
async fn single_phase(
    client: &reqwest::Client,
    url: &str,
    args: &BenchArgs,
    clock: &Arc<AtomicI64>,
    rate: Option<u32>,
) -> Outcome {
    let duration = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let post = {
        let (client, url, clock) = (client.clone(), url.to_owned(), clock.clone());
        move |due: Instant| {
            let (client, url, clock) = (client.clone(), url.clone(), clock.clone());
            async move {
                let t = clock.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    "{{\"timestamp\":{t},\"signals\":{{\"bench.single\":{}}}}}",
                    t % 1000
                );
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                (ok, due.elapsed())
            }
        }
    };
    let mut outcome = Outcome {
        ok: 0,
        failed: 0,
        elapsed: duration,
        latencies: Vec::new(),
    };
    let mut record = |(ok, latency): (bool, Duration)| {
        if ok {
            outcome.ok += 1;
            outcome.latencies.push(latency);
        } else {
            outcome.failed += 1;
        }
    };
    match rate {
        None => {
            for _ in 0..args.connections {
                let post = post.clone();
                tasks.spawn(async move {
                    let mut results = Vec::new();
                    while start.elapsed() < duration {
                        results.push(post(Instant::now()).await);
                    }
                    results
                });
            }
            while let Some(Ok(results)) = tasks.join_next().await {
                results.into_iter().for_each(&mut record);
            }
        }
        Some(rate) => {
            let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let total = (duration.as_secs_f64() * f64::from(rate)) as u32;
            let mut requests = tokio::task::JoinSet::new();
            for n in 0..total {
                let due = start + period * n;
                tokio::time::sleep_until(due.into()).await;
                requests.spawn(post(due));
            }
            while let Some(Ok(result)) = requests.join_next().await {
                record(result);
            }
        }
    }
    outcome.elapsed = start.elapsed().max(duration);
    outcome.latencies.sort();
    outcome
}

async fn query_bench(args: &BenchArgs) -> anyhow::Result<()> {
    use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};
    use crate::server::store::{Retention, Store};

    let dir = tempfile::tempdir()?;
    let database = dir.path().join("history.db");
    let url = format!("sqlite://{}", database.display());
    let now = Timestamp::now().millis();
    let start = now - i64::from(args.days) * 86_400_000;

    let store = Store::open(&url, args.durability, Retention::default()).await?;
    let mut simulation = crate::server::producer::Simulation::new(args.signals, 7);
    let began = Instant::now();
    let (mut written, mut batch) = (0u64, Vec::with_capacity(50_000));
    let mut t = start;
    while t <= now {
        for (name, value) in simulation.sample(t).signals {
            batch.push(DataPoint {
                signal: SignalName::parse(&name).map_err(anyhow::Error::msg)?,
                timestamp: Timestamp::from_millis(t).map_err(anyhow::Error::msg)?,
                value: Value::new(value).map_err(anyhow::Error::msg)?,
            });
        }
        if batch.len() >= 50_000 || t + 1000 > now {
            store.write(&batch.iter().collect::<Vec<_>>()).await?;
            written += batch.len() as u64;
            batch.clear();
        }
        t += 1000;
    }
    let fill = began.elapsed();
    store.close().await;
    let bytes = file_bytes(&database);

    println!("| phase | figure |\n|---|---|");
    println!(
        "| fill: {} days × {} signals at 1 Hz | {written} points in {:.1} s ({:.0} points/s) |",
        args.days,
        args.signals,
        fill.as_secs_f64(),
        written as f64 / fill.as_secs_f64()
    );
    println!(
        "| database (7 days raw + minute and hour rollups of all {} days) | {:.1} MB, {:.2} bytes per point written |",
        args.days,
        bytes as f64 / 1e6,
        bytes as f64 / written as f64
    );

    let victoria = match args.victoria_metrics {
        true => Some(Victoria::filled(args.signals, start, now).await?),
        false => None,
    };
    let server = OwnServer::start(dir, database, args.durability).await?;
    let client = reqwest::Client::builder().gzip(true).build()?;
    // The last hour of the data, not of the clock, so that both servers answer the same points.
    let hour = now - 3_600_000;
    let ranges = [
        ("last hour, raw".to_owned(), format!("from={hour}&to={now}")),
        (
            format!("{} days, max_points=1000", args.days),
            format!("from={start}&to={now}&max_points=1000"),
        ),
    ];
    for (i, (what, query)) in ranges.into_iter().enumerate() {
        let mut urls = vec![format!("{}/api/telemetry?{query}", server.url)];
        if let Some(victoria) = &victoria {
            urls.push(match i {
                0 => victoria.export_url(hour, now),
                _ => victoria.max_over_time_url(start, now, 1000),
            });
        }
        let timed = interleaved_medians(&client, &urls).await?;
        let (median, body) = &timed[0];
        let history: crate::model::History = serde_json::from_slice(body)?;
        let points: usize = history.series.iter().map(|s| s.timestamps.len()).sum();
        println!(
            "| GET {what}, gzip, median of 21 | {} ({points} points) |",
            ms(Some(*median))
        );
        if let Some((vm_median, vm_body)) = timed.get(1) {
            let (how, vm_points) = match i {
                0 => (
                    "/api/v1/export of the same hour",
                    Victoria::exported_points(vm_body)?,
                ),
                _ => (
                    "`max_over_time`, 1,000 steps",
                    Victoria::range_points(vm_body)?,
                ),
            };
            println!(
                "| VictoriaMetrics {how}, gzip, median of 21 (taking turns with the line above) | {} ({vm_points} points; Signalboard/VictoriaMetrics = {:.2}) |",
                ms(Some(*vm_median)),
                median.as_secs_f64() / vm_median.as_secs_f64()
            );
        }
    }
    drop(victoria);
    // 10,000 more signals, one point each, for the signal list's timing.
    let many: Vec<crate::model::Sample> = (0..10)
        .map(|chunk| crate::model::Sample {
            timestamp: now,
            signals: (0..1_000)
                .map(|i| (format!("bench.many.{}", chunk * 1_000 + i), f64::from(i)))
                .collect(),
        })
        .collect();
    let response = client
        .post(format!("{}/api/telemetry", server.url))
        .json(&many)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("adding 10,000 signals answered {}", response.status());
    }
    let timed = interleaved_medians(&client, &[format!("{}/api/signals", server.url)]).await?;
    let (median, body) = (ms(Some(timed[0].0)), &timed[0].1);
    let signals: Vec<crate::model::SignalInfo> = serde_json::from_slice(body)?;
    println!(
        "| GET /api/signals, {} signals, gzip, median of 21 | {median} |",
        signals.len()
    );
    let all = format!("{}/api/telemetry?hours=1", server.url);
    let timed = interleaved_medians(&client, &[all]).await?;
    let (median, body) = (ms(Some(timed[0].0)), &timed[0].1);
    let history: crate::model::History = serde_json::from_slice(body)?;
    println!(
        "| GET last hour, raw, of all {} signals, gzip, median of 21 | {median} |",
        history.series.len()
    );
    // Alone with the database: the server's own retention pass must not compete.
    let _dir = server.stop().await?.1;
    retention_bench(&url, args.durability, now).await
}

/// Ingest with and without retention at work: the same database opened by a second store whose raw
/// retention is one day, so that its pass deletes six days of raw points while batches are written.
async fn retention_bench(url: &str, durability: Durability, now: i64) -> anyhow::Result<()> {
    use crate::server::store::{Retention, Store};

    let store = Store::open(url, durability, Retention::days(1, 90, 730)).await?;
    let mut t = now - 3_600_000;
    let alone = store_ingest(&store, &mut t, Duration::from_secs(3), || false).await?;
    let began = Instant::now();
    let expiring = tokio::spawn({
        let store = store.clone();
        async move { store.expire(now).await }
    });
    let during = store_ingest(&store, &mut t, Duration::MAX, || expiring.is_finished()).await?;
    let deleted = expiring.await??;
    println!(
        "| store ingest, 1,000-point batches, alone | {alone:.0} points/s |\n\
         | store ingest while retention deletes {deleted} points and rows ({:.1} s) | {during:.0} points/s ({:.0} % of alone) |",
        began.elapsed().as_secs_f64(),
        during / alone * 100.0
    );
    store.close().await;
    Ok(())
}

/// Writes 1,000-point batches (5 signals, 200 ms at 1 kHz each) straight to `store`, from `t` on,
/// for `duration` or until `done`; returns points/s.
async fn store_ingest(
    store: &crate::server::store::Store,
    t: &mut i64,
    duration: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<f64> {
    use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};

    let names = (0..5)
        .map(|i| SignalName::parse(&format!("bench.retention.{i}")).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (began, mut written) = (Instant::now(), 0u64);
    while began.elapsed() < duration && !done() {
        let mut batch = Vec::with_capacity(1_000);
        for k in 0..200 {
            for (i, name) in names.iter().enumerate() {
                batch.push(DataPoint {
                    signal: name.clone(),
                    timestamp: Timestamp::from_millis(*t + k).map_err(anyhow::Error::msg)?,
                    value: Value::new((k * 5 + i as i64) as f64).map_err(anyhow::Error::msg)?,
                });
            }
        }
        store.write(&batch.iter().collect::<Vec<_>>()).await?;
        *t += 200;
        written += batch.len() as u64;
    }
    Ok(written as f64 / began.elapsed().as_secs_f64())
}

/// GETs each of `urls` in turn, 21 rounds, so that servers compared see the same stretch of a noisy
/// machine; for each, the median time, timed like `curl --compressed` (until the whole body has
/// arrived and been inflated: parsing is the client's business), and the last body.
async fn interleaved_medians(
    client: &reqwest::Client,
    urls: &[String],
) -> anyhow::Result<Vec<(Duration, Bytes)>> {
    let mut timed = vec![(Vec::with_capacity(21), Bytes::new()); urls.len()];
    for _ in 0..21 {
        for (url, (times, body)) in urls.iter().zip(&mut timed) {
            let began = Instant::now();
            *body = client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            times.push(began.elapsed());
        }
    }
    Ok(timed
        .into_iter()
        .map(|(mut times, body)| {
            times.sort();
            (times[10], body)
        })
        .collect())
}

/// The bytes a SQLite database occupies: the file and, if any, its WAL and shared-memory files.
fn file_bytes(database: &std::path::Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut path = database.as_os_str().to_owned();
            path.push(suffix);
            std::fs::metadata(&path).map_or(0, |m| m.len())
        })
        .sum()
}

/// Polls `url` every 25 ms until it answers 2xx, at most `tries` times: a server just started is not
/// listening yet.
async fn wait_healthy(url: &str, what: &str, tries: u32) -> anyhow::Result<()> {
    for _ in 0..tries {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("{what} did not become healthy")
}

/// A VictoriaMetrics process on a temporary directory, the peer the figures are compared with.
struct Victoria {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Victoria {
    async fn start() -> anyhow::Result<Victoria> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-loggerLevel=ERROR")
            // As in the peer's figures: every query computed, none answered from a cache.
            .arg("-search.disableCache")
            // Points are visible to queries at once, not 30 s after their timestamp.
            .arg("-search.latencyOffset=0s")
            .kill_on_drop(true)
            .spawn()
            .context("starting victoria-metrics (apt-get install victoria-metrics)")?;
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&format!("{url}/health"), "victoria-metrics", 400).await?;
        Ok(Victoria {
            child,
            url,
            _dir: dir,
        })
    }

    fn write_url(&self) -> String {
        format!("{}/write", self.url)
    }

    /// Started and fed what the query benchmark's database holds: the simulation's `signals` (same
    /// seed, so the same values) at 1 Hz from `start` to `now`, as line protocol, one line per instant
    /// (`bench demo.sine=50.1,demo.random_walk=49.7,… T`); metrics are named `bench_<signal>`.
    async fn filled(signals: u32, start: i64, now: i64) -> anyhow::Result<Victoria> {
        use futures::{StreamExt, TryStreamExt};

        let victoria = Victoria::start().await?;
        let client = reqwest::Client::new();
        let url = format!("{}?precision=ms", victoria.write_url());
        let mut simulation = crate::server::producer::Simulation::new(signals, 7);
        let mut t = start;
        let bodies = std::iter::from_fn(|| {
            let mut body = String::with_capacity(10_000 * 128);
            for _ in 0..10_000 {
                if t > now {
                    break;
                }
                body.push_str("bench ");
                for (i, (name, value)) in simulation.sample(t).signals.iter().enumerate() {
                    body.push_str(&format!("{}{name}={value}", if i > 0 { "," } else { "" }));
                }
                body.push_str(&format!(" {t}\n"));
                t += 1000;
            }
            (!body.is_empty()).then_some(body)
        });
        let began = Instant::now();
        futures::stream::iter(bodies)
            .map(|body| async {
                let response = client.post(&url).body(body).send().await?;
                if !response.status().is_success() {
                    bail!("victoria-metrics' /write answered {}", response.status());
                }
                Ok(())
            })
            .buffer_unordered(4)
            .try_collect::<()>()
            .await?;
        // Rows are searchable once VictoriaMetrics has flushed them from memory.
        client
            .get(format!("{}/internal/force_flush", victoria.url))
            .send()
            .await?
            .error_for_status()?;
        let fed = began.elapsed();
        // It merges what it was fed in the background; timed while merging, both servers would
        // share the cores with it.
        let settled = victoria.settle().await?;
        println!(
            "| VictoriaMetrics fed the same points as line protocol | {:.1} s, then {:.1} s of background merging |",
            fed.as_secs_f64(),
            settled.as_secs_f64()
        );
        Ok(victoria)
    }

    /// Waits (a minute at most) until the process uses under 5 % of a core over half a second;
    /// returns how long that took.
    async fn settle(&self) -> anyhow::Result<Duration> {
        let pid = self.child.id().context("victoria-metrics has exited")?;
        let cpu_ticks = || -> anyhow::Result<u64> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
            // utime and stime, the 14th and 15th fields, counted after the command's ")".
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .context("odd /proc/PID/stat")?
                .1
                .split_whitespace()
                .collect();
            Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
        };
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            let before = cpu_ticks()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Clock ticks are 10 ms: 2 of them in 500 ms is 4 %.
            if cpu_ticks()? - before <= 2 {
                break;
            }
        }
        Ok(began.elapsed())
    }

    /// The raw points of every `bench_` metric from `from` to `to` (milliseconds).
    fn export_url(&self, from: i64, to: i64) -> String {
        format!(
            "{}/api/v1/export?match[]={{__name__=~\"bench_.%2B\"}}&start={}&end={}",
            self.url,
            seconds(from),
            seconds(to)
        )
    }

    /// Each `bench_` metric's maximum in each of `steps` steps from `from` to `to` (milliseconds).
    fn max_over_time_url(&self, from: i64, to: i64, steps: i64) -> String {
        let step = (to - from) / steps;
        format!(
            "{}/api/v1/query_range?query=max_over_time({{__name__=~\"bench_.%2B\"}}[{step}ms])&start={}&end={}&step={step}ms",
            self.url,
            seconds(from),
            seconds(to)
        )
    }

    /// Points in an export: one JSON object per line and series, with its `timestamps`.
    fn exported_points(body: &[u8]) -> anyhow::Result<usize> {
        #[derive(serde::Deserialize)]
        struct Exported {
            timestamps: Vec<i64>,
        }
        let mut points = 0;
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            points += serde_json::from_slice::<Exported>(line)?.timestamps.len();
        }
        Ok(points)
    }

    /// Points in a `query_range` answer: the `values` of every series in `data.result`.
    fn range_points(body: &[u8]) -> anyhow::Result<usize> {
        let answer: serde_json::Value = serde_json::from_slice(body)?;
        let series = answer["data"]["result"]
            .as_array()
            .context("no data.result in the query_range answer")?;
        Ok(series
            .iter()
            .filter_map(|s| s["values"].as_array())
            .map(Vec::len)
            .sum())
    }
}

/// Milliseconds as the seconds VictoriaMetrics takes in `start` and `end`.
fn seconds(millis: i64) -> String {
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

/// A `signalboard serve` child process on a fresh database.
struct OwnServer {
    child: tokio::process::Child,
    url: String,
    database: PathBuf,
    dir: tempfile::TempDir,
}

impl OwnServer {
    /// Serves `database` (a file in `dir`, which the server owns from now on).
    async fn start(
        dir: tempfile::TempDir,
        database: PathBuf,
        durability: Durability,
    ) -> anyhow::Result<OwnServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display()))
            .arg("--durability")
            .arg(durability.name())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        let server = OwnServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            database,
            dir,
        };
        wait_healthy(
            &format!("{}/healthz", server.url),
            "the benchmark's server",
            200,
        )
        .await?;
        Ok(server)
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the server has exited")
    }

    /// The server's peak resident set size (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/PID/status")
    }

    /// Stops the server with SIGTERM (a graceful shutdown checkpoints the WAL into the database file) and
    /// returns the bytes the database then occupies, and its directory (deleted when dropped).
    async fn stop(mut self) -> anyhow::Result<(u64, tempfile::TempDir)> {
        let pid = self.pid()?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        self.child.wait().await?;
        Ok((file_bytes(&self.database), self.dir))
    }
}
