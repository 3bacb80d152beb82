//! The history benchmark (`--query`): a database filled with `--days` of `--signals` at 1 Hz, then the
//! last hour raw and the whole range at `max_points=1000` timed from a client (beside VictoriaMetrics
//! fed the same points, with `--victoria-metrics`), the signal list, and ingest with retention at work.

use super::servers::{BenchDatabase, OwnServer, StoredBlock, Victoria};
use super::{median, ms, BenchArgs};
use anyhow::bail;
use axum::body::Bytes;
use signalboard::model::{DAY, HOUR};
use signalboard::server::clock;
use signalboard::server::store::Durability;
use std::time::{Duration, Instant};

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    use signalboard::server::domain::{DataPoint, SignalName, Timestamp, Value};
    use signalboard::server::store::{Retention, Store};

    let database = BenchDatabase::new(args.database_url.as_deref()).await?;
    let url = database.url.clone();
    let now = Timestamp::now().millis();
    let start = now - i64::from(args.days) * DAY;

    let store = Store::open(&url, args.durability, Retention::default(), clock::system()).await?;
    let mut simulation = signalboard::producer::Simulation::new(args.signals, 7);
    let began = Instant::now();
    let (mut written, mut batch) = (0u64, Vec::with_capacity(50_000));
    let (mut hours, mut days, mut packing) = (0, 0, Duration::ZERO);
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
            // As the server's upkeep packs closed hours and days once a minute: a month of minute rows
            // packed at the end would leave their pages free in the file.
            let packing_began = Instant::now();
            let packed = store.pack(t).await?;
            (hours, days) = (hours + packed.hours, days + packed.days);
            packing += packing_began.elapsed();
        }
        t += 1000;
    }
    let fill = began.elapsed() - packing;
    store.close().await;
    let bytes = database.bytes().await?;

    println!("| phase | figure |\n|---|---|");
    println!(
        "| fill: {} days × {} signals at 1 Hz | {written} points in {:.1} s ({:.0} points/s) |",
        args.days,
        args.signals,
        fill.as_secs_f64(),
        written as f64 / fill.as_secs_f64()
    );
    println!(
        "| packing closed hours and days, between the fill's writes | {hours} hours, {days} days in {:.2} s |",
        packing.as_secs_f64()
    );
    println!(
        "| database (7 days raw + minute and hour rollups of all {} days) | {:.1} MB, {:.2} bytes per point written |",
        args.days,
        bytes as f64 / 1e6,
        bytes as f64 / written as f64
    );
    if let Some(blocks) = database.blocks().await? {
        let decoded = decode(&blocks)?;
        let bytes: usize = blocks.iter().map(|b| b.data.len()).sum();
        println!(
            "| raw blocks | {} points in {:.1} MB, {:.2} bytes per point |",
            decoded.points,
            bytes as f64 / 1e6,
            bytes as f64 / decoded.points.max(1) as f64
        );
        println!(
            "| decoding every raw block on one core, median of 5 | {:.0} M points/s |",
            decoded.rate / 1e6
        );
    }

    let victoria = if args.victoria_metrics {
        Some(Victoria::filled(args.signals, start, now).await?)
    } else {
        None
    };
    let server = OwnServer::start(&url, args.durability).await?;
    let client = reqwest::Client::builder().gzip(true).build()?;
    // Ranges ending at the data's last point, not at the clock's now, so that both servers answer the
    // same points: the narrowest the dashboard offers, the hour, the widest still answered from raw
    // points at 1,000 points (250 buckets of under a minute), and the whole range.
    let ranges = [
        (now - 300_000, "last 5 minutes, raw".to_owned(), false),
        (now - HOUR, "last hour, raw".to_owned(), false),
        (
            now - 4 * HOUR,
            "last 4 hours, max_points=1000".to_owned(),
            true,
        ),
        (start, format!("{} days, max_points=1000", args.days), true),
    ];
    for (from, what, decimate) in ranges {
        let query = match decimate {
            false => format!("from={from}&to={now}"),
            true => format!("from={from}&to={now}&max_points=1000"),
        };
        let mut urls = vec![format!("{}/api/telemetry?{query}", server.url)];
        if let Some(victoria) = &victoria {
            urls.push(match decimate {
                false => victoria.export_url(from, now),
                true => victoria.max_over_time_url(from, now, 1000),
            });
        }
        let timed = interleaved_medians(&client, &urls).await?;
        let (median, body) = &timed[0];
        let history: signalboard::model::History = serde_json::from_slice(body)?;
        let points: usize = history.series.iter().map(|s| s.timestamps.len()).sum();
        println!(
            "| GET {what}, gzip, median of 21 | {} ({points} points) |",
            ms(Some(*median))
        );
        if let Some((vm_median, vm_body)) = timed.get(1) {
            let (how, vm_points) = match decimate {
                false => (
                    "/api/v1/export of the same range",
                    Victoria::exported_points(vm_body)?,
                ),
                true => (
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
    let many: Vec<signalboard::model::Sample> = (0..10)
        .map(|chunk| signalboard::model::Sample {
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
    let signals: Vec<signalboard::model::SignalInfo> = serde_json::from_slice(body)?;
    println!(
        "| GET /api/signals, {} signals, gzip, median of 21 | {median} |",
        signals.len()
    );
    let all = format!("{}/api/telemetry?hours=1", server.url);
    let timed = interleaved_medians(&client, &[all]).await?;
    let (median, body) = (ms(Some(timed[0].0)), &timed[0].1);
    let history: signalboard::model::History = serde_json::from_slice(body)?;
    println!(
        "| GET last hour, raw, of all {} signals, gzip, median of 21 | {median} |",
        history.series.len()
    );
    // Alone with the database: the server's own retention pass must not compete.
    server.stop().await?;
    retention_bench(&url, args.durability, now).await
}

/// Ingest with and without retention at work: the same database opened by a second store whose raw
/// retention is one day, so that its pass deletes six days of raw points while batches are written.
async fn retention_bench(url: &str, durability: Durability, now: i64) -> anyhow::Result<()> {
    use signalboard::server::store::{Retention, Store};

    let retention = Retention::days(1, 90, 730);
    let store = Store::open(url, durability, retention, clock::system()).await?;
    let mut t = now - HOUR;
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

/// What unpacking every raw block yields.
struct Decoded {
    points: usize,
    /// Points a second on this thread: the median of five passes over every block, each into one
    /// reused buffer, as a read does.
    rate: f64,
}

fn decode(blocks: &[StoredBlock]) -> anyhow::Result<Decoded> {
    let mut out = Vec::new();
    let (mut rates, mut points) = (Vec::new(), 0);
    for _ in 0..5 {
        let began = Instant::now();
        points = 0;
        for block in blocks {
            out.clear();
            signalboard::server::store::unpack_block(block.first_ts, &block.data, &mut out)?;
            points += out.len();
        }
        rates.push(points as f64 / began.elapsed().as_secs_f64());
    }
    Ok(Decoded {
        points,
        rate: median(&rates),
    })
}

/// Writes 1,000-point batches (5 signals, 200 ms at 1 kHz each) straight to `store`, from `t` on,
/// for `duration` or until `done`; returns points/s.
async fn store_ingest(
    store: &signalboard::server::store::Store,
    t: &mut i64,
    duration: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<f64> {
    use signalboard::server::domain::{DataPoint, SignalName, Timestamp, Value};

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
pub(super) async fn interleaved_medians(
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
