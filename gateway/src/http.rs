//! The HTTP side: WebSocket to relays by path, everything else to the control plane.
//!
//! `/relay/<server id>/<rest>` is proxied to that relay's WebSocket listener as `/<rest>`
//! (an upgrade is passed through and then spliced byte for byte, [`crate::splice`]); any other path goes to the
//! control plane, which serves the web client and grpc-web.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use videocall_quic_lb::ServerId;

use crate::backends::{Backends, Listener};
use crate::metrics::Metrics;
use crate::splice::splice;

/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// Relay addresses.
    pub backends: Arc<Backends>,
    /// Control plane `host:port`.
    pub control_plane: Arc<str>,
    /// Metrics.
    pub metrics: Metrics,
}

/// The public router.
pub fn public_router(state: HttpState) -> axum::Router {
    axum::Router::new().fallback(proxy).with_state(state)
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Upstream {
    Relay(ServerId, String),
    ControlPlane,
}

fn upstream_of(uri: &Uri) -> Result<Upstream, &'static str> {
    let Some(rest) = uri.path().strip_prefix("/relay/") else {
        return Ok(Upstream::ControlPlane);
    };
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let id: u16 = id.parse().map_err(|_| "relay id must be a number")?;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(Upstream::Relay(ServerId(id), format!("/{path}{query}")))
}

async fn proxy(
    State(state): State<HttpState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (target, path, label) = match upstream_of(request.uri()) {
        Ok(Upstream::ControlPlane) => {
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into());
            (state.control_plane.to_string(), path, "control_plane")
        }
        Ok(Upstream::Relay(server, path)) => {
            match state.backends.resolve(server, Listener::WebSocket).await {
                Ok(addr) => (addr.to_string(), path, "relay"),
                Err(error) => {
                    tracing::info!(%client, %error, "request for an unknown relay");
                    state.metrics.http("relay", "unknown_relay");
                    return (StatusCode::NOT_FOUND, error.to_string()).into_response();
                }
            }
        }
        Err(why) => {
            state.metrics.http("relay", "bad_path");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    match forward(request, &target, &path, client, &state.metrics).await {
        Ok(response) => {
            state.metrics.http(label, "ok");
            response
        }
        Err(error) => {
            tracing::warn!(%client, upstream = %target, %error, "upstream failed");
            state.metrics.http(label, "upstream_error");
            (
                StatusCode::BAD_GATEWAY,
                format!("upstream unavailable: {error}"),
            )
                .into_response()
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not pass on.
const HOP_BY_HOP: [&str; 7] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

async fn forward(
    mut request: Request,
    target: &str,
    path: &str,
    client: SocketAddr,
    metrics: &Metrics,
) -> Result<Response, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended");
        }
    });

    let upgrading = request.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
    *request.uri_mut() = path
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?;
    let headers = request.headers_mut();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if !upgrading {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    if let Ok(value) = HeaderValue::from_str(&client.ip().to_string()) {
        headers.append(HeaderName::from_static("x-forwarded-for"), value);
    }
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err("upstream switched protocols unasked".into());
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let (client_side, upstream_side) = match tokio::join!(client_upgrade, upstream_upgrade)
            {
                (Ok(c), Ok(u)) => (c, u),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::debug!(%error, "upgrade failed");
                    return;
                }
            };
            metrics.websockets.inc();
            let spliced = splice(TokioIo::new(client_side), TokioIo::new(upstream_side)).await;
            tracing::debug!(?spliced, "proxied WebSocket ended");
            metrics.websockets.dec();
        });
    }
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_their_upstream() {
        let uri: Uri = "/relay/3/ws?x=1".parse().unwrap();
        assert_eq!(
            upstream_of(&uri),
            Ok(Upstream::Relay(ServerId(3), "/ws?x=1".into()))
        );
        let uri: Uri = "/relay/12".parse().unwrap();
        assert_eq!(
            upstream_of(&uri),
            Ok(Upstream::Relay(ServerId(12), "/".into()))
        );
        let uri: Uri = "/meeting/ana/demo".parse().unwrap();
        assert_eq!(upstream_of(&uri), Ok(Upstream::ControlPlane));
        let uri: Uri = "/relay/x/ws".parse().unwrap();
        assert!(upstream_of(&uri).is_err());
        let uri: Uri = "/relay/99999/ws".parse().unwrap();
        assert!(upstream_of(&uri).is_err());
    }
}
