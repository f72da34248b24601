//! `videocall`: the whole platform on one machine.
//!
//! `videocall up` starts everything with embedded defaults (a data directory, an SQLite
//! control plane, a self-signed certificate, a relay registered with the control plane, and the
//! gateway in front of them, as in a cluster) and prints where to connect; `videocall join` and
//! `videocall token` get join grants from it.

mod data_dir;
mod grant;
mod join;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use videocall_control_plane::store::{Access, MeetingUpdate, NewMeeting};
use videocall_control_plane::ControlPlaneConfig;
use videocall_relay::RelayConfig;
use videocall_token::TokenVerifier;

use data_dir::DataDir;

/// The meeting every fresh platform offers.
const DEMO_MEETING: &str = "demo";
/// The embedded relay's API key id.
const RELAY_KEY_ID: &str = "vk_embedded_relay";

/// The videocall platform on one machine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Directory for the database, keys, certificates and state.
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
    /// Print a join token for a meeting (a grant from the running platform).
    Token {
        /// Meeting the token admits to.
        #[arg(long, default_value = DEMO_MEETING)]
        meeting: String,
        #[command(flatten)]
        identity: grant::Identity,
    },
    /// Join a meeting from this terminal.
    Join(join::JoinArgs),
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The platform's web entry (the gateway's HTTP side): the browser client, grpc-web, the
    /// information page, and `/relay/0/ws` for WebSocket media.
    #[arg(long, env = "VIDEOCALL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// The platform's QUIC entry (the gateway's UDP side) for WebTransport media.
    #[arg(long, env = "VIDEOCALL_QUIC_ADDR", default_value = "127.0.0.1:4433")]
    quic_addr: SocketAddr,
    /// The gateway's `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long,
        env = "VIDEOCALL_GATEWAY_ADMIN_ADDR",
        default_value = "127.0.0.1:9093"
    )]
    gateway_admin_addr: SocketAddr,
    /// The control plane's `/metrics` and `/healthz`.
    #[arg(
        long,
        env = "VIDEOCALL_CONTROL_PLANE_METRICS_ADDR",
        default_value = "127.0.0.1:9094"
    )]
    control_plane_metrics_addr: SocketAddr,
    /// The control plane's own address: gRPC (h2c) for native clients and `videocall join`.
    #[arg(long, env = "VIDEOCALL_API_ADDR", default_value = "127.0.0.1:50051")]
    api_addr: SocketAddr,
    /// The built browser client (`scripts/web-build.sh` writes `web/dist`); found next to the
    /// sources when unset.
    #[arg(long, env = "VIDEOCALL_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Control-plane database; an SQLite file in the data directory when unset.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Relays behind the gateway. They share meetings over an in-process bus, or over NATS
    /// when `--nats-url` is set.
    #[arg(long, env = "VIDEOCALL_RELAYS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    relays: u16,
    /// With several relays: at most this many of one meeting's participants on a relay
    /// before new joiners go to the next (unset: fill a relay first).
    #[arg(long, env = "CONTROL_PLANE_MEETING_SHARE_PER_RELAY")]
    meeting_share_per_relay: Option<u32>,
    /// The demo meeting is end-to-end encrypted: every client (the browser, `videocall join`,
    /// the streamer) encrypts its media and chat, and the relay forwards only what is sealed.
    /// Set or cleared on every start.
    #[arg(long, env = "VIDEOCALL_DEMO_E2EE")]
    demo_e2ee: bool,
    /// Sign-in through an OpenID Connect provider (its redirect URI is
    /// `http://<http addr>/auth/oidc/callback`).
    #[command(flatten)]
    oidc: videocall_control_plane::config::OidcConfig,
    #[command(flatten)]
    relay: RelayConfig,
}

