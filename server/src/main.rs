//! The `camerata` binary: parse configuration, start logging, call `camerata_server::run`.

use camerata_server::{Config, Listeners, run};

/// jemalloc hands freed memory back to the system after a few seconds, so a server that runs
/// for months has the resident memory of its current load, not of its busiest moment (the
/// soak in docs/soak.md measures it).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_args();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if config.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    let listeners = Listeners::bind(&config)?;
    let settled = config.settle(listeners.local_addr()?)?;
    let local = listeners.local_addr()?;
    tracing::info!(
        "Camerata {} listening on {local}; public URL {}",
        env!("CARGO_PKG_VERSION"),
        settled.public_url()
    );
    if settled.dev_tokens {
        tracing::info!(
            "demo page: {} (pick a room and a name)",
            settled.public_url()
        );
    }
    if settled.dev_secret {
        // The secret itself is never logged; the development one is a published constant.
        tracing::warn!(
            "using the development secret {} (user OPENVIDUAPP); set OPENVIDU_SECRET before \
             exposing this server",
            camerata_server::config::DEV_SECRET
        );
    }
    run(settled, listeners, shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
