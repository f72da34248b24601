//! `videocall-gateway`: the platform's public entry (QUIC routing, HTTP and WebSocket proxy).

use clap::Parser;
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
    videocall_process::init_tracing();
    let cli = Cli::parse();
    let gateway = videocall_gateway::start(cli.config).await?;
    videocall_process::stop_signal().await;
    tracing::info!("gateway stopping");
    gateway.stop().await;
    Ok(())
}