/// What a running platform writes to `<data>/platform.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlatformInfo {
    /// The web entry (through the gateway).
    pub http_url: String,
    /// The control-plane API, directly (gRPC and grpc-web).
    pub api_url: String,
    /// The gateway.
    pub gateway: videocall_gateway::GatewayInfo,
    /// The control plane's Prometheus metrics.
    #[serde(default)]
    pub control_plane_metrics_url: String,
    /// The initial admin.
    pub admin_user: String,
    /// Where the admin's password is kept.
    pub admin_password_file: PathBuf,
    /// The meeting that admits guests.
    pub demo_meeting: String,
    /// The demo meeting in a browser (`/meeting/<your-name>/demo`).
    pub meeting_url: String,
    /// The first relay.
    pub relay: videocall_relay::RelayInfo,
    /// Every relay (the first one too).
    #[serde(default)]
    pub relays: Vec<videocall_relay::RelayInfo>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    videocall_process::init_tracing();
    let cli = Cli::parse();
    let data = DataDir::open(&cli.data_dir)?;
    match cli.command {
        Some(Command::Up(args)) => up(&data, *args).await,
        None => {
            let args = UpArgs::parse_defaults();
            up(&data, args).await
        }
        Some(Command::Token { meeting, identity }) => {
            let platform = data.platform_info()?;
            let grant =
                grant::join(&platform.api_url, &meeting, &identity, false, Vec::new()).await?;
            println!("{}", grant.token);
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
    let listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("binding {}", args.api_addr))?;
    let api_addr = listener.local_addr()?;
    let api_url = format!("http://{api_addr}");
    // The gateway's sockets are bound first: the relay advertises their ports.
    let quic = std::net::UdpSocket::bind(args.quic_addr)
        .with_context(|| format!("binding {}", args.quic_addr))?;
    let http = std::net::TcpListener::bind(args.http_addr)
        .with_context(|| format!("binding {}", args.http_addr))?;
    let (quic_addr, http_addr) = (quic.local_addr()?, http.local_addr()?);

    // The control plane, on SQLite in the data directory unless told otherwise.
    let admin_password = data.secret("admin-password")?;
    let relay_secret = data.secret("relay-api-secret")?;
    let mut config = ControlPlaneConfig::defaults();
    config.grpc_addr = api_addr;
    config.meeting_share_per_relay = args.meeting_share_per_relay;
    config.database_url = args.database_url.unwrap_or_else(|| data.database_url());
    config.bootstrap_admin_password = Some(admin_password);
    config.bootstrap_api_keys.push(format!(
        "embedded-relay:relay:{RELAY_KEY_ID}:{relay_secret}"
    ));
    config.web_dir = args.web_dir.clone().or_else(web::default_web_dir);
    config.public_url = Some(format!("http://{http_addr}"));
    config.oidc = args.oidc.clone();
    if config.web_dir.is_none() {
        tracing::warn!(
            "the browser client is not built (scripts/web-build.sh): meeting pages explain how"
        );
    }
    let admin_user = config.bootstrap_admin_user.clone();
    let control_plane = videocall_control_plane::open(config)
        .await
        .context("starting the control plane")?;
    ensure_demo_meeting(&control_plane, &admin_user, args.demo_e2ee).await?;
    let api = videocall_control_plane::router(control_plane.clone()).await?;
    let metrics_listener = tokio::net::TcpListener::bind(args.control_plane_metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.control_plane_metrics_addr))?;
    let control_plane_metrics_addr = metrics_listener.local_addr()?;
    let metrics_routes = videocall_control_plane::metrics_router(control_plane.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(metrics_listener, metrics_routes).await {
            tracing::error!(%error, "control-plane metrics failed");
        }
    });

    // The relays register with the control plane and take their keys from it. Clients reach
    // them through the gateway, so they advertise the gateway's addresses; an IP address in
    // the URL carries no server name, and the gateway sends such connections to relay 0.
    let mut relay_config = args.relay;
    if relay_config.webtransport_addr == quic_addr {
        relay_config.webtransport_addr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    }
    let public_host = relay_config.public_url_host();
    relay_config.public_webtransport_url.get_or_insert_with(|| {
        let loopback = relay_config
            .public_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if args.relays > 1 && loopback {
            // An IP address carries no server name, so the gateway could reach only relay 0;
            // `relay-<n>.localhost` names the relay and resolves to loopback.
            format!(
                "https://relay-{{server_id}}.localhost:{}/",
                quic_addr.port()
            )
        } else {
            format!("https://{public_host}:{}/", quic_addr.port())
        }
    });
    relay_config.public_websocket_url.get_or_insert_with(|| {
        format!(
            "ws://{public_host}:{}/relay/{{server_id}}/ws",
            http_addr.port()
        )
    });
    // The gateway in this process reaches the relays over loopback: it names each
    // WebSocket's client in X-Forwarded-For, and its QUIC flows are one client each.
    if relay_config.limits.trusted_proxies.is_empty() {
        relay_config.limits.trusted_proxies = vec![
            std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST).into(),
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST).into(),
        ];
    }
    relay_config.control_plane_url = Some(api_url.clone());
    relay_config.control_plane_api_key = Some(format!("{RELAY_KEY_ID}:{relay_secret}"));
    // Several relays share meetings: over NATS if given, else over a bus in this process.
    let hub = (args.relays > 1 && relay_config.bus.nats_url.is_none())
        .then(videocall_relay::MemoryHub::new);
    let started_ms = videocall_control_plane::store::now_ms();
    let mut relays = Vec::new();
    for n in 0..args.relays {
        let config = nth_relay(&relay_config, n, data);
        let bus = hub
            .as_ref()
            .map(|hub| Arc::new(hub.connect()) as Arc<dyn videocall_relay::Bus>);
        let relay = videocall_relay::start_with_bus(config, TokenVerifier::new(), bus)
            .await
            .with_context(|| format!("starting relay {n}"))?;
        relays.push(relay);
    }
    let relay_infos: Vec<_> = relays.iter().map(|r| r.info.clone()).collect();
    let first = relay_infos[0].clone();

    let router = web::router(api, Arc::new(first.clone()));
    let shutdown = relays[0].state.shutdown.clone();
    tokio::spawn(async move {
        let stopped = shutdown.clone();
        if let Err(error) = axum::serve(videocall_control_plane::nodelay(listener), router)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
        {
            tracing::error!(%error, "web entry failed");
            shutdown.cancel();
        }
    });
    for relay in &relays {
        wait_for_registration(&control_plane, relay, started_ms).await;
    }

    // Relays named relay-<n>.localhost: browsers may resolve those names to ::1 (Chromium
    // does), so QUIC is taken there too, on the same port.
    let mut quic_sockets = vec![quic];
    if args.relays > 1 && quic_addr.ip() == std::net::Ipv4Addr::LOCALHOST {
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, quic_addr.port()));
        match std::net::UdpSocket::bind(v6) {
            Ok(socket) => quic_sockets.push(socket),
            Err(error) => {
                tracing::warn!(%error, "QUIC on {v6}: browsers that resolve *.localhost to ::1 cannot reach the relays")
            }
        }
    }
    let gateway = videocall_gateway::start_on_sockets(
        gateway_config(
            &relay_infos,
            api_addr,
            [quic_addr, http_addr, args.gateway_admin_addr],
        ),
        quic_sockets,
        http,
    )
    .await
    .context("starting the gateway")?;

    let info = PlatformInfo {
        http_url: format!("http://{http_addr}/"),
        api_url,
        gateway: gateway.info.clone(),
        control_plane_metrics_url: format!("http://{control_plane_metrics_addr}/metrics"),
        admin_user,
        admin_password_file: data.root().join("keys").join("admin-password"),
        demo_meeting: DEMO_MEETING.into(),
        meeting_url: format!("http://{http_addr}/meeting/guest/{DEMO_MEETING}"),
        relay: first,
        relays: relay_infos,
    };
    std::fs::write(
        data.root().join("platform.json"),
        serde_json::to_vec_pretty(&info)?,
    )?;
    print_banner(data, &info);

    let states: Vec<_> = relays.iter().map(|r| r.state.clone()).collect();
    tokio::spawn(async move {
        videocall_process::stop_signal().await;
        println!("stopping: draining the relays (Ctrl-C again to stop at once)");
        for state in &states {
            state.start_drain();
        }
        videocall_process::stop_signal().await;
        for state in &states {
            state.shutdown.cancel();
        }
    });
    // The platform stops when its first relay does; the others stop with it.
    let others: Vec<_> = relays.iter().skip(1).map(|r| r.state.clone()).collect();
    let mut relays = relays.into_iter();
    if let Some(first) = relays.next() {
        first.stopped().await;
    }
    for state in &others {
        state.shutdown.cancel();
    }
    for relay in relays {
        relay.stopped().await;
    }
    gateway.stop().await;
    control_plane.store.close().await;
    Ok(())
}

