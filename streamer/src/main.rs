//! `videocall-streamer`: streams a camera, a test pattern or a Y4M file into a meeting
//! (`stream`), or lists the cameras with their formats, sizes and rates, and the
//! microphones (`devices`).
//! `stream --help` lists the options; each also reads an environment variable, and
//! `STREAMER_OPTIONS_FILE` may name a file of such variables (per-node options).

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use videocall_streamer::capture::CaptureControl;
use videocall_streamer::config::StreamArgs;
use videocall_streamer::metrics::Metrics;
use videocall_streamer::{admin, options_file, stream};

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
    /// List the cameras (V4L2 video capture devices) with their formats, sizes and rates,
    /// and the microphones (ALSA capture devices).
    Devices,
}

fn main() {
    let outcome = apply_options_file().and_then(|()| {
        let cli = Cli::parse();
        tokio::runtime::Runtime::new()
            .context("starting the runtime")?
            .block_on(run(cli))
    });
    if let Err(error) = outcome {
        // One line: what failed and why.
        eprintln!("videocall-streamer: {error:#}");
        std::process::exit(1);
    }
}

/// Sets the variables of `STREAMER_OPTIONS_FILE`, before any thread starts.
fn apply_options_file() -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(options_file::OPTIONS_FILE_ENV) else {
        return Ok(());
    };
    for (name, value) in options_file::read(std::path::Path::new(&path))? {
        std::env::set_var(name, value);
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    videocall_process::init_tracing();
    let args = match cli.command {
        Command::Stream(args) => args,
        Command::Devices => return list_devices(),
    };
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

/// Prints each camera and what it offers, then each microphone; a machine without one
/// says so.
fn list_devices() -> anyhow::Result<()> {
    list_cameras()?;
    list_microphones();
    Ok(())
}

#[cfg(all(target_os = "linux", feature = "alsa"))]
fn list_microphones() {
    let microphones = videocall_streamer::audio::microphone::microphones();
    if microphones.is_empty() {
        println!("no microphones: ALSA knows no capture device here (--audio sends a test tone)");
    } else {
        println!("microphones (--audio-device):");
    }
    for (name, description) in microphones {
        println!("  {name}  {description}");
    }
}

#[cfg(not(all(target_os = "linux", feature = "alsa")))]
fn list_microphones() {
    println!("no microphones: this build has no ALSA support (--audio sends a test tone)");
}

#[cfg(all(target_os = "linux", feature = "v4l2"))]
fn list_cameras() -> anyhow::Result<()> {
    let cameras = videocall_streamer::camera::v4l2::cameras();
    if cameras.is_empty() {
        println!("no cameras: no /dev/video* device here captures video");
    }
    for camera in cameras {
        println!(
            "{}  {} ({}, {})",
            camera.path.display(),
            camera.card,
            camera.driver,
            camera.bus
        );
        for offer in &camera.offers {
            println!("  {}", offer.describe());
        }
    }
    Ok(())
}

#[cfg(not(all(target_os = "linux", feature = "v4l2")))]
fn list_cameras() -> anyhow::Result<()> {
    Err(videocall_streamer::camera::CameraError::Unsupported.into())
}
