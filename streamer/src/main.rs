//! `videocall-streamer`: streams a test pattern or a Y4M file (a camera next) into a meeting.
//! `stream --help` lists the options; each also reads an environment variable.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use videocall_streamer::capture::CaptureControl;
use videocall_streamer::config::StreamArgs;
use videocall_streamer::metrics::Metrics;
use videocall_streamer::{admin, stream};

#[derive(Parser)]
#[command(name = "videocall-streamer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join a meeting and publish video until stopped (SIGINT/SIGTERM: leave, then close).
    Stream(Box<StreamArgs>),
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        // One line: what failed and why.
        eprintln!("videocall-streamer: {error:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    videocall_process::init_tracing();
    let Command::Stream(args) = Cli::parse().command;
    let metrics = Metrics::new()?;
    let control = CaptureControl::default();
    let stop = CancellationToken::new();
    if let Some(addr) = args.admin_addr {
        let listener = admin::bind(addr)
            .await
            .with_context(|| format!("binding the admin address {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "admin: /metrics /healthz /readyz");
        let (metrics, control, stop) = (metrics.clone(), control.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(error) = admin::serve(listener, metrics, control, stop).await {
                tracing::error!(%error, "the admin listener failed");
            }
        });
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            videocall_process::stop_signal().await;
            tracing::info!("stopping: leaving the meeting");
            stop.cancel();
        });
    }
    stream::run(*args, metrics, control, stop.clone())
        .await
        .context("streaming")?;
    stop.cancel();
    Ok(())
}
