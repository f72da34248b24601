//! `videocall-control-plane`: serves the control-plane API until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
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
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let server = ControlPlaneServer::start(cli.config)
        .await
        .context("starting the control plane")?;
    if let Some(path) = &cli.ready_file {
        let json = serde_json::json!({ "grpc_addr": server.addr, "pid": std::process::id() });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&json)?)?;
        std::fs::rename(&tmp, path)?;
    }
    wait_for_signal().await;
    tracing::info!("signal received: stopping");
    server.stop().await;
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