/// Relay `n` of `up`: relay 0 as configured, the others with ids, server ids, ports, ready
/// files and certificate directories of their own.
fn nth_relay(base: &RelayConfig, n: u16, data: &DataDir) -> RelayConfig {
    let mut config = base.clone();
    config
        .self_signed_names
        .push(format!("relay-{n}.localhost"));
    let any_port = |addr: SocketAddr| SocketAddr::new(addr.ip(), 0);
    if n == 0 {
        config.ready_file = Some(data.relay_info_path());
        if config.tls_cert.is_none() {
            config.self_signed_dir = Some(data.tls_dir());
        }
        return config;
    }
    config.relay_id = format!("relay-{n}");
    config.quic_server_id = Some(n);
    config.webtransport_addr = any_port(config.webtransport_addr);
    config.websocket_addr = any_port(config.websocket_addr);
    config.admin_addr = any_port(config.admin_addr);
    config.ready_file = Some(data.root().join(format!("relay-{n}.json")));
    if config.tls_cert.is_none() {
        config.self_signed_dir = Some(data.tls_dir().join(format!("relay-{n}")));
    }
    config
}

/// The gateway in front of the relays (server ids as the relays have them) and the control
/// plane; connections without a server name go to the first relay.
fn gateway_config(
    relays: &[videocall_relay::RelayInfo],
    api_addr: SocketAddr,
    [quic_addr, http_addr, admin_addr]: [SocketAddr; 3],
) -> videocall_gateway::GatewayConfig {
    videocall_gateway::GatewayConfig {
        quic_addr,
        http_addr,
        admin_addr,
        control_plane_addr: api_addr.to_string(),
        relays: relays
            .iter()
            .map(|relay| videocall_gateway::config::RelayBackend {
                server_id: relay.quic_server_id,
                quic: relay.webtransport_addr,
                websocket: relay.websocket_addr,
            })
            .collect(),
        default_relay: relays.first().map_or(0, |r| r.quic_server_id),
        ..videocall_gateway::GatewayConfig::defaults()
    }
}

