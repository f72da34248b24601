//! Starting and stopping a gateway.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use videocall_quic_lb::ServerId;

use crate::backends::Backends;
use crate::config::GatewayConfig;
use crate::http::{public_router, HttpState};
use crate::metrics::Metrics;
use crate::router::{Router, RouterConfig};
use crate::udp::{self, FlowLimits};

/// What a running gateway is bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// Public QUIC (UDP) address.
    pub quic_addr: SocketAddr,
    /// Public HTTP address.
    pub http_addr: SocketAddr,
    /// Admin HTTP address.
    pub admin_addr: SocketAddr,
    /// Process id.
    pub pid: u32,
    /// The public QUIC socket's receive buffer, as the kernel reports it (Linux: twice what it
    /// granted of `--udp-buffer-bytes`).
    #[serde(default)]
    pub quic_recv_buffer_bytes: usize,
}

/// Why a gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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
    /// The ready file could not be written.
    #[error("ready file: {0}")]
    ReadyFile(std::io::Error),
}

/// A running gateway.
pub struct GatewayHandle {
    /// Bound addresses.
    pub info: GatewayInfo,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl GatewayHandle {
    /// Stops every listener and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts a gateway; returns once every listener is bound.
pub async fn start(config: GatewayConfig) -> Result<GatewayHandle, StartError> {
    let quic = std::net::UdpSocket::bind(config.quic_addr).map_err(|source| StartError::Bind {
        what: "QUIC",
        addr: config.quic_addr,
        source,
    })?;
    let http =
        std::net::TcpListener::bind(config.http_addr).map_err(|source| StartError::Bind {
            what: "HTTP",
            addr: config.http_addr,
            source,
        })?;
    start_on(config, quic, http).await
}

/// Starts a gateway on sockets the caller bound (so it can advertise their ports first);
/// `config.quic_addr` and `config.http_addr` are not bound again.
pub async fn start_on(
    config: GatewayConfig,
    quic: std::net::UdpSocket,
    http: std::net::TcpListener,
) -> Result<GatewayHandle, StartError> {
    start_on_sockets(config, vec![quic], http).await
}

/// As [`start_on`], taking QUIC on every socket of `quic` (the first is the one reported),
/// e.g. on `127.0.0.1` and `[::1]` for browsers that resolve `*.localhost` to either.
pub async fn start_on_sockets(
    config: GatewayConfig,
    quic: Vec<std::net::UdpSocket>,
    http: std::net::TcpListener,
) -> Result<GatewayHandle, StartError> {
    let bind_error = |what, addr| move |source| StartError::Bind { what, addr, source };
    let mut quic_sockets = Vec::with_capacity(quic.len());
    let mut quic_recv_buffer_bytes = 0;
    for socket in quic {
        let addr = socket
            .local_addr()
            .map_err(bind_error("QUIC", config.quic_addr))?;
        socket
            .set_nonblocking(true)
            .map_err(bind_error("QUIC", addr))?;
        let (recv_buffer_bytes, _) =
            videocall_udp_socket::set_buffers(&socket, config.udp_buffer_bytes)
                .map_err(bind_error("QUIC", addr))?;
        if quic_sockets.is_empty() {
            quic_recv_buffer_bytes = recv_buffer_bytes;
        }
        quic_sockets.push((
            addr,
            UdpSocket::from_std(socket).map_err(bind_error("QUIC", addr))?,
        ));
    }
    let quic_addr =
        quic_sockets
            .first()
            .map(|(addr, _)| *addr)
            .ok_or_else(|| StartError::Bind {
                what: "QUIC",
                addr: config.quic_addr,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no QUIC socket"),
            })?;
    let http_addr = http
        .local_addr()
        .map_err(bind_error("HTTP", config.http_addr))?;
    http.set_nonblocking(true)
        .map_err(bind_error("HTTP", http_addr))?;
    let http = TcpListener::from_std(http).map_err(bind_error("HTTP", http_addr))?;
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .map_err(bind_error("admin", config.admin_addr))?;
    let admin_addr = admin
        .local_addr()
        .map_err(bind_error("admin", config.admin_addr))?;

    let metrics = Metrics::new()?;
    let backends = Arc::new(Backends::new(&config));
    let shutdown = CancellationToken::new();
    let limits = FlowLimits {
        idle_timeout: config.flow_idle_timeout(),
        max_flows: config.max_flows,
        queue: config.flow_queue,
        udp_buffer_bytes: config.udp_buffer_bytes,
    };
    let mut tasks = JoinSet::new();
    // A client's datagrams always arrive on one socket: each has a router of its own.
    for (_, quic) in quic_sockets {
        let router = Router::new(RouterConfig {
            sni_prefix: config.sni_prefix.clone(),
            default_server: ServerId(config.default_relay),
            ..RouterConfig::default()
        });
        tasks.spawn(udp::serve(
            Arc::new(quic),
            router,
            backends.clone(),
            limits.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let public = public_router(HttpState {
        backends,
        control_plane: config.control_plane_addr.as_str().into(),
        metrics: metrics.clone(),
    });
    tasks.spawn(serve_http(http, public, shutdown.clone()));
    let admin_metrics = metrics.clone();
    let admin_router = axum::Router::new()
        .route(
            "/metrics",
            get(move || async move { admin_metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }));
    tasks.spawn(serve_http(admin, admin_router, shutdown.clone()));

    let info = GatewayInfo {
        quic_addr,
        http_addr,
        admin_addr,
        pid: std::process::id(),
        quic_recv_buffer_bytes,
    };
    if let Some(path) = &config.ready_file {
        write_ready_file(path, &info).map_err(StartError::ReadyFile)?;
    }
    tracing::info!(
        quic = %quic_addr,
        http = %http_addr,
        admin = %admin_addr,
        quic_recv_buffer_bytes,
        "gateway serving"
    );
    Ok(GatewayHandle {
        info,
        shutdown,
        tasks,
    })
}

async fn serve_http(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
}

fn write_ready_file(path: &Path, info: &GatewayInfo) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, json)?;
    std::fs::rename(partial, path)
}
