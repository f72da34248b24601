//! `videocall-gateway`: the platform's public entry (QUIC routing, HTTP and WebSocket proxy).

use clap::Parser;
use tracing_subscriber::EnvFilter;
use videocall_gateway::GatewayConfig;

/// Routes QUIC datagrams to relays by connection ID and server name; proxies HTTP and
/// WebSocket by path.
#[derive(Debug, Parser)]
#[command(name = "videocall-gateway", version)]
struct Cli {
    #[command(flatten)]
    config: GatewayConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let gateway = videocall_gateway::start(cli.config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("gateway stopping");
    gateway.stop().await;
    Ok(())
}