/// A public meeting `demo` that admits guests, so a newcomer can join with no account;
/// end-to-end encrypted when `e2ee` says so (a demo meeting of an earlier run follows it).
async fn ensure_demo_meeting(
    control_plane: &videocall_control_plane::service::ControlPlane,
    owner: &str,
    e2ee: bool,
) -> anyhow::Result<()> {
    let store = &control_plane.store;
    if let Some(demo) = store.meeting(DEMO_MEETING).await? {
        if demo.e2ee_required != e2ee {
            let update = MeetingUpdate {
                e2ee_required: Some(e2ee),
                ..Default::default()
            };
            store.update_meeting(DEMO_MEETING, &update).await?;
        }
        return Ok(());
    }
    let created = store
        .create_meeting(
            &NewMeeting {
                id: DEMO_MEETING.into(),
                title: "Demo meeting".into(),
                owner: owner.into(),
                access: Access::Public,
                password_hash: None,
                guests_allowed: true,
                max_participants: control_plane.config.default_max_participants,
                e2ee_required: e2ee,
                allowed_users: Vec::new(),
                hosts: Vec::new(),
                waiting_room: Default::default(),
                locked: false,
            },
            videocall_control_plane::store::now_ms(),
        )
        .await;
    match created {
        Ok(_) | Err(videocall_control_plane::store::StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Joins are placed only on registered relays, and admitted only with the keys a relay takes
/// from the control plane: wait (briefly) until ours has registered in this run. A record left
/// by the previous run (same data directory) names the old certificate, and the relay may not
/// have its keys yet, so it does not count.
async fn wait_for_registration(
    control_plane: &videocall_control_plane::service::ControlPlane,
    relay: &videocall_relay::RelayHandle,
    started_ms: i64,
) {
    let relay_id = &relay.info.relay_id;
    for _ in 0..200 {
        let registered = matches!(
            control_plane.store.relay(relay_id).await,
            Ok(Some(record)) if record.last_heartbeat_ms >= started_ms
        );
        if registered && relay.state.verification_key_count() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(relay = %relay_id, "the relay has not registered with the control plane yet");
}

fn print_banner(data: &DataDir, info: &PlatformInfo) {
    let r = &info.relay;
    println!();
    println!("videocall is running (data in {})", data.root().display());
    println!(
        "  Open           {}   (any name in place of \"guest\")",
        info.meeting_url
    );
    println!("  API            {} (gRPC and grpc-web)", info.api_url);
    println!(
        "  Gateway        QUIC {}, HTTP {} (metrics http://{}/metrics)",
        info.gateway.quic_addr, info.gateway.http_addr, info.gateway.admin_addr
    );
    println!(
        "  Admin          {} (password in {})",
        info.admin_user,
        info.admin_password_file.display()
    );
    println!("  Demo meeting   {} (guests welcome)", info.demo_meeting);
    if info.relays.len() > 1 {
        println!(
            "  Relays         {} ({}), sharing meetings",
            info.relays.len(),
            info.relays
                .iter()
                .map(|r| r.relay_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("  WebTransport   {}", r.webtransport_url);
    println!(
        "  Certificate    sha256 {} (self-signed, 13 days)",
        r.certificate_sha256
    );
    println!("  WebSocket      {}", r.websocket_url);
    println!(
        "  Metrics        relay {}/metrics, control plane {}",
        r.admin_url, info.control_plane_metrics_url
    );
    println!();
    println!("Try a meeting from two terminals:");
    println!("  cargo run --release --bin videocall -- join --meeting demo --user alice --publish");
    println!("  cargo run --release --bin videocall -- join --meeting demo --user bob --transport websocket");
    println!();
}
