//! The ingest benchmark. It starts its own server (or targets `--url`) and drives it over loopback:
//! 1. batch ingest: `--points` points in requests of 1,000 points, as JSON arrays and as Influx line
//!    protocol (and, with `--victoria-metrics`, the same line-protocol batches into VictoriaMetrics);
//! 2. single-sample POSTs at saturation (`--connections` clients, as fast as answered);
//! 3. single-sample POSTs at a fixed offered rate (`--rate` requests/s, open loop: latency is counted
//!    from when a request was due, so a stalled server cannot hide its stall);
//!
//! 4. with `--servers 2` or more (on `--database-url`, PostgreSQL): the time from a post on one server
//!    to the WebSocket message on another, at `--rate` points/s;
//!
//! then, for its own servers, stops them gracefully (SQLite checkpoints the WAL) and reports the
//! database's bytes per stored point and the servers' peak RSS.

use super::servers::{BenchDatabase, OwnServer, Victoria};
use super::{ms, BenchArgs};
use anyhow::bail;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two batch encodings.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Format {
    Json,
    LineProtocol,
}

pub(super) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.servers > 1 && args.database_url.is_none() {
        bail!(
            "--servers {} needs --database-url: servers share a PostgreSQL database",
            args.servers
        );
    }
    let database = BenchDatabase::new(args.database_url.as_deref()).await?;
    let mut own = Vec::new();
    if args.url.is_none() {
        for _ in 0..args.servers.max(1) {
            own.push(OwnServer::start(&database.url, args.durability).await?);
        }
    }
    let bases: Vec<String> = match &args.url {
        Some(url) => vec![url.trim_end_matches('/').to_owned()],
        None => own.iter().map(|server| server.url.clone()).collect(),
    };
    let base = bases[0].clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections.max(8))
        .build()?;
    let at = |path: &str| -> Vec<String> { bases.iter().map(|b| format!("{b}{path}")).collect() };
    let ingest = at("/api/telemetry");
    // Timestamps start a day ago and only grow, so no request overwrites another's points.
    let clock = day_ago();

    let store = match &args.database_url {
        Some(_) => "PostgreSQL",
        None => "SQLite",
    };
    let servers = bases.len();
    println!("| phase | figure |\n|---|---|");
    let json_rate = batch_phase(&client, &ingest, &args, &clock, Format::Json).await?;
    println!(
        "| JSON batch ingest, {} signals, 1,000 points/request, {} clients, {servers} server(s), {store} | {json_rate:.0} points/s |",
        args.signals,
        4 * servers
    );
    let write = at("/api/v2/write");
    let lp_rate = batch_phase(&client, &write, &args, &clock, Format::LineProtocol).await?;
    println!(
        "| line-protocol batch ingest, {} signals, 1,000 lines/request, {} clients, {servers} server(s), {store} | {lp_rate:.0} points/s |",
        args.signals,
        4 * servers
    );
    if args.victoria_metrics {
        let vm = Victoria::start().await?;
        let vm_rate = batch_phase(
            &client,
            &[vm.write_url()],
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

    let saturation = single_phase(&client, &ingest[0], &args, &clock, None).await;
    println!(
        "| single-sample POST, {} clients, saturation | {} |",
        args.connections,
        saturation.summary()
    );
    let fixed = single_phase(&client, &ingest[0], &args, &clock, Some(args.rate)).await;
    println!(
        "| single-sample POST, {} req/s offered | {} |",
        args.rate,
        fixed.summary()
    );
    if servers > 1 {
        let relayed = relay_phase(&client, &bases, &args, &clock).await?;
        println!(
            "| post on one server → WebSocket message on another, {} points/s | p50 {} / p99 {}; {} of {} points |",
            args.rate,
            ms(relayed.percentile(0.50)),
            ms(relayed.percentile(0.99)),
            relayed.ok,
            relayed.ok + relayed.failed
        );
    }

    if !own.is_empty() {
        let stored: u64 = client
            .get(format!("{base}/api/signals"))
            .send()
            .await?
            .json::<Vec<signalboard::model::SignalInfo>>()
            .await?
            .iter()
            .map(|s| s.points)
            .sum();
        let mut peak_rss = 0;
        for server in own {
            peak_rss = peak_rss.max(server.peak_rss_kib()?);
            server.stop().await?;
        }
        let bytes = database.bytes().await?;
        println!(
            "| database after checkpoint | {bytes} bytes / {stored} points = {:.1} bytes/point |",
            bytes as f64 / stored as f64
        );
        println!(
            "| server peak RSS (largest) | {:.1} MB |",
            peak_rss as f64 / 1024.0
        );
    }
    Ok(())
}

/// Timestamps start a day ago and only grow, so no request overwrites another's points.
pub(super) fn day_ago() -> Arc<AtomicI64> {
    Arc::new(AtomicI64::new(
        chrono::Utc::now().timestamp_millis() - signalboard::model::DAY,
    ))
}

/// Sends `args.points` points in 1,000-point requests from 4 concurrent clients per URL; returns
/// points/s.
pub(super) async fn batch_phase(
    client: &reqwest::Client,
    urls: &[String],
    args: &BenchArgs,
    clock: &Arc<AtomicI64>,
    format: Format,
) -> anyhow::Result<f64> {
    let signals: Vec<String> = (0..args.signals)
        .map(|i| format!("bench.batch.{i}"))
        .collect();
    let requests = args.points.div_ceil(1_000);
    // Points are numbered across the phase's requests: each request carries the next 1,000, the
    // signals taking turns, so with more signals than that every signal gets a point before any
    // gets a second (as scrapes send them).
    let base = clock.fetch_add(
        (requests * 1_000).div_ceil(signals.len() as u64) as i64 + 1,
        Ordering::Relaxed,
    );
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut clients = Vec::new();
    for i in 0..4 * urls.len() {
        let (client, url, next, signals) = (
            client.clone(),
            urls[i % urls.len()].clone(),
            next.clone(),
            signals.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let request = next.fetch_add(1, Ordering::Relaxed);
                if request >= requests {
                    break;
                }
                let points = Numbered {
                    base,
                    first: request as usize * 1_000,
                    signals: &signals,
                };
                let (body, content_type) = match format {
                    Format::Json => (json_batch(points), "application/json"),
                    Format::LineProtocol => (line_batch(points), "text/plain; charset=utf-8"),
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
    Ok((requests * 1_000) as f64 / start.elapsed().as_secs_f64())
}

/// Points `first..first + 1000` of a phase: point `n` is signal `n % signals`, a millisecond after
/// `base` for each time the signals came round before it.
#[derive(Clone, Copy)]
struct Numbered<'a> {
    base: i64,
    first: usize,
    signals: &'a [String],
}

impl<'a> Numbered<'a> {
    fn each(self) -> impl Iterator<Item = (&'a str, i64, f64)> {
        (self.first..self.first + 1_000).map(move |n| {
            let signal = self.signals[n % self.signals.len()].as_str();
            let t = self.base + (n / self.signals.len()) as i64;
            (signal, t, (n % 1_000) as f64 * 0.25)
        })
    }
}

/// The points as JSON samples, one per timestamp.
fn json_batch(points: Numbered) -> String {
    let mut body = String::with_capacity(1_000 * 32);
    let mut sample = None;
    body.push('[');
    for (signal, t, value) in points.each() {
        if sample != Some(t) {
            if sample.is_some() {
                body.push_str("}},");
            }
            sample = Some(t);
            body.push_str(&format!("{{\"timestamp\":{t},\"signals\":{{"));
        } else {
            body.push(',');
        }
        body.push_str(&format!("\"{signal}\":{value}"));
    }
    body.push_str("}}]");
    body
}

/// The points as line protocol, one field a line: `bench,signal=bench.batch.3 value=1.25 T`, with
/// nanosecond timestamps, the default of both servers.
fn line_batch(points: Numbered) -> String {
    let mut body = String::with_capacity(1_000 * 48);
    for (signal, t, value) in points.each() {
        body.push_str(&format!("bench,signal={signal} value={value} {t}000000\n"));
    }
    body
}

pub(super) struct Outcome {
    pub(super) ok: u64,
    failed: u64,
    pub(super) elapsed: Duration,
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

/// Single-sample POSTs for `args.seconds`: closed loop from `args.connections` clients when `rate` is
/// `None`, else open loop at `rate` requests per second.
pub(super) async fn single_phase(
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

/// Single points posted to the first server at `args.rate` per second for `args.seconds`, each timed
/// from its post until a WebSocket client of the second server receives it.
async fn relay_phase(
    client: &reqwest::Client,
    bases: &[String],
    args: &BenchArgs,
    clock: &Arc<AtomicI64>,
) -> anyhow::Result<Outcome> {
    use futures::StreamExt;
    use std::collections::HashMap;
    use std::sync::Mutex;

    let live = bases[1].replacen("http://", "ws://", 1) + "/api/live?signals=bench.relay";
    let (mut socket, _) = tokio_tungstenite::connect_async(live).await?;
    let sent: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let latencies = tokio::spawn({
        let sent = sent.clone();
        async move {
            let mut latencies = Vec::new();
            loop {
                let message = tokio::select! {
                    _ = &mut stopped => break,
                    message = socket.next() => match message {
                        Some(Ok(message)) => message,
                        _ => break,
                    },
                };
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let Ok(message) = serde_json::from_str::<signalboard::model::LiveMessage>(text)
                else {
                    continue;
                };
                let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
                for point in message.points {
                    if let Some(at) = sent.get(&point.timestamp) {
                        latencies.push(at.elapsed());
                    }
                }
            }
            latencies
        }
    });
    let url = format!("{}/api/telemetry", bases[0]);
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let total = args.seconds * u64::from(args.rate);
    let start = Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for n in 0..total {
        tokio::time::sleep_until((start + period * n as u32).into()).await;
        let t = clock.fetch_add(1, Ordering::Relaxed);
        sent.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t, Instant::now());
        let body = format!("{{\"timestamp\":{t},\"signals\":{{\"bench.relay\":1}}}}");
        let post = client.post(&url).header("content-type", "application/json");
        posts.spawn(post.body(body).send());
    }
    while posts.join_next().await.is_some() {}
    // Stragglers: a relay window and then some.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    let mut latencies = latencies.await?;
    latencies.sort();
    Ok(Outcome {
        ok: latencies.len() as u64,
        failed: total - latencies.len() as u64,
        elapsed: start.elapsed(),
        latencies,
    })
}
