//! `videocall`: the whole platform on one machine.
//!
//! `videocall up` starts everything with embedded defaults (a data directory, a
//! self-signed certificate, a development token issuer) and prints where to connect;
//! `videocall join` and `videocall token` use the same data directory.

mod data_dir;
mod dev_issuer;
mod join;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;
use tracing_subscriber::EnvFilter;
use videocall_relay::RelayConfig;
use videocall_token::{Claims, Grants, TokenVerifier};

use data_dir::{DataDir, DEV_KID};

/// The videocall platform on one machine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Directory for keys, certificates and state.
    #[arg(
        long,
        env = "VIDEOCALL_DATA_DIR",
        default_value = "data",
        global = true
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the platform (the default).
    Up(Box<UpArgs>),
    /// Print a development join token.
    Token {
        /// Meeting the token admits to.
        #[arg(long, default_value = "demo")]
        meeting: String,
        /// User name.
        #[arg(long, default_value = "alice")]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Join a meeting from this terminal.
    Join(join::JoinArgs),
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Address of the platform's web entry (token issuer, information page).
    #[arg(long, env = "VIDEOCALL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    #[command(flatten)]
    relay: RelayConfig,
}

/// What a running platform writes to `<data>/platform.json`.
#[derive(Debug, Serialize)]
struct PlatformInfo {
    http_url: String,
    token_url: String,
    relay: videocall_relay::RelayInfo,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let data = DataDir::open(&cli.data_dir)?;
    match cli.command {
        Some(Command::Up(args)) => up(&data, *args).await,
        None => {
            let args = UpArgs::parse_defaults();
            up(&data, args).await
        }
        Some(Command::Token {
            meeting,
            user,
            ttl_secs,
        }) => {
            videocall_protocol::ids::validate_meeting_id(&meeting).map_err(anyhow::Error::msg)?;
            videocall_protocol::ids::validate_user(&user).map_err(anyhow::Error::msg)?;
            let claims = Claims::new(
                &user,
                &user,
                &meeting,
                Grants::default(),
                Duration::from_secs(ttl_secs),
            );
            println!("{}", data.dev_issuer()?.issue(&claims)?);
            Ok(())
        }
        Some(Command::Join(args)) => join::run(&data, args).await,
    }
}

impl UpArgs {
    fn parse_defaults() -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            up: UpArgs,
        }
        Wrapper::parse_from(["videocall"]).up
    }
}

async fn up(data: &DataDir, args: UpArgs) -> anyhow::Result<()> {
    let issuer = Arc::new(data.dev_issuer()?);
    let mut verifier = TokenVerifier::new();
    verifier.add_key_base64(DEV_KID, &issuer.public_key_base64())?;
    for spec in &args.relay.token_keys {
        verifier.add_key_spec(spec)?;
    }
    let mut relay_config = args.relay;
    relay_config.ready_file = Some(data.relay_info_path());
    if relay_config.tls_cert.is_none() {
        relay_config.self_signed_dir = Some(data.tls_dir());
    }
    let relay = videocall_relay::start_with_verifier(relay_config, verifier)
        .await
        .context("starting the relay")?;

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    let http_addr = listener.local_addr()?;
    let router = dev_issuer::router(issuer, Arc::new(relay.info.clone()));
    let shutdown = relay.state.shutdown.clone();
    tokio::spawn(async move {
        let stopped = shutdown.clone();
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
        {
            tracing::error!(%error, "web entry failed");
            shutdown.cancel();
        }
    });

    let info = PlatformInfo {
        http_url: format!("http://{http_addr}/"),
        token_url: format!("http://{http_addr}/dev/token?meeting=demo&user=alice"),
        relay: relay.info.clone(),
    };
    std::fs::write(
        data.root().join("platform.json"),
        serde_json::to_vec_pretty(&info)?,
    )?;
    print_banner(data, &info);

    let state = relay.state.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        println!("stopping: draining the relay (Ctrl-C again to stop at once)");
        state.start_drain();
        let _ = tokio::signal::ctrl_c().await;
        state.shutdown.cancel();
    });
    #[cfg(unix)]
    {
        let state = relay.state.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
                state.start_drain();
            }
        });
    }
    relay.stopped().await;
    Ok(())
}

fn print_banner(data: &DataDir, info: &PlatformInfo) {
    let r = &info.relay;
    println!();
    println!("videocall is running (data in {})", data.root().display());
    println!("  Open           {}", info.http_url);
    println!("  Join token     {}", info.token_url);
    println!("  WebTransport   {}", r.webtransport_url);
    println!(
        "  Certificate    sha256 {} (self-signed, 13 days)",
        r.certificate_sha256
    );
    println!("  WebSocket      {}", r.websocket_url);
    println!("  Metrics        {}/metrics", r.admin_url);
    println!();
    println!("Try a meeting from two terminals:");
    println!("  cargo run --release --bin videocall -- join --meeting demo --user alice --publish");
    println!("  cargo run --release --bin videocall -- join --meeting demo --user bob --transport websocket");
    println!();
}
