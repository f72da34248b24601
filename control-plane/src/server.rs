//! Serving the API: gRPC (HTTP/2) and grpc-web (HTTP/1.1, CORS) on one port, with
//! `grpc.health.v1` and server reflection.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_layer::Layer;
use videocall_control_api::v1::auth_service_server::AuthServiceServer;
use videocall_control_api::v1::host_service_server::HostServiceServer;
use videocall_control_api::v1::meeting_service_server::MeetingServiceServer;
use videocall_control_api::v1::relay_service_server::RelayServiceServer;

use crate::bootstrap;
use crate::config::ControlPlaneConfig;
use crate::metrics::{Metrics, RelayStates, RpcMetricsLayer};
use crate::service::auth::AuthApi;
use crate::service::hosts::HostApi;
use crate::service::meetings::MeetingApi;
use crate::service::relays::RelayApi;
use crate::service::ControlPlane;
use crate::store::{redact, Store};

/// Why the control plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database {url}: {source}")]
    Store {
        /// Where (password redacted).
        url: String,
        /// Why.
        source: crate::store::StoreError,
    },
    /// Signing keys could not be loaded.
    #[error("signing keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    /// Provisioning failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The OpenID Connect settings are incomplete.
    #[error("OpenID Connect: {0}")]
    OidcConfig(#[from] crate::config::OidcConfigError),
    /// The OpenID Connect provider could not be set up.
    #[error("OpenID Connect: {0}")]
    Oidc(#[from] crate::oidc::SignInError),
    /// Reflection could not be set up.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the database, provisions what the configuration asks for, loads keys.
pub async fn open(config: ControlPlaneConfig) -> Result<Arc<ControlPlane>, StartError> {
    let store = Store::connect(&config.database_url, config.database_max_connections)
        .await
        .map_err(|source| StartError::Store {
            url: redact(&config.database_url),
            source,
        })?;
    if let Some(password) = &config.bootstrap_admin_password {
        if bootstrap::admin_if_no_users(&store, &config.bootstrap_admin_user, password).await? {
            tracing::info!(user = %config.bootstrap_admin_user, "created the initial admin");
        }
    }
    for spec in &config.bootstrap_api_keys {
        bootstrap::api_key(&store, spec).await?;
    }
    let metrics = Metrics::new()?;
    let oidc = match config.oidc_settings()? {
        Some(settings) => {
            tracing::info!(issuer = %settings.issuer, redirect = %settings.redirect_url, "sign-in through OpenID Connect is on");
            Some(crate::oidc::OidcProvider::new(settings)?)
        }
        None => None,
    };
    Ok(ControlPlane::new(store, config, metrics, oidc).await?)
}

/// The API as an axum router (gRPC + grpc-web + CORS + health + reflection), to serve on
/// its own or merge into another router (the one-machine platform does).
pub async fn router(control_plane: Arc<ControlPlane>) -> Result<axum::Router, StartError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthServiceServer<AuthApi>>().await;
    health
        .set_serving::<MeetingServiceServer<MeetingApi>>()
        .await;
    health.set_serving::<RelayServiceServer<RelayApi>>().await;
    health.set_serving::<HostServiceServer<HostApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(videocall_control_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(videocall_control_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let web = GrpcWebLayer::new();
    // Counted inside grpc-web: both kinds of call are seen as gRPC.
    let counted = RpcMetricsLayer(control_plane.metrics.clone());
    let routes = Routes::new(
        web.layer(counted.layer(AuthServiceServer::new(AuthApi(control_plane.clone())))),
    )
    .add_service(
        web.layer(counted.layer(MeetingServiceServer::new(MeetingApi(control_plane.clone())))),
    )
    .add_service(web.layer(counted.layer(RelayServiceServer::new(RelayApi(control_plane.clone())))))
    .add_service(web.layer(counted.layer(HostServiceServer::new(HostApi(control_plane.clone())))))
    .add_service(web.layer(health_service))
    .add_service(reflection)
    .add_service(reflection_alpha);
    Ok(routes
        .prepare()
        .into_axum_router()
        .layer(cors(&control_plane.config.cors_origins))
        .merge(crate::web::routes(control_plane.config.web_dir.clone()))
        .merge(crate::sign_in::routes(control_plane.clone()))
        .fallback(crate::web::not_found))
}

/// `/metrics` (Prometheus text, the database pools read at each scrape) and `/healthz`.
pub fn metrics_router(control_plane: Arc<ControlPlane>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let control_plane = control_plane.clone();
                async move {
                    for (pool, size, idle, max) in control_plane.store.pool_stats() {
                        control_plane.metrics.db_pool(pool, size, idle, max);
                    }
                    match control_plane.store.relays().await {
                        Ok(relays) => control_plane
                            .metrics
                            .relay_states(RelayStates::of(&relays, control_plane.fresh_since_ms())),
                        Err(error) => tracing::warn!(%error, "metrics: reading the relays"),
                    }
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        control_plane.metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
}

/// Answers leave at once instead of waiting on Nagle's algorithm (which, with delayed
/// ACKs, adds 40 ms to some HTTP/2 exchanges).
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    })
}

/// A running control plane.
pub struct ControlPlaneServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state.
    pub control_plane: Arc<ControlPlane>,
    /// Cancel to stop.
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ControlPlaneServer {
    /// Opens, binds and serves `config`.
    pub async fn start(config: ControlPlaneConfig) -> Result<Self, StartError> {
        let addr = config.grpc_addr;
        let control_plane = open(config).await?;
        let router = router(control_plane.clone()).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let metrics_addr = match control_plane.config.metrics_addr {
            Some(wanted) => {
                let listener = tokio::net::TcpListener::bind(wanted)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: wanted,
                        source,
                    })?;
                let bound = listener.local_addr().map_err(|source| StartError::Bind {
                    addr: wanted,
                    source,
                })?;
                let routes = metrics_router(control_plane.clone());
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, routes)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                    {
                        tracing::error!(%error, "metrics server failed");
                    }
                });
                Some(bound)
            }
            None => None,
        };
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(nodelay(listener), router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            {
                tracing::error!(%error, "control-plane server failed");
            }
        });
        tracing::info!(%addr, ?metrics_addr, database = ?control_plane.store.backend(), "control plane serving");
        Ok(ControlPlaneServer {
            addr,
            metrics_addr,
            control_plane,
            shutdown,
            task,
        })
    }

    /// Stops serving and waits for in-flight calls.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        self.control_plane.store.close().await;
    }
}
