//! The `signalboard` binary: `serve` (the default), `produce`, `edge`, `token` and `bench`. See
//! `signalboard --help`. The benchmark lives here, beside the library rather than in it: it is a
//! client of the product, not part of it.

#[cfg(feature = "ssr")]
mod bench;
#[cfg(feature = "ssr")]
use clap::{Parser, Subcommand};
#[cfg(feature = "ssr")]
use signalboard::config;

/// mimalloc instead of glibc's allocator, whose consolidation of freed chunks took a good share of
/// the server's time under ingest (docs/benchmarks.md has the figures).
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (the Rust bindings leave it out): how long
/// freed memory stays with the process before it is given back to the system. mimalloc's default, a
/// second, kept more memory than needed; given back at once, each commit's buffers were returned and
/// faulted in again, and ingest of many signals slowed. 100 ms keeps both low.
#[cfg(feature = "ssr")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[cfg(feature = "ssr")]
#[derive(Parser, Debug)]
#[command(
    name = "signalboard",
    version,
    about = "Real-time telemetry: ingest, store, and watch live signals."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// How log lines are written: text for people, json (one object a line) for machines.
    #[arg(long, global = true, env = "SIGNALBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// With no subcommand, `signalboard` serves.
    #[command(flatten)]
    serve: config::ServeArgs,
}

#[cfg(feature = "ssr")]
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[cfg(feature = "ssr")]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: ingest API, live feed and dashboard (the default).
    Serve(config::ServeArgs),
    /// Run the simulated producer against a server.
    Produce(config::ProduceArgs),
    /// Take the write APIs beside producers, spool on disk, forward to a server (`--upstream`).
    Edge(config::EdgeArgs),
    /// Measure ingest speed, database size and memory (see the README's performance table).
    Bench(bench::BenchArgs),
    /// Create, list or revoke access tokens (a running server sees the change within a second).
    Token(config::TokenArgs),
}

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use signalboard::config::Settings;
    use signalboard::server;

    // SAFETY: options may be set at any time; this one only changes when memory is given back.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100) };

    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,sqlx=warn".into()),
    );
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => {
            let settings = Settings::load(&args)?;
            let addr = settings.leptos.site_addr;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            server::serve(listener, settings, shutdown_signal()).await
        }
        Command::Produce(args) => {
            use signalboard::producer::{self, HostSampler, Simulation, Source, Upstream};
            let upstream = Upstream {
                url: args.url,
                token: args.token,
                spool: args.spool,
                spool_bytes: args.spool_max_mb << 20,
                ..Upstream::default()
            };
            if args.stdin {
                return producer::run_stdin(upstream).await;
            }
            let source = match args.host {
                true => Source::Host(HostSampler::new()),
                false => {
                    Source::Simulation(Simulation::new(args.simulation.signals, fastrand::u64(..)))
                }
            };
            producer::run(upstream, source, args.simulation.rate).await
        }
        Command::Edge(args) => {
            let listener = tokio::net::TcpListener::bind(args.addr)
                .await
                .with_context(|| format!("listening on {}", args.addr))?;
            signalboard::edge::serve(listener, args, shutdown_signal()).await
        }
        Command::Bench(args) => bench::run(args).await,
        Command::Token(args) => server::access::token_command(args).await,
    }
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is queued, exit.
#[cfg(feature = "ssr")]
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser's entry point is `hydrate` in lib.rs.
}
