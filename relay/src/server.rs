//! Starting and stopping a relay: TLS identity, listeners, the control-plane link, and the
//! drain lifecycle.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use wtransport::{Endpoint, Identity, ServerConfig};

use crate::config::RelayConfig;
use crate::control_plane::{ControlPlaneLink, LinkError};
use crate::core::{Mesh, NoMesh, Now, Relay};
use crate::http::{admin_router, public_router, HttpState};
use crate::info::RelayInfo;
use crate::mesh::BusMesh;
use crate::metrics::Metrics;
use crate::reason::CloseReason;
use crate::state::RelayState;
use crate::transport::cid::RoutableCidGenerator;
use videocall_bus::{Bus, BusError, NatsBus};
use videocall_protocol::wire::{ErrorCode, LeaveReason};
use videocall_token::TokenVerifier;

/// Largest message this relay sends over the bus: a frame at the largest frame size, with
/// room for its header. Larger than NATS's `max_payload`, it goes in chunks.
const BUS_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Self-signed certificates last 13 days: browsers accept `serverCertificateHashes`
/// only for certificates valid at most 14 days.
const SELF_SIGNED_VALIDITY_DAYS: u32 = 13;
/// Unacknowledged bytes quinn may buffer per connection.
const QUIC_SEND_WINDOW: u64 = 4 * 1024 * 1024;
/// The most a subscriber's QUIC is asked to delay an ACK (quinn caps it at 25 ms or the RTT).
const QUIC_MAX_ACK_DELAY: Duration = Duration::from_millis(25);
/// After the drain deadline, how long sessions get to close before the relay stops.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// Why a relay did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A token key could not be parsed.
    #[error("token key: {0}")]
    TokenKey(#[from] videocall_token::TokenError),
    /// The TLS identity could not be made or loaded.
    #[error("TLS identity: {0}")]
    Identity(String),
    /// A socket could not be bound.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The control-plane settings are unusable.
    #[error(transparent)]
    ControlPlane(#[from] LinkError),
    /// The bus (NATS) could not be reached.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// The ready file could not be written.
    #[error("ready file: {0}")]
    ReadyFile(std::io::Error),
}

/// A running relay.
pub struct RelayHandle {
    /// Shared state (meetings, metrics, drain).
    pub state: Arc<RelayState>,
    /// What the relay advertises.
    pub info: RelayInfo,
    tasks: JoinSet<()>,
}

/// Starts a relay with `config`; returns once every listener is bound.
pub async fn start(config: RelayConfig) -> Result<RelayHandle, StartError> {
    let mut verifier = TokenVerifier::new();
    for spec in &config.token_keys {
        verifier.add_key_spec(spec)?;
    }
    start_with_verifier(config, verifier).await
}

/// Starts a relay that trusts the keys of `verifier` (an embedding process may own them).
/// It shares meetings over NATS when `--nats-url` is set.
pub async fn start_with_verifier(
    config: RelayConfig,
    verifier: TokenVerifier,
) -> Result<RelayHandle, StartError> {
    start_with_bus(config, verifier, None).await
}

/// Starts a relay that shares its meetings over `bus` (an embedding process running
/// several relays hands them one in-process bus); with `None`, over NATS when `--nats-url`
/// is set, else with no other relays.
pub async fn start_with_bus(
    config: RelayConfig,
    verifier: TokenVerifier,
    bus: Option<Arc<dyn Bus>>,
) -> Result<RelayHandle, StartError> {
    let bus = match bus {
        Some(bus) => Some(bus),
        None => match config.bus.nats_options(&config.relay_id, BUS_MAX_MESSAGE) {
            Some(options) => Some(Arc::new(NatsBus::connect(options).await?) as Arc<dyn Bus>),
            None => None,
        },
    };
    if verifier.key_count() == 0 && config.control_plane_url.is_none() {
        tracing::warn!("no token keys configured: every join will be refused");
    }
    let (identity, self_signed) = load_identity(&config).await?;
    let certificate_sha256 = identity
        .certificate_chain()
        .as_slice()
        .first()
        .map(|cert| hex::encode(AsRef::<[u8; 32]>::as_ref(&cert.hash())))
        .unwrap_or_default();

    let mut transport = wtransport::quinn::TransportConfig::default();
    transport
        .max_concurrent_uni_streams(wtransport::quinn::VarInt::from_u32(1024))
        .max_idle_timeout(Some(
            wtransport::quinn::IdleTimeout::try_from(config.timing.peer_timeout())
                .map_err(|e| StartError::Identity(e.to_string()))?,
        ))
        .keep_alive_interval(Some(config.timing.heartbeat_interval()))
        // Bytes quinn buffers per connection: with the queue budget, this bounds the memory
        // a subscriber that stopped reading can pin.
        .send_window(QUIC_SEND_WINDOW);
    if config.limits.quic_ack_threshold != 1 {
        let mut ack_frequency = wtransport::quinn::AckFrequencyConfig::default();
        ack_frequency
            .ack_eliciting_threshold(wtransport::quinn::VarInt::from_u32(
                config.limits.quic_ack_threshold,
            ))
            .max_ack_delay(Some(QUIC_MAX_ACK_DELAY));
        transport.ack_frequency_config(Some(ack_frequency));
    }
    let server_id = config.server_id();
    let bind_error = |source| StartError::Bind {
        what: "WebTransport",
        addr: config.webtransport_addr,
        source,
    };
    let udp = videocall_udp_socket::bind(config.webtransport_addr, config.limits.udp_buffer_bytes)
        .map_err(bind_error)?;
    let mut wt_config = ServerConfig::builder()
        .with_bind_socket(udp.socket)
        .with_custom_transport(identity, transport)
        .build();
    wt_config
        .quic_endpoint_config_mut()
        .cid_generator(move || Box::new(RoutableCidGenerator::new(server_id)));
    let endpoint = Endpoint::server(wt_config).map_err(bind_error)?;
    let webtransport_addr = endpoint.local_addr().map_err(bind_error)?;
    let offload = crate::udp_offload::probe(webtransport_addr);
    let ws_listener = bind_tcp("WebSocket", config.websocket_addr).await?;
    let websocket_addr = local_addr("WebSocket", &ws_listener, config.websocket_addr)?;
    let admin_listener = bind_tcp("admin", config.admin_addr).await?;
    let admin_addr = local_addr("admin", &admin_listener, config.admin_addr)?;

    let url_host = config.public_url_host();
    let advertised = |template: &Option<String>, default: String| match template {
        Some(url) => url.replace("{server_id}", &server_id.to_string()),
        None => default,
    };
    let info = RelayInfo {
        relay_id: config.relay_id.clone(),
        quic_server_id: server_id,
        webtransport_url: advertised(
            &config.public_webtransport_url,
            format!("https://{url_host}:{}/", webtransport_addr.port()),
        ),
        websocket_url: advertised(
            &config.public_websocket_url,
            format!("ws://{url_host}:{}/ws", websocket_addr.port()),
        ),
        admin_url: format!("http://{admin_addr}"),
        webtransport_addr,
        websocket_addr,
        admin_addr,
        certificate_sha256,
        self_signed,
        protocol_version: videocall_protocol::PROTOCOL_VERSION,
        max_frame_size: config.limits.max_frame_size,
        draining: false,
        meetings: 0,
        pid: std::process::id(),
        udp_gso_segments: offload.gso_segments,
        udp_gro_segments: offload.gro_segments,
        udp_recv_buffer_bytes: udp.recv_buffer_bytes,
        udp_send_buffer_bytes: udp.send_buffer_bytes,
    };
    let ready_file = config.ready_file.clone();
    let metrics = Metrics::new(&config.relay_id)?;
    let (mesh, queues): (Arc<dyn Mesh>, _) = match &bus {
        Some(_) => {
            let (mesh, queues) = BusMesh::new(
                &config.relay_id,
                &config.bus.bus_subject_prefix,
                config.bus.bus_event_queue,
                config.bus.bus_media_queue,
                metrics.bus.clone(),
            );
            (Arc::new(mesh), Some(queues))
        }
        None => (Arc::new(NoMesh), None),
    };
    let prefix = config.bus.bus_subject_prefix.clone();
    let state = Arc::new(RelayState::new(Relay::new(
        config,
        verifier,
        metrics,
        mesh,
        Now::system(),
    )));
    let http = HttpState {
        relay: state.clone(),
        info: Arc::new(info.clone()),
    };

    let mut tasks = JoinSet::new();
    tasks.spawn(crate::transport::webtransport::serve(
        state.clone(),
        endpoint,
    ));
    tasks.spawn(serve_http(
        ws_listener,
        public_router(http.clone()),
        state.clone(),
    ));
    tasks.spawn(serve_http(
        admin_listener,
        admin_router(http),
        state.clone(),
    ));
    tasks.spawn(drain_lifecycle(state.clone()));
    if let (Some(bus), Some(queues)) = (bus, queues) {
        crate::mesh::spawn(&mut tasks, state.clone(), bus, queues, prefix);
    }
    if let (Some(url), Some(key)) = (
        &state.config().control_plane_url,
        &state.config().control_plane_api_key,
    ) {
        let link = ControlPlaneLink::new(url, key, state.clone(), info.clone())?;
        tasks.spawn(link.run());
    }

    if let Some(path) = ready_file {
        write_ready_file(&path, &info).map_err(StartError::ReadyFile)?;
    }
    tracing::info!(
        relay = %info.relay_id,
        webtransport = %info.webtransport_url,
        websocket = %info.websocket_url,
        admin = %info.admin_url,
        certificate_sha256 = %info.certificate_sha256,
        udp_gso_segments = info.udp_gso_segments,
        udp_gro_segments = info.udp_gro_segments,
        udp_recv_buffer_bytes = info.udp_recv_buffer_bytes,
        "relay serving"
    );
    Ok(RelayHandle { state, info, tasks })
}

impl RelayHandle {
    /// Starts a drain (as SIGTERM does).
    pub fn drain(&self) -> bool {
        self.state.start_drain()
    }

    /// Stops at once: every session is closed.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
    }

    /// Waits until the relay has stopped (after a drain or a shutdown).
    pub async fn stopped(mut self) {
        self.state.shutdown.cancelled().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

async fn load_identity(config: &RelayConfig) -> Result<(Identity, bool), StartError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Identity::load_pemfiles(cert, key)
            .await
            .map(|identity| (identity, false))
            .map_err(|e| StartError::Identity(format!("loading {}: {e}", cert.display()))),
        _ => {
            let identity = Identity::self_signed_builder()
                .subject_alt_names(config.self_signed_names.iter().map(String::as_str))
                .from_now_utc()
                .validity_days(SELF_SIGNED_VALIDITY_DAYS)
                .build()
                .map_err(|e| StartError::Identity(e.to_string()))?;
            if let Some(dir) = &config.self_signed_dir {
                store_identity(&identity, dir).await.map_err(|e| {
                    StartError::Identity(format!("storing in {}: {e}", dir.display()))
                })?;
            }
            Ok((identity, true))
        }
    }
}

