//! `signalboard edge --upstream URL`: an edge aggregator beside the producers. It takes the server's
//! write APIs (JSON, line protocol, remote write: the same handlers and limits, `server::intake`),
//! answers once the points are in its spool on disk, and forwards them upstream oldest first, in
//! gzipped batches, at most `--forward-rate` points a second, with the producer's delivery
//! (`producer::Delivery`: backoff, Retry-After, dead letters). So producers on a site keep
//! writing through an outage of the server or of the link, and the edge itself may crash: what it
//! acknowledged is in the spool, and reaches the server once, since a resend overwrites.

use crate::config::{EdgeArgs, Limits};
use crate::model::Sample;
use crate::producer::spool::{Spool, SpoolStats};
use crate::producer::{Delivery, Upstream};
use crate::server::clock::{self, SharedClock};
use crate::server::domain::{DataPoint, Timestamp};
use crate::server::error::ApiError;
use crate::server::intake::{self, Intake};
use crate::server::lineproto::NameCache;
use crate::server::listen;
use crate::server::store::Durability;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::{middleware, Json, Router};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// How long the forwarder lets points gather after the first arrives, so that many small
/// requests go upstream as one batch.
const LINGER: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct EdgeState(Arc<Edge>);

pub struct Edge {
    spool: Spool,
    upstream: String,
    limits: Limits,
    clock: SharedClock,
    writes_in_flight: Semaphore,
    line_names: NameCache,
    accept_token: Option<String>,
    /// Wakes the forwarder when points are spooled.
    spooled: Notify,
}

/// Serves the edge on `listener` until `shutdown` resolves. What is not forwarded by then stays in
/// the spool for the next start.
pub async fn serve(
    listener: TcpListener,
    args: EdgeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && args.accept_token.is_none() && !args.no_auth {
        anyhow::bail!(
            "listening on {addr}, beyond this machine, with no token: anyone who can reach the \
             port could write. Give --accept-token, or --no-auth to listen without"
        );
    }
    let limits = Limits::load(&args.config)?;
    let delivery = Delivery::open(Upstream {
        url: args.upstream.clone(),
        token: args.token,
        spool: Some(args.spool.clone()),
        spool_bytes: args.spool_max_mb << 20,
        sync: args.durability == Durability::Fsync,
        max_rate: Some(f64::from(args.forward_rate.max(1))),
    })
    .await?;
    let state = EdgeState(Arc::new(Edge {
        spool: delivery.spool().clone(),
        upstream: args.upstream,
        writes_in_flight: Semaphore::new(limits.max_concurrent_writes),
        line_names: Default::default(),
        limits: limits.clone(),
        clock: clock::system(),
        accept_token: args.accept_token,
        spooled: Notify::new(),
    }));
    let forwarder = tokio::spawn(forward(delivery, state.clone()));
    tracing::info!(
        "edge listening on http://{addr}, spooling in {}, forwarding to {}",
        args.spool.display(),
        state.0.upstream
    );
    listen::serve(listener, router(state), &limits, shutdown).await;
    forwarder.abort();
    Ok(())
}

fn router(state: EdgeState) -> Router {
    let open = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/spool", get(spool_stats));
    intake::with_write_routes(open, &state)
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            intake::guard::<EdgeState>,
        ))
        .with_state(state)
}

/// What the spool holds and has lost, and where it forwards to.
#[derive(serde::Serialize)]
struct SpoolReport {
    upstream: String,
    #[serde(flatten)]
    stats: SpoolStats,
}

async fn spool_stats(State(state): State<EdgeState>) -> Json<SpoolReport> {
    Json(SpoolReport {
        upstream: state.0.upstream.clone(),
        stats: state.0.spool.stats(),
    })
}

/// Delivers the spool for as long as the edge runs: at once when points arrive (after `LINGER`),
/// and when a failure's backoff or the rate limit allows.
async fn forward(mut delivery: Delivery, state: EdgeState) {
    loop {
        match delivery.deliver().await {
            Ok(true) => {
                state.0.spooled.notified().await;
                tokio::time::sleep(LINGER).await;
            }
            Ok(false) => tokio::time::sleep_until(delivery.next_try().into()).await,
            Err(e) => {
                tracing::error!(error = %e, "reading the spool failed; trying again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Intake for EdgeState {
    fn limits(&self) -> &Limits {
        &self.0.limits
    }

    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    fn line_names(&self) -> &NameCache {
        &self.0.line_names
    }

    async fn admit(&self, secret: Option<String>) -> Result<SemaphorePermit<'_>, ApiError> {
        let place = self
            .0
            .writes_in_flight
            .try_acquire()
            .map_err(|_| ApiError::Overloaded)?;
        if let Some(expected) = &self.0.accept_token {
            let presented = secret.ok_or(ApiError::Unauthorized)?;
            if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(ApiError::Unauthorized);
            }
        }
        Ok(place)
    }

    async fn write(&self, points: Vec<DataPoint>) -> Result<usize, ApiError> {
        let count = points.len();
        let (samples, json) = as_samples(points);
        self.0
            .spool
            .push(samples, json)
            .await
            .map_err(ApiError::Spool)?;
        self.0.spooled.notify_one();
        Ok(count)
    }
}

/// A request's points as the JSON samples they will be posted as (comma-separated), one per
/// timestamp, and how many points those hold (a repeated (signal, timestamp) once, the last).
fn as_samples(points: Vec<DataPoint>) -> (u32, String) {
    let mut by_time: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
    for point in points {
        by_time
            .entry(point.timestamp.millis())
            .or_default()
            .insert(point.signal.into_string(), point.value.get());
    }
    let count = by_time.values().map(BTreeMap::len).sum::<usize>();
    let json = by_time
        .into_iter()
        .map(|(timestamp, signals)| {
            serde_json::to_string(&Sample { timestamp, signals })
                .expect("a sample of finite values serialises")
        })
        .collect::<Vec<_>>()
        .join(",");
    (count as u32, json)
}
