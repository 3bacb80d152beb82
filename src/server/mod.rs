//! The server: state shared by the handlers, the router, and the one place where background tasks start
//! and stop. Read `serve` first; each route's handler lives in the file named for its concern.

pub mod access;
pub mod alerts;
pub mod clock;
pub mod domain;
pub mod error;
pub mod gzip;
pub mod health;
pub mod ingest;
pub mod intake;
pub mod lineproto;
pub mod listen;
pub mod live;
pub mod log_throttle;
pub mod metrics;
pub mod query;
pub mod remote_write;
pub mod store;
pub mod upkeep;
pub mod writer;

use crate::app::shell;
use crate::config::{Limits, Settings};
use access::signin;
use access::tokens::Tokens;
use anyhow::Context;
use axum::extract::Request;
use axum::handler::HandlerWithoutStateExt;
use axum::http::Uri;
use axum::middleware;
use axum::routing::{get, on, post, MethodFilter};
use axum::Router;
use clock::SharedClock;
use error::ApiError;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use live::LiveFeed;
use metrics::Metrics;
use std::future::Future;
use std::sync::Arc;
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use writer::Writer;

/// What every handler and server function can reach. One `Arc`: middleware and extractors clone the
/// state for every request, and cloning the fields one by one (pools, channels, the Leptos options)
/// made single-sample POSTs measurably slower.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub writer: Writer,
    pub alerts: alerts::Alerts,
    pub live: LiveFeed,
    pub metrics: Arc<Metrics>,
    pub monitoring: crate::config::Monitoring,
    pub limits: Arc<Limits>,
    pub tokens: Tokens,
    /// What every handler asks for the time.
    pub clock: SharedClock,
    /// A permit per write request in progress (`access::admit_write`).
    pub writes_in_flight: Semaphore,
    pub line_names: lineproto::NameCache,
    pub leptos: LeptosOptions,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Serves on `listener` until `shutdown` resolves, then lets the writer commit what is queued.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let clock = settings.clock.clone();
    let store = Store::open(
        &settings.database_url,
        settings.durability,
        settings.retention,
        clock.clone(),
    )
    .await
    .with_context(|| format!("opening the database {}", settings.database_url))?;
    let tokens = Tokens::load(store.clone(), settings.limits.token_write_rate).await?;
    if !addr.ip().is_loopback() && !settings.no_auth && !tokens.required().await? {
        anyhow::bail!(
            "serving on {addr}, beyond this machine, with no access token: anyone who can reach \
             the port could read and overwrite everything. Create a token first (`signalboard \
             token create --name NAME --scope admin`), or pass --no-auth to serve without"
        );
    }
    let limits = Arc::new(settings.limits.clone());
    let mut metrics = Metrics::new(settings.monitoring.metrics);
    let live = LiveFeed::new(
        limits.live_backlog_points,
        limits.live_send_timeout,
        metrics.live.clone(),
    );
    let (alerts, mut alert_tasks) = alerts::Alerts::start(store.clone(), clock.clone()).await?;
    let (writer, writer_task) = Writer::spawn(
        store.clone(),
        live.clone(),
        alerts.clone(),
        limits.clone(),
        clock.clone(),
        metrics.writes.clone(),
    );
    metrics.watch(metrics::Watched {
        queue: writer.queue_depth(),
        live: live.clone(),
        store: store.clone(),
    });
    let metrics = Arc::new(metrics);
    let own_signals = settings.monitoring.self_signals.map(|every| {
        let own = metrics::own_signals::OwnSignals {
            metrics: metrics.clone(),
            writer: writer.clone(),
            live: live.clone(),
            clock: clock.clone(),
            server: store.is_shared().then(|| addr.to_string()),
        };
        tokio::spawn(own.run(every))
    });
    let state = AppState(Arc::new(Shared {
        store: store.clone(),
        writer,
        alerts,
        live,
        metrics: metrics.clone(),
        monitoring: settings.monitoring.clone(),
        limits,
        tokens,
        clock: clock.clone(),
        writes_in_flight: Semaphore::new(settings.limits.max_concurrent_writes),
        line_names: Default::default(),
        leptos: settings.leptos.clone(),
    }));
    // The demo: simulated signals beside this machine's own, each from a producer of its own.
    let demo = settings.demo.clone().map(|simulation| {
        use crate::producer::{run, HostSampler, Simulation, Source, Upstream};
        let url = format!("http://{addr}/api/telemetry");
        tracing::info!(
            signals = simulation.signals,
            rate = simulation.rate,
            "demo producers feeding {url}: simulated signals and this machine's"
        );
        let simulated = Source::Simulation(Simulation::new(simulation.signals, fastrand::u64(..)));
        let host = Source::Host(HostSampler::new());
        let upstream = Upstream {
            url,
            ..Upstream::default()
        };
        [
            tokio::spawn(run(upstream.clone(), simulated, simulation.rate)),
            tokio::spawn(run(upstream, host, 1.0)),
        ]
    });
    let upkeep = tokio::spawn(upkeep::run(store.clone(), clock, metrics.upkeep.clone()));
    tracing::info!("listening on http://{addr} with {}", settings.database_url);
    listen::serve(listener, router(state), &settings.limits, shutdown).await;
    for producer in demo.into_iter().flatten() {
        producer.abort();
    }
    if let Some(own_signals) = own_signals {
        own_signals.abort();
        // Gone, and its `Writer` with it: the writer ends once no `Writer` is left.
        let _ = own_signals.await;
    }
    upkeep.abort();
    // The router, and with it every `Writer`, is gone: the writer drains its queue and ends.
    writer_task.await?;
    alert_tasks.shutdown().await;
    // Closing the last connection checkpoints the WAL into the database file.
    store.close().await;
    Ok(())
}

