//! The probes orchestrators and load balancers ask: `/healthz`, whether the process serves at all,
//! and `/readyz`, whether this server can take traffic now.

use crate::server::AppState;
use axum::extract::State;
use axum::http::StatusCode;

/// 200 while the process serves: what an orchestrator's liveness probe asks.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Whether this server can take traffic, and if not why: what a load balancer's readiness probe
/// asks.
#[derive(serde::Serialize)]
pub struct Readiness {
    ready: bool,
    /// `ok`, or why not.
    database: &'static str,
    writer: &'static str,
    /// Points waiting for a commit, and how many may.
    queued_points: usize,
    queue_limit: usize,
}

/// A queue this full is backlogged: new writes would soon be refused.
const BACKLOGGED: f64 = 0.9;

/// 200 when the database answers (its schema brought up to date when the server started) and the
/// writer runs with room in its queue; else 503, saying which.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let database = match state.store.ping().await {
        Ok(()) => "ok",
        Err(_) => "unavailable",
    };
    let (queued_points, queue_limit) = (
        state.writer.queued_points(),
        state.limits.write_queue_points,
    );
    let writer = if !state.writer.is_running() {
        "stopped"
    } else if queued_points as f64 >= queue_limit as f64 * BACKLOGGED {
        "backlogged"
    } else {
        "ok"
    };
    let ready = database == "ok" && writer == "ok";
    let status = match ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let readiness = Readiness {
        ready,
        database,
        writer,
        queued_points,
        queue_limit,
    };
    (status, axum::Json(readiness))
}
