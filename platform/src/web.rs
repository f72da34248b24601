//! The platform's one HTTP entry: the control-plane API (gRPC and grpc-web), the browser
//! client at `/meeting/<username>/<meeting-id>` with its assets, and a page that says what runs
//! here, all on one origin (so the page calls the API without CORS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::services::ServeDir;
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

#[derive(Clone)]
struct WebState {
    relay: Arc<RelayInfo>,
    web_dir: Option<PathBuf>,
}

/// Routes: `/` (what runs here), `/relay` (the relay's information), `/meeting/{user}/{id}`
/// (the browser client), `/assets/*`, merged with `api`.
pub fn router(api: Router, relay: Arc<RelayInfo>, web_dir: Option<PathBuf>) -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/relay", get(relay_info))
        .route("/meeting/{user}/{meeting}", get(meeting_page))
        .route("/meeting/{user}/{meeting}/", get(meeting_page));
    if let Some(dir) = &web_dir {
        router = router.nest_service("/assets", ServeDir::new(dir.join("assets")));
    }
    router.with_state(WebState { relay, web_dir }).merge(api)
}

async fn relay_info(State(state): State<WebState>) -> Json<RelayInfo> {
    Json((*state.relay).clone())
}

async fn meeting_page(State(state): State<WebState>) -> Response {
    let page = match &state.web_dir {
        Some(dir) => tokio::fs::read_to_string(dir.join("index.html")).await.ok(),
        None => None,
    };
    match page {
        // The client reads the meeting from its own address; the page itself never changes.
        Some(page) => ([(header::CACHE_CONTROL, "no-cache")], Html(page)).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>videocall</title></head>\
                 <body><h1>The browser client is not built</h1>\
                 <p>Run <code>scripts/web-build.sh</code> (or start the platform with <code>scripts/up.sh</code>), \
                 then reload this page.</p></body></html>",
            ),
        )
            .into_response(),
    }
}

async fn index(State(state): State<WebState>) -> Html<String> {
    let relay = &state.relay;
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>videocall</title></head>\
         <body><h1>videocall is running</h1>\
         <p>Join the demo meeting: <a href=\"/meeting/guest/demo\">/meeting/&lt;your-name&gt;/demo</a>.</p>\
         <p>The control-plane API (gRPC and grpc-web) is served here. Meeting <code>demo</code> admits guests.</p>\
         <ul><li>WebTransport: <code>{}</code> (certificate sha256 <code>{}</code>)</li>\
         <li>WebSocket: <code>{}</code></li></ul>\
         <p>Join from a terminal: <code>cargo run --release --bin videocall -- join --meeting demo --user alice --publish</code></p>\
         </body></html>",
        relay.webtransport_url, relay.certificate_sha256, relay.websocket_url
    ))
}
