//! The server's own health as signals: every few seconds (the `self-signals-secs` setting; 0 turns
//! them off) it writes a handful of `signalboard.*` points through its own writer, like any
//! producer's, so its dashboard charts them, alerts watch them and exports hold them. Servers that
//! share one database name theirs apart with `{server=ADDRESS}`. Dashboards may send theirs too
//! (`write_page_figures`), as `signalboard.browser.*`.

use super::histogram::Snapshot;
use super::process::ProcessFigures;
use super::Metrics;
use crate::model::{Figure, PageFigures};
use crate::server::clock::SharedClock;
use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};
use crate::server::error::ApiError;
use crate::server::live::LiveFeed;
use crate::server::upkeep::every;
use crate::server::writer::Writer;
use crate::server::AppState;
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

/// The counters at one sample, to turn totals into rates between two.
struct Counters {
    at: Instant,
    accepted: u64,
    client_errors: u64,
    server_errors: u64,
    process: ProcessFigures,
    write_seconds: Snapshot,
}

impl OwnSignals {
    /// Writes a sample every `period` until aborted.
    pub async fn run(self, period: Duration) {
        let mut ticks = every(period);
        ticks.tick().await;
        let mut previous = self.counters();
        loop {
            ticks.tick().await;
            let now = self.counters();
            let points = self.sample(&previous, &now);
            previous = now;
            // A sample that finds the queue full is skipped, not retried: the next one follows.
            if let Err(e) = self.writer.write(points).await {
                tracing::debug!(error = %e, "the server's own signals were not written");
            }
        }
    }

    fn counters(&self) -> Counters {
        let metrics = &self.metrics;
        Counters {
            at: Instant::now(),
            accepted: metrics.writes.accepted.get(),
            client_errors: metrics.answered.client_errors.get(),
            server_errors: metrics.answered.server_errors.get(),
            process: ProcessFigures::read(),
            write_seconds: metrics.writes.write_seconds.snapshot(),
        }
    }

    /// The points of one sample: rates over the time since `before`, the rest as they are `now`.
    fn sample(&self, before: &Counters, now: &Counters) -> Vec<DataPoint> {
        let seconds = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let rate = |later: u64, earlier: u64| later.saturating_sub(earlier) as f64 / seconds;
        let write = &self.metrics.writes.write_seconds;
        let quantile = |q| write.quantile(&before.write_seconds, &now.write_seconds, q);
        let figure = |name, value| Figure {
            name,
            value: Some(value),
        };
        let cpu_seconds = (now.process.cpu_seconds - before.process.cpu_seconds).max(0.0);
        let database_bytes = self.metrics.upkeep.database_bytes.get();
        let mut figures = vec![
            figure("ingest.points_per_sec", rate(now.accepted, before.accepted)),
            figure(
                "http.refusals_per_sec",
                rate(now.client_errors, before.client_errors),
            ),
            figure(
                "http.errors_per_sec",
                rate(now.server_errors, before.server_errors),
            ),
            figure("live.clients", self.live.subscribers() as f64),
            figure("write.queue_points", self.writer.queued_points() as f64),
            figure("process.rss_bytes", now.process.resident_bytes as f64),
            figure("process.cpu_percent", cpu_seconds / seconds * 100.0),
            figure("database.bytes", database_bytes as f64),
        ];
        // Latency only when something was written: no writes is no figure, not a 0 ms one.
        for (name, q) in [
            ("write.p50_ms", 0.5),
            ("write.p95_ms", 0.95),
            ("write.p99_ms", 0.99),
        ] {
            let value = quantile(q).map(|seconds| seconds * 1e3);
            figures.push(Figure { name, value });
        }
        points(
            &figures,
            "signalboard",
            self.server.as_deref(),
            self.clock.now(),
        )
    }
}

/// A point for each figure that has a finite value, named `{prefix}.{figure}`, and
/// `{server=…}` after it when given.
pub fn points(
    figures: &[Figure],
    prefix: &str,
    server: Option<&str>,
    timestamp: Timestamp,
) -> Vec<DataPoint> {
    let name = |figure: &str| match server {
        None => format!("{prefix}.{figure}"),
        Some(server) => format!("{prefix}.{figure}{{server={server}}}"),
    };
    figures
        .iter()
        .filter_map(|figure| {
            let value = Value::new(figure.value?).ok()?;
            let signal = SignalName::parse(&name(figure.name)).ok()?;
            Some(DataPoint {
                signal,
                timestamp,
                value,
            })
        })
        .collect()
}

/// Writes what a dashboard measured of itself as `signalboard.browser.*` signals, where the
/// `browser-signals` setting allows; `false` when it does not (the page then stops sending).
pub async fn write_page_figures(state: &AppState, page: &PageFigures) -> Result<bool, ApiError> {
    if !state.monitoring.browser_signals {
        return Ok(false);
    }
    let points = points(
        &page.figures(),
        "signalboard.browser",
        None,
        state.clock.now(),
    );
    state.writer.write(points).await?;
    Ok(true)
}
