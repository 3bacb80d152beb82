//! What the server tells about itself. Every part records into handles made here (counters and
//! histograms are atomics behind an `Arc`, as cheap to bump as a field), and `GET /metrics` writes
//! them in Prometheus' text format, with the figures read at scrape time (queue depth, live clients,
//! the process') added by `Watched`. A scrape costs the same with 10 or 100,000 signals: nothing
//! here is kept per signal.
//!
//! Per-request figures (counts by route and status, durations by route) are the only ones that cost
//! on every request: the `metrics` setting turns them and the endpoint off. Everything else is
//! counted per commit, refusal or message and always on, because the server's own signals
//! (`own_signals`) are made from it.

pub mod histogram;
pub mod own_signals;
pub mod process;
pub mod requests;

use crate::server::error::ApiError;
use crate::server::intake::Exchange;
use crate::server::live::LiveFeed;
use crate::server::store::Store;
use crate::server::writer::QueueDepth;
use crate::server::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use histogram::Histogram;
use process::ProcessFigures;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use requests::Requests;

/// Why something was refused, dropped or skipped: a short fixed name, never the client's words.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

impl Reason {
    pub fn of(reason: &'static str) -> Reason {
        Reason { reason }
    }
}

/// The write path: points in and out, and the writer's commits.
#[derive(Clone, Debug)]
pub struct WriteMetrics {
    /// Points committed.
    pub accepted: Counter,
    /// Points refused after they were read: too old, too many new signals, the queue full, the
    /// database failing. (A body that cannot be parsed is counted among the refused requests.)
    pub refused: Family<Reason, Counter>,
    /// Values read but not stored: line protocol's string fields, remote write's stale markers.
    pub skipped: Family<Reason, Counter>,
    pub commit_points: Histogram,
    pub commit_seconds: Histogram,
    pub commits_failed: Counter,
    /// From a request's points queued to committed: what a producer waits for beyond parsing.
    pub write_seconds: Histogram,
}

/// The live feed.
#[derive(Clone, Debug, Default)]
pub struct LiveMetrics {
    pub messages: Counter,
    /// Subscribers disconnected, by why: lagged behind the backlog, or too slow to take a message.
    pub dropped: Family<Reason, Counter>,
}

/// Retention, packing and the database's size, measured by the upkeep task.
#[derive(Clone, Debug, Default)]
pub struct UpkeepMetrics {
    pub rows_expired: Counter,
    pub rollup_packs: Counter,
    pub database_bytes: Gauge,
    pub wal_bytes: Gauge,
}

/// The route of every request no route matched: the site's files, and unknown paths.
pub const FILES_ROUTE: &str = "(files)";

pub struct Metrics {
    registry: Registry,
    /// Whether requests are counted and timed, and `/metrics` answers (the `metrics` setting).
    pub enabled: bool,
    requests: Requests,
    /// Requests answered with an error, by `ApiError::reason`: counted whether or not `enabled`.
    pub refusals: Family<Reason, Counter>,
    /// Error answers by class, for the server's own signals.
    pub answered: ErrorAnswers,
    pub writes: WriteMetrics,
    pub live: LiveMetrics,
    pub upkeep: UpkeepMetrics,
}

#[derive(Clone, Debug, Default)]
pub struct ErrorAnswers {
    pub client_errors: Counter,
    pub server_errors: Counter,
}

