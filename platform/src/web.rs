//! The platform's one HTTP entry: the control-plane API (gRPC and grpc-web), the browser
//! client at `/meeting/<username>/<meeting-id>` with its assets, and a page that says what runs
//! here, all on one origin (so the page calls the API without CORS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use videocall_relay::RelayInfo;

/// Where the built browser client is looked for when `--web-dir` is not given.
pub fn default_web_dir() -> Option<PathBuf> {
    [
        PathBuf::from("web/dist"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist"),
    ]
    .into_iter()
    .find(|dir| dir.join("index.html").is_file())
}

/// Routes: `/` (what runs here) and `/relay` (the relay's information), merged with `api`
/// (which serves the browser client too, from the control plane's `--web-dir`).
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
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>videocall</title><link rel=\"icon\" href=\"data:,\"></head>\
         <body><h1>videocall is running</h1>\
         <p>Join the demo meeting: <a href=\"/meeting/guest/demo\">/meeting/&lt;your-name&gt;/demo</a>.</p>\
         <p>grpc-web is served here (gRPC for native clients at the API address <code>videocall up</code> prints). Meeting <code>demo</code> admits guests.</p>\
         <ul><li>WebTransport: <code>{}</code> (certificate sha256 <code>{}</code>)</li>\
         <li>WebSocket: <code>{}</code></li></ul>\
         <p>Join from a terminal: <code>cargo run --release --bin videocall -- join --meeting demo --user alice --publish</code></p>\
         </body></html>",
        relay.webtransport_url, relay.certificate_sha256, relay.websocket_url
    ))
}