async fn store_identity(identity: &Identity, dir: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    identity
        .certificate_chain()
        .store_pemfile(dir.join("relay-cert.pem"))
        .await?;
    let key = dir.join("relay-key.pem");
    identity.private_key().store_secret_pemfile(&key).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).await?;
    }
    Ok(())
}

async fn bind_tcp(
    what: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    listener: &tokio::net::TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Unsent bytes a WebSocket connection's kernel buffer takes before writes wait.
#[cfg(target_os = "linux")]
const NOTSENT_LOWAT: u32 = 16 * 1024;

async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    state: Arc<RelayState>,
) {
    use axum::serve::ListenerExt;
    let shutdown = state.shutdown.clone();
    // Small media frames must leave at once, not wait for Nagle's algorithm to batch them.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        // Little unsent data in the kernel: what a slow link cannot take waits in the
        // relay's queues, where bandwidth estimation sees it and video can be dropped
        // instead of delayed.
        #[cfg(target_os = "linux")]
        if let Err(error) = socket2::SockRef::from(&*tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
            tracing::debug!(%error, "could not set TCP_NOTSENT_LOWAT");
        }
    });
    // The peer's address reaches the handlers (the per-address limits).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
}

/// After a drain starts: wait for meetings to empty (or the deadline), then stop.
async fn drain_lifecycle(state: Arc<RelayState>) {
    tokio::select! {
        _ = state.shutdown.cancelled() => return,
        _ = state.drain.cancelled() => {}
    }
    let deadline = tokio::time::Instant::now() + state.config().timing.drain_timeout();
    while state.meeting_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = state.meeting_count();
    if left > 0 {
        tracing::warn!(
            meetings = left,
            "drain deadline reached: closing remaining sessions"
        );
        state.core.close_everyone(&CloseReason::error(
            LeaveReason::Disconnected,
            ErrorCode::Draining,
            "relay drained: reconnect through another relay",
        ));
        let grace = tokio::time::Instant::now() + DRAIN_GRACE;
        while state.meeting_count() > 0 && tokio::time::Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tracing::info!("drain complete: stopping");
    state.shutdown.cancel();
}

fn write_ready_file(path: &Path, info: &RelayInfo) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
    // Written whole then renamed, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, path)
}