pub fn router(state: AppState) -> Router {
    // Each middleware costs a clone of the inner service and two allocations a request: the checks
    // of one kind of request are one middleware.
    let mut reads = Router::new()
        .route("/api/telemetry", get(query::get_telemetry))
        .route("/api/signals", get(query::get_signals))
        .route("/api/live", get(live::live_socket))
        .route("/metrics", get(metrics::scrape));
    // The dashboard is one page, rendered with its data in it (async mode: the charts' pictures show
    // at once, even before or without the WebAssembly), and routed here rather than by a client-side
    // router, which made the WebAssembly much larger. The page and the server functions get
    // `state` as context; the page's resources run on Leptos' executor, tokio's here (an error only
    // says it already is).
    let _ = any_spawner::Executor::init_tokio();
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let page = leptos_axum::render_app_async_with_context(context.clone(), {
        let options = state.leptos.clone();
        move || shell(options.clone())
    });
    reads = reads.route("/", get(page));
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        let context = context.clone();
        let handler = move |req| async move {
            leptos_axum::handle_server_fns_with_context(context, req).await
        };
        let method =
            MethodFilter::try_from(method).expect("server functions use plain HTTP methods");
        reads = reads.route(path, on(method, handler));
    }
    let reads = reads.route_layer(middleware::from_fn_with_state(
        state.clone(),
        access::require_read,
    ));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/signin", get(signin::page).post(signin::sign_in))
        .route("/signout", post(signin::sign_out));
    // Everything else is a file of the site (the WebAssembly, styles, icons) or a 404.
    let not_found = |uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) };
    let app = Router::new()
        .merge(open)
        .merge(reads)
        .merge(alerts::routes(&state));
    intake::with_write_routes(app, &state)
        .fallback_service(
            ServeDir::new(&*state.leptos.site_root).not_found_service(not_found.into_service()),
        )
        // Answers (history, the page, the WebAssembly) compressed as the client accepts, gzip or
        // brotli, at the fastest level: on loopback and LANs the CPU, not the bytes, is what a
        // request waits for.
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            intake::guard::<AppState>,
        ))
        // Requests are traced by path only: a query may carry a token (InfluxDB v1's `p`).
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

impl intake::Intake for AppState {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn now(&self) -> domain::Timestamp {
        self.clock.now()
    }

    fn line_names(&self) -> &lineproto::NameCache {
        &self.line_names
    }

    async fn admit(
        &self,
        secret: Option<String>,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        access::admit_write(self, secret).await
    }

    async fn write(&self, points: Vec<domain::DataPoint>) -> Result<usize, ApiError> {
        self.writer.write(points).await
    }

    fn answered(&self, exchange: &intake::Exchange<'_>) {
        exchange.log();
        self.metrics.answered(exchange);
    }
}
