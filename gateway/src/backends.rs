//! Where relay `n` is: an address given on the command line, or a host name from a
//! template (a StatefulSet pod) resolved when a flow or a WebSocket starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use videocall_quic_lb::ServerId;

use crate::config::{GatewayConfig, RelayBackend};

/// Why a relay's address is unknown.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No static entry and no template.
    #[error("no relay {0} is configured")]
    Unknown(ServerId),
    /// The templated host name did not resolve.
    #[error("relay {server} ({host}) did not resolve: {reason}")]
    Resolve {
        /// Which relay.
        server: ServerId,
        /// The host name tried.
        host: String,
        /// Why.
        reason: String,
    },
}

/// Which listener of a relay.
#[derive(Debug, Clone, Copy)]
pub enum Listener {
    /// QUIC / WebTransport (UDP).
    Quic,
    /// WebSocket (TCP).
    WebSocket,
}

/// The relays a gateway routes to.
#[derive(Debug, Clone)]
pub struct Backends {
    fixed: BTreeMap<u16, RelayBackend>,
    host_template: Option<String>,
    quic_port: u16,
    websocket_port: u16,
}

impl Backends {
    /// From the gateway's configuration.
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            fixed: config.static_relays(),
            host_template: config.relay_host_template.clone(),
            quic_port: config.relay_quic_port,
            websocket_port: config.relay_websocket_port,
        }
    }

    /// The address of `server`'s `listener`.
    pub async fn resolve(
        &self,
        server: ServerId,
        listener: Listener,
    ) -> Result<SocketAddr, BackendError> {
        if let Some(relay) = self.fixed.get(&server.0) {
            return Ok(match listener {
                Listener::Quic => relay.quic,
                Listener::WebSocket => relay.websocket,
            });
        }
        let template = self
            .host_template
            .as_ref()
            .ok_or(BackendError::Unknown(server))?;
        let host = template.replace("{server_id}", &server.to_string());
        let port = match listener {
            Listener::Quic => self.quic_port,
            Listener::WebSocket => self.websocket_port,
        };
        let resolve_error = |reason: String| BackendError::Resolve {
            server,
            host: host.clone(),
            reason,
        };
        let mut addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| resolve_error(e.to_string()))?;
        addrs
            .next()
            .ok_or_else(|| resolve_error("no address".into()))
    }
}
