//! `videocall-control-plane`: serves the control-plane API until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use videocall_control_plane::{ControlPlaneConfig, ControlPlaneServer};

/// The videocall control plane.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: ControlPlaneConfig,
    /// Write the bound address to this file once serving (for scripts and tests).
    #[arg(long, env = "CONTROL_PLANE_READY_FILE")]
    ready_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    videocall_process::init_tracing();
    let cli = Cli::parse();
    let server = ControlPlaneServer::start(cli.config)
        .await
        .context("starting the control plane")?;
    if let Some(path) = &cli.ready_file {
        let json = serde_json::json!({
            "grpc_addr": server.addr,
            "metrics_addr": server.metrics_addr,
            "pid": std::process::id(),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&json)?)?;
        std::fs::rename(&tmp, path)?;
    }
    videocall_process::stop_signal().await;
    tracing::info!("signal received: stopping");
    server.stop().await;
    Ok(())
}
