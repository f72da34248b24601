//! Development token issuer: hands out join tokens to anyone on this machine, so a
//! meeting can be tried with no account. The control plane replaces it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use videocall_protocol::ids::{validate_meeting_id, validate_user};
use videocall_relay::RelayInfo;
use videocall_token::{Claims, Grants, TokenIssuer};

/// Longest token lifetime handed out.
const MAX_TTL_SECS: u64 = 24 * 3600;

#[derive(Clone)]
struct IssuerState {
    issuer: Arc<TokenIssuer>,
    relay: Arc<RelayInfo>,
}

/// Routes: `/` (what runs here), `/relay`, `/dev/token`.
pub fn router(issuer: Arc<TokenIssuer>, relay: Arc<RelayInfo>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/relay", get(relay_info))
        .route("/dev/token", get(token))
        .with_state(IssuerState { issuer, relay })
}

/// Query of `/dev/token`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    meeting: String,
    user: String,
    name: Option<String>,
    publish: Option<bool>,
    subscribe: Option<bool>,
    ttl_secs: Option<u64>,
}

/// Answer of `/dev/token`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The join token.
    pub token: String,
    /// Meeting it admits to.
    pub meeting_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Where to connect.
    pub relay: RelayInfo,
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn token(
    State(state): State<IssuerState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return bad_request(format!(
                "expected ?meeting=<id>&user=<name>: {}",
                rejection.body_text()
            ))
        }
    };
    if let Err(message) = validate_meeting_id(&query.meeting).and(validate_user(&query.user)) {
        return bad_request(message);
    }
    let name = query.name.unwrap_or_else(|| query.user.clone());
    if name.chars().count() > 128 {
        return bad_request("name must be at most 128 characters".into());
    }
    let grants = Grants {
        publish: query.publish.unwrap_or(true),
        subscribe: query.subscribe.unwrap_or(true),
        admin: false,
    };
    let ttl = Duration::from_secs(query.ttl_secs.unwrap_or(3600).clamp(1, MAX_TTL_SECS));
    let claims = Claims::new(&query.user, &name, &query.meeting, grants, ttl);
    match state.issuer.issue(&claims) {
        Ok(token) => Json(TokenGrant {
            token,
            meeting_id: query.meeting,
            expires_at: claims.exp,
            relay: RelayInfo::clone(&state.relay),
        })
        .into_response(),
        Err(error) => {
            tracing::error!(%error, "signing a development token failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not sign the token",
            )
                .into_response()
        }
    }
}

async fn relay_info(State(state): State<IssuerState>) -> Json<RelayInfo> {
    Json(RelayInfo::clone(&state.relay))
}

async fn index(State(state): State<IssuerState>) -> Html<String> {
    let r = &state.relay;
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>videocall</title></head>
<body>
<h1>videocall is running</h1>
<p>The browser client arrives with the web issue; until then, join from a terminal:
<code>cargo run --release --bin videocall -- join --meeting demo --user alice</code></p>
<ul>
<li>WebTransport: <code>{wt}</code> (certificate SHA-256 <code>{hash}</code>)</li>
<li>WebSocket: <code>{ws}</code></li>
<li>Join token: <a href="/dev/token?meeting=demo&amp;user=alice">/dev/token?meeting=demo&amp;user=alice</a></li>
<li>Relay information: <a href="/relay">/relay</a></li>
</ul>
</body></html>"#,
        wt = r.webtransport_url,
        hash = r.certificate_sha256,
        ws = r.websocket_url,
    ))
}