impl Metrics {
    pub fn new(enabled: bool) -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            enabled,
            requests: Requests::default(),
            refusals: Family::default(),
            answered: ErrorAnswers::default(),
            writes: WriteMetrics {
                accepted: Counter::default(),
                refused: Family::default(),
                skipped: Family::default(),
                commit_points: Histogram::new(histogram::POINTS),
                commit_seconds: Histogram::seconds(),
                commits_failed: Counter::default(),
                write_seconds: Histogram::seconds(),
            },
            live: LiveMetrics::default(),
            upkeep: UpkeepMetrics::default(),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Metrics {
        self.registry
            .register_collector(Box::new(self.requests.clone()));
        let own = self.registry.sub_registry_with_prefix("signalboard");
        own.register(
            "http_refusals",
            "Requests answered with an error, by reason",
            self.refusals.clone(),
        );
        let writes = &self.writes;
        own.register(
            "points_accepted",
            "Points committed",
            writes.accepted.clone(),
        );
        own.register(
            "points_refused",
            "Points read and refused, by reason",
            writes.refused.clone(),
        );
        own.register(
            "points_skipped",
            "Values read and not stored (string fields, stale markers), by reason",
            writes.skipped.clone(),
        );
        own.register(
            "commit_points",
            "Points per group commit",
            writes.commit_points.clone(),
        );
        own.register(
            "commit_duration_seconds",
            "Time one group commit takes",
            writes.commit_seconds.clone(),
        );
        own.register(
            "commits_failed",
            "Group commits the database failed (nothing of them stored)",
            writes.commits_failed.clone(),
        );
        own.register(
            "write_duration_seconds",
            "From a request's points queued to committed",
            writes.write_seconds.clone(),
        );
        own.register(
            "live_messages",
            "Live messages sent to subscribers",
            self.live.messages.clone(),
        );
        own.register(
            "live_clients_dropped",
            "Live subscribers disconnected, by reason",
            self.live.dropped.clone(),
        );
        let upkeep = &self.upkeep;
        own.register(
            "rows_expired",
            "Rows deleted by retention",
            upkeep.rows_expired.clone(),
        );
        own.register(
            "rollup_packs",
            "Spans of rollups packed into one row (a signal's hour of minutes, or day of hours)",
            upkeep.rollup_packs.clone(),
        );
        own.register(
            "database_bytes",
            "Size of the database on disk (measured every few seconds)",
            upkeep.database_bytes.clone(),
        );
        own.register(
            "wal_bytes",
            "Size of the write-ahead log on disk (measured every few seconds)",
            upkeep.wal_bytes.clone(),
        );
        self
    }

    /// Adds the figures read at each scrape from the running server's parts.
    pub fn watch(&mut self, watched: Watched) {
        self.registry.register_collector(Box::new(watched));
    }

    /// Counts one answered request: its refusal and skipped values always, its route, status and
    /// duration when `enabled`.
    pub fn answered(&self, exchange: &Exchange<'_>) {
        if let Some(refusal) = exchange.refusal {
            self.refusals
                .get_or_create(&Reason::of(refusal.reason))
                .inc();
        }
        if exchange.status.is_client_error() {
            self.answered.client_errors.inc();
        } else if exchange.status.is_server_error() {
            self.answered.server_errors.inc();
        }
        if let Some(skipped) = exchange.skipped {
            let reason = Reason::of(skipped.reason);
            self.writes
                .skipped
                .get_or_create(&reason)
                .inc_by(skipped.count as u64);
        }
        if self.enabled {
            let route = exchange.route.unwrap_or(FILES_ROUTE);
            let (method, status) = (exchange.method, exchange.status);
            self.requests
                .record(route, method, status, exchange.elapsed);
        }
    }
}

/// `GET /metrics`: every figure, in Prometheus' text format (0.0.4); 404 with the `metrics` setting
/// off.
pub async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    if !state.metrics.enabled {
        return Err(ApiError::NotFound(
            "/metrics (setting metrics is off)".into(),
        ));
    }
    let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &state.metrics.registry)
        .map_err(|e| ApiError::Encoding(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// The server's parts whose figures are read when scraped, not counted as they change.
#[derive(Clone)]
pub struct Watched {
    pub queue: QueueDepth,
    pub live: LiveFeed,
    pub store: Store,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watched")
    }
}

impl Collector for Watched {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value as i64).encode(metric)
        };
        let queued = self.queue.points() as u64;
        gauge(
            &mut encoder,
            "signalboard_write_queue_points",
            "Points waiting for a commit",
            queued,
        )?;
        let clients = self.live.subscribers() as u64;
        gauge(
            &mut encoder,
            "signalboard_live_clients",
            "Live subscribers connected",
            clients,
        )?;
        let signals = self.store.signal_count() as u64;
        gauge(
            &mut encoder,
            "signalboard_signals",
            "Signals this server knows",
            signals,
        )?;
        let pool = self.store.pool_use();
        gauge(
            &mut encoder,
            "signalboard_database_connections",
            "Database connections open",
            pool.open as u64,
        )?;
        gauge(
            &mut encoder,
            "signalboard_database_connections_in_use",
            "Database connections running a query or transaction",
            pool.in_use as u64,
        )?;
        let process = ProcessFigures::read();
        let cpu = encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(process.cpu_seconds).encode(cpu)?;
        let figures = [
            (
                "process_resident_memory_bytes",
                "Resident memory size",
                process.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size",
                process.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                process.open_fds,
            ),
            (
                "process_max_fds",
                "Most open file descriptors allowed",
                process.max_fds,
            ),
            ("process_threads", "Threads", process.threads),
        ];
        for (name, help, value) in figures {
            gauge(&mut encoder, name, help, value)?;
        }
        Ok(())
    }
}
