//! Requests by route, method and status, and their durations: the only figures recorded on every
//! request, so recording is one read-locked lookup by the matched route (no allocation, a fast
//! hash) and a few atomic adds. Routes are axum's matched paths and methods the standard seven or
//! `other`: a client cannot make the table grow.

use super::histogram::Histogram;
use axum::http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// The methods counted by name; any other is `other`.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "other",
];

/// Status codes are 100 to 599.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

#[derive(Clone, Default, Debug)]
pub struct Requests(Arc<RwLock<HashMap<Box<str>, RouteFigures, foldhash::fast::RandomState>>>);

/// One route's figures, a method's made when first asked.
#[derive(Default, Debug)]
struct RouteFigures {
    methods: [OnceLock<MethodFigures>; METHODS.len()],
}

#[derive(Debug)]
struct MethodFigures {
    duration: Histogram,
    /// Answers by status, `FIRST_STATUS` first.
    statuses: Box<[AtomicU64]>,
}

impl Requests {
    pub fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let method = method_index(method);
        let record = |figures: &RouteFigures| {
            let figures = figures.methods[method].get_or_init(MethodFigures::new);
            figures.duration.observe(elapsed.as_secs_f64());
            let slot = usize::from(status.as_u16().saturating_sub(FIRST_STATUS));
            if let Some(count) = figures.statuses.get(slot) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        };
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(figures) = table.get(route) {
            return record(figures);
        }
        drop(table);
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        record(table.entry(route.into()).or_default());
    }
}

impl MethodFigures {
    fn new() -> MethodFigures {
        MethodFigures {
            duration: Histogram::seconds(),
            statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn method_index(method: &Method) -> usize {
    let name = method.as_str();
    METHODS
        .iter()
        .position(|&m| m == name)
        .unwrap_or(METHODS.len() - 1)
}

impl Collector for Requests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        let used = || {
            table.iter().flat_map(|(route, figures)| {
                let methods = METHODS.iter().zip(&figures.methods);
                methods.filter_map(move |(&method, f)| Some(((&**route, method), f.get()?)))
            })
        };
        let mut counters = encoder.encode_descriptor(
            "signalboard_http_requests",
            "HTTP requests answered, by route, method and status",
            None,
            MetricType::Counter,
        )?;
        for ((route, method), figures) in used() {
            for (slot, count) in figures.statuses.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let status = (FIRST_STATUS + slot as u16).to_string();
                    let labels = [("route", route), ("method", method), ("status", &status)];
                    ConstCounter::new(count).encode(counters.encode_family(&labels)?)?;
                }
            }
        }
        let mut durations = encoder.encode_descriptor(
            "signalboard_http_request_duration_seconds",
            "Time from a request's headers to its answer, by route and method",
            None,
            MetricType::Histogram,
        )?;
        for ((route, method), figures) in used() {
            let labels = [("route", route), ("method", method)];
            figures.duration.encode(durations.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
