//! `videocall-relay`: runs one media relay until SIGTERM/SIGINT drains it.

use anyhow::Context;
use clap::Parser;

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
    videocall_process::init_tracing();
    let cli = Cli::parse();
    let relay = videocall_relay::start(cli.config)
        .await
        .context("starting the relay")?;
    let state = relay.state.clone();
    tokio::spawn(async move {
        videocall_process::stop_signal().await;
        tracing::info!("signal received: draining");
        state.start_drain();
        // A second signal stops at once.
        videocall_process::stop_signal().await;
        state.shutdown.cancel();
    });
    relay.stopped().await;
    Ok(())
}
