//! The platform's one HTTP entry: the control-plane API (gRPC and grpc-web) and a page
//! that says what runs here, on one origin.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use videocall_relay::RelayInfo;

/// Routes: `/` (what runs here), `/relay` (the relay's information), merged with `api`.
pub fn router(api: Router, relay: Arc<RelayInfo>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/relay", get(relay_info))
        .with_state(relay)
        .merge(api)
}

async fn relay_info(State(relay): State<Arc<RelayInfo>>) -> Json<RelayInfo> {
    Json((*relay).clone())
}

async fn index(State(relay): State<Arc<RelayInfo>>) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>videocall</title></head>\
         <body><h1>videocall is running</h1>\
         <p>The control-plane API (gRPC and grpc-web) is served here. Meeting <code>demo</code> admits guests.</p>\
         <ul><li>WebTransport: <code>{}</code> (certificate sha256 <code>{}</code>)</li>\
         <li>WebSocket: <code>{}</code></li></ul>\
         <p>Join from a terminal: <code>cargo run --release --bin videocall -- join --meeting demo --user alice --publish</code></p>\
         </body></html>",
        relay.webtransport_url, relay.certificate_sha256, relay.websocket_url
    ))
}
