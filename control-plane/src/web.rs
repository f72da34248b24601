//! The browser client's page and assets, served beside the API: the page reads the meeting from
//! its own address and calls grpc-web on the same origin, so no CORS and no second host.

use std::path::PathBuf;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

/// `/meeting/{user}/{meeting}` (the page) and `/assets/*` from `web_dir`; without one, the
/// meeting page explains how to build the client instead of answering 404.
pub fn routes(web_dir: Option<PathBuf>) -> Router {
    let mut router = Router::new()
        .route("/meeting/{user}/{meeting}", get(meeting_page))
        .route("/meeting/{user}/{meeting}/", get(meeting_page));
    if let Some(dir) = &web_dir {
        router = router.nest_service("/assets", ServeDir::new(dir.join("assets")));
    }
    router.with_state(web_dir)
}

/// Whatever no route takes: a gRPC call to an unknown method gets gRPC's UNIMPLEMENTED (as
/// tonic would answer it); anything else, a small 404 page.
pub async fn not_found(request: Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented(format!("no method {}", request.uri().path()))
            .into_http::<axum::body::Body>();
    }
    tracing::debug!(path = %request.uri().path(), "404");
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · videocall</title><link rel=\"icon\" href=\"data:,\"></head>\
             <body><h1>Not found</h1><p>Nothing lives at this address. A meeting is at \
             <code>/meeting/&lt;your name&gt;/&lt;meeting id&gt;</code>.</p></body></html>",
        ),
    )
        .into_response()
}

async fn meeting_page(State(web_dir): State<Option<PathBuf>>) -> Response {
    let page = match &web_dir {
        Some(dir) => tokio::fs::read_to_string(dir.join("index.html")).await.ok(),
        None => None,
    };
    match page {
        // Every meeting gets the same page; no-cache so a rebuilt client is picked up.
        Some(page) => ([(header::CACHE_CONTROL, "no-cache")], Html(page)).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>videocall</title><link rel=\"icon\" href=\"data:,\"></head>\
                 <body><h1>The browser client is not built</h1>\
                 <p>Run <code>scripts/web-build.sh</code> (or start the platform with <code>scripts/up.sh</code>) \
                 and give its <code>web/dist</code> to the server (<code>--web-dir</code>), then reload this page.</p>\
                 </body></html>",
            ),
        )
            .into_response(),
    }
}
