//! The server's own health as signals: every few seconds (the `self-signals-secs` setting; 0 turns
//! them off) it writes a handful of `signalboard.*` points through its own writer, like any
//! producer's, so its dashboard charts them, alerts watch them and exports hold them. Servers that
//! share one database name theirs apart with `{server=ADDRESS}`.

use super::histogram::Snapshot;
use super::process::ProcessFigures;
use super::Metrics;
use crate::server::clock::SharedClock;
use crate::server::domain::{DataPoint, SignalName, Value};
use crate::server::live::LiveFeed;
use crate::server::writer::Writer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the task reads and writes through.
pub struct OwnSignals {
    pub metrics: Arc<Metrics>,
    pub writer: Writer,
    pub live: LiveFeed,
    pub clock: SharedClock,
    /// `{server=…}` after each name, when other servers write the same database.
    pub server: Option<String>,
}

/// The counters at the previous sample, to turn totals into rates.
struct Previous {
    at: Instant,
    accepted: u64,
    client_errors: u64,
    server_errors: u64,
    cpu_seconds: f64,
    write_seconds: Snapshot,
}

impl OwnSignals {
    /// Writes a sample every `every` until aborted.
    pub async fn run(self, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut previous = self.previous();
        loop {
            ticks.tick().await;
            let now = self.previous();
            let points = self.sample(&previous, &now);
            previous = now;
            // A sample that finds the queue full is skipped, not retried: the next one follows.
            if let Err(e) = self.writer.write(points).await {
                tracing::debug!(error = %e, "the server's own signals were not written");
            }
        }
    }

    fn previous(&self) -> Previous {
        let metrics = &self.metrics;
        Previous {
            at: Instant::now(),
            accepted: metrics.writes.accepted.get(),
            client_errors: metrics.answered.client_errors.get(),
            server_errors: metrics.answered.server_errors.get(),
            cpu_seconds: ProcessFigures::read().cpu_seconds,
            write_seconds: metrics.writes.write_seconds.snapshot(),
        }
    }

    /// The points of one sample: rates over the time since `before`, the rest as they are `now`.
    fn sample(&self, before: &Previous, now: &Previous) -> Vec<DataPoint> {
        let seconds = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let rate = |later: u64, earlier: u64| later.saturating_sub(earlier) as f64 / seconds;
        let write = &self.metrics.writes.write_seconds;
        let quantile = |q| write.quantile(&before.write_seconds, &now.write_seconds, q);
        let process = ProcessFigures::read();
        let mut figures = vec![
            (
                "ingest.points_per_sec",
                Some(rate(now.accepted, before.accepted)),
            ),
            (
                "http.refusals_per_sec",
                Some(rate(now.client_errors, before.client_errors)),
            ),
            (
                "http.errors_per_sec",
                Some(rate(now.server_errors, before.server_errors)),
            ),
            ("live.clients", Some(self.live.subscribers() as f64)),
            (
                "write.queue_points",
                Some(self.writer.queued_points() as f64),
            ),
            ("process.rss_bytes", Some(process.resident_bytes as f64)),
            (
                "process.cpu_percent",
                Some((now.cpu_seconds - before.cpu_seconds).max(0.0) / seconds * 100.0),
            ),
            (
                "database.bytes",
                Some(self.metrics.upkeep.database_bytes.get() as f64),
            ),
        ];
        // Latency only when something was written: no writes is no figure, not a 0 ms one.
        for (name, q) in [
            ("write.p50_ms", 0.5),
            ("write.p95_ms", 0.95),
            ("write.p99_ms", 0.99),
        ] {
            figures.push((name, quantile(q).map(|s| s * 1e3)));
        }
        let timestamp = self.clock.now();
        figures
            .into_iter()
            .filter_map(|(name, value)| {
                let value = Value::new(value?).ok()?;
                let signal = SignalName::parse(&self.name(name)).ok()?;
                Some(DataPoint {
                    signal,
                    timestamp,
                    value,
                })
            })
            .collect()
    }

    fn name(&self, figure: &str) -> String {
        match &self.server {
            None => format!("signalboard.{figure}"),
            Some(server) => format!("signalboard.{figure}{{server={server}}}"),
        }
    }
}
