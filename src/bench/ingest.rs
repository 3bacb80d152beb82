//! The ingest benchmark. It starts its own server (or targets `--url`) and drives it over loopback:
//! 1. batch ingest: `--points` points in requests of 1,000 points, as JSON arrays and as Influx line
//!    protocol (and, with `--victoria-metrics`, the same line-protocol batches into VictoriaMetrics);
//! 2. single-sample POSTs at saturation (`--connections` clients, as fast as answered);
//! 3. single-sample POSTs at a fixed offered rate (`--rate` requests/s, open loop: latency is counted
//!    from when a request was due, so a stalled server cannot hide its stall);
//!
//! then, for its own server, stops it gracefully (SQLite checkpoints the WAL) and reports the database
//! file's bytes per stored point and the server's peak RSS.

use super::servers::{OwnServer, Victoria};
use super::{ms, BenchArgs};
use anyhow::bail;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two batch encodings.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    LineProtocol,
}

pub(super) async fn run(args: BenchArgs) -> anyhow::Result<()> {
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
        chrono::Utc::now().timestamp_millis() - signalboard::model::DAY,
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
            .json::<Vec<signalboard::model::SignalInfo>>()
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
