//! The write endpoints as a unit, for whoever takes points in: the server (into its database,
//! through the writer) and `signalboard edge` (into its spool). Both parse, validate, bound and
//! answer requests the same way: the same handlers, limits and error shapes; only who may write
//! and where the points go differ (`Intake`).

use crate::config::Limits;
use crate::server::access::{check_origin, presented};
use crate::server::domain::{DataPoint, Timestamp};
use crate::server::error::{self, ApiError, Refusal};
use crate::server::lineproto::NameCache;
use crate::server::metrics::FILES_ROUTE;
use crate::server::{ingest, remote_write};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::SemaphorePermit;
use tower_http::decompression::RequestDecompressionLayer;

/// What the write endpoints need from whoever takes the points.
pub trait Intake: Clone + Send + Sync + 'static {
    fn limits(&self) -> &Limits;

    fn now(&self) -> Timestamp;

    /// Line protocol's signal names, kept between requests.
    fn line_names(&self) -> &NameCache;

    /// Lets a write in that presents `secret` (or none), holding its place among the writes in
    /// progress until it is answered; or says why not (401, 403, 429, 503).
    fn admit(
        &self,
        secret: Option<String>,
    ) -> impl Future<Output = Result<SemaphorePermit<'_>, ApiError>> + Send;

    /// Takes the points; returns how many once they are safe (committed, or spooled).
    fn write(&self, points: Vec<DataPoint>)
        -> impl Future<Output = Result<usize, ApiError>> + Send;

    /// Hears of every answered request: logs it when it is an error (at a bounded rate).
    fn answered(&self, exchange: &Exchange<'_>) {
        exchange.log();
    }
}

/// One answered request, as the log and the metrics see it.
pub struct Exchange<'a> {
    /// The route it matched; `None` for a file of the site, or nothing.
    pub route: Option<&'a str>,
    pub method: &'a Method,
    pub status: StatusCode,
    pub elapsed: Duration,
    /// Why, when it was answered with an error.
    pub refusal: Option<&'a Refusal>,
    pub skipped: Option<&'a Skipped>,
}

impl Exchange<'_> {
    pub fn log(&self) {
        let target = self.route.unwrap_or(FILES_ROUTE);
        error::log_answer(self.method, target, self.status, self.refusal);
    }
}

/// Values a write read and did not store, carried on its answer to be counted.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub reason: &'static str,
    pub count: usize,
}

/// `app` with the write endpoints: JSON on `/api/telemetry`, line protocol on `/api/v2/write` and
/// `/write`, Prometheus remote write on `/api/v1/write`. Bodies are bounded by `max-body-bytes`
/// after decompression (a gzip bomb is refused like any large body); `app`'s routes get the same.
pub fn with_write_routes<I: Intake>(app: Router<I>, intake: &I) -> Router<I> {
    let admit = middleware::from_fn_with_state(intake.clone(), admit_write::<I>);
    // InfluxDB's endpoints answer errors in its shape too, those of the admission included.
    let influx = Router::new()
        .route("/api/v2/write", post(ingest::post_line_protocol::<I>))
        .route("/write", post(ingest::post_line_protocol::<I>))
        .route_layer(admit.clone())
        .route_layer(middleware::map_response(error::influx_shape));
    // Prometheus compresses with snappy and says so in Content-Encoding, which the decompression
    // layer below would refuse: this route is merged outside it, with the body limit of its own.
    let remote_write = Router::new()
        .route("/api/v1/write", post(remote_write::post_remote_write::<I>))
        .route_layer(admit.clone())
        .layer(DefaultBodyLimit::max(intake.limits().max_body_bytes));
    let writes = Router::new()
        .route("/api/telemetry", post(ingest::post_json::<I>))
        .route_layer(admit)
        .merge(influx);
    app.merge(writes)
        .layer(DefaultBodyLimit::max(intake.limits().max_body_bytes))
        .layer(RequestDecompressionLayer::new())
        .merge(remote_write)
}

/// Lets a write through that comes from no other site's page and that the intake admits.
async fn admit_write<I: Intake>(State(intake): State<I>, request: Request, next: Next) -> Response {
    let secret = presented(&request);
    let admitted = match check_origin(request.headers()) {
        Ok(()) => intake.admit(secret).await,
        Err(e) => Err(e),
    };
    match admitted {
        Ok(_place) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// What every request gets: a 408 past `request-timeout-secs` from its headers to its answer (a body
/// trickled a byte at a time holds its connection and buffer no longer than that), and the security
/// headers on its answer.
pub async fn guard<I: Intake>(State(intake): State<I>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let deadline = intake.limits().request_timeout;
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let mut response = match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout { deadline }.into_response(),
    };
    intake.answered(&Exchange {
        route: route.as_ref().map(MatchedPath::as_str),
        method: &method,
        status: response.status(),
        elapsed: started.elapsed(),
        refusal: response.extensions().get(),
        skipped: response.extensions().get(),
    });
    crate::server::access::add_security_headers(response.headers_mut());
    response
}
