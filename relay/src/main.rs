//! `videocall-relay`: runs one media relay until SIGTERM/SIGINT drains it.

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use videocall_relay::RelayConfig;

/// The videocall media relay.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: RelayConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let relay = videocall_relay::start(cli.config)
        .await
        .context("starting the relay")?;
    let state = relay.state.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: draining");
        state.start_drain();
        // A second signal stops at once.
        wait_for_signal().await;
        state.shutdown.cancel();
    });
    relay.stopped().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
