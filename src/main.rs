//! The `signalboard` binary: `serve` (the default) or `produce`. See `signalboard --help`.

/// mimalloc instead of glibc's allocator, which took ~9 % of the server's time under ingest (its
/// consolidation of freed chunks above all): batch ingest +10–40 %, history reads faster too, for
/// ~15 MB more resident memory (54 MB after 20 M points; 120 MB, not 65, while 1,000 signals are
/// written at full speed).
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use clap::Parser;
    use signalboard::config::{Cli, Command, Settings};
    use signalboard::server;

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
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
            server::producer::run(args.url, args.simulation).await;
            Ok(())
        }
        Command::Bench(args) => signalboard::bench::run(args).await,
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
