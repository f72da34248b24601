//! The control plane serves the browser client beside its API: the page at any
//! `/meeting/<user>/<meeting>`, its assets, and without a built client a page that says so.
//! Anything else is a 404 page (a gRPC call to an unknown method: UNIMPLEMENTED), and only
//! the origins of `--cors-origins` may call grpc-web from other pages.

use videocall_control_plane::{ControlPlaneConfig, ControlPlaneServer};
use videocall_testkit::http_request;

async fn start(web_dir: Option<std::path::PathBuf>, db: &std::path::Path) -> ControlPlaneServer {
    start_with(web_dir, db, &[]).await
}

async fn start_with(
    web_dir: Option<std::path::PathBuf>,
    db: &std::path::Path,
    cors_origins: &[&str],
) -> ControlPlaneServer {
    let mut config = ControlPlaneConfig::defaults();
    config.cors_origins = cors_origins.iter().map(|o| o.to_string()).collect();
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = format!("sqlite://{}?mode=rwc", db.join("cp.db").display());
    config.web_dir = web_dir;
    ControlPlaneServer::start(config)
        .await
        .expect("control plane")
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_beside_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("dist");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), "<div id=\"main\"></div>").unwrap();
    std::fs::write(web.join("assets/app.js"), "export default 1;").unwrap();
    let server = start(Some(web), dir.path()).await;

    let (status, page) = http_request(server.addr, "GET", "/meeting/alice/demo").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"main\""));
    let (status, _) = http_request(server.addr, "GET", "/meeting/bob/standup/").await;
    assert_eq!(status, 200);
    let (status, script) = http_request(server.addr, "GET", "/assets/app.js").await;
    assert_eq!((status, script.as_str()), (200, "export default 1;"));
    let (status, _) = http_request(server.addr, "GET", "/assets/../index.html").await;
    assert_ne!(status, 200, "no way out of the assets directory");
    let (status, _) = http_request(server.addr, "GET", "/assets/missing.js").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn without_a_built_client_the_page_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(None, dir.path()).await;
    let (status, page) = http_request(server.addr, "GET", "/meeting/alice/demo").await;
    assert_eq!(status, 503);
    assert!(page.contains("scripts/web-build.sh"));
    // Its own (empty) icon: browsers do not ask for /favicon.ico, a 404.
    assert!(
        page.contains(r#"<link rel="icon" href="data:,">"#),
        "{page}"
    );
    let client = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/index.html"))
        .expect("web/index.html");
    assert!(client.contains(r#"<link rel="icon" href="data:,">"#));
    server.stop().await;
}

/// A raw HTTP/1.1 exchange: the whole response, head and body.
async fn exchange(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn unknown_paths_are_404_and_unknown_grpc_methods_unimplemented() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(None, dir.path()).await;
    for path in ["/favicon.ico", "/no-such-page", "/meeting", "/"] {
        let (status, page) = http_request(server.addr, "GET", path).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(page.contains("Not found"), "{path}: {page}");
    }
    let response = exchange(
        server.addr,
        &format!(
            "POST /videocall.control.v1.NoSuchService/Call HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/grpc-web+proto\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            server.addr
        ),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("grpc-status: 12"),
        "UNIMPLEMENTED: {response}"
    );
    server.stop().await;
}

/// A CORS preflight for grpc-web from `origin`; the response head, lower-cased.
async fn preflight(addr: std::net::SocketAddr, origin: &str) -> String {
    exchange(
        addr,
        &format!(
            "OPTIONS /videocall.control.v1.MeetingService/GetMeeting HTTP/1.1\r\nHost: {addr}\r\n\
             Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: content-type,x-grpc-web\r\nConnection: close\r\n\r\n"
        ),
    )
    .await
    .to_ascii_lowercase()
}

#[tokio::test]
async fn only_the_configured_origins_may_call_from_other_pages() {
    let dir = tempfile::tempdir().unwrap();
    // By default no other origin: the platform's page is on the API's own origin.
    let server = start(None, dir.path()).await;
    let answer = preflight(server.addr, "https://evil.example").await;
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let server = start_with(None, dir.path(), &["https://admin.example.org"]).await;
    let answer = preflight(server.addr, "https://admin.example.org").await;
    assert!(
        answer.contains("access-control-allow-origin: https://admin.example.org"),
        "{answer}"
    );
    let answer = preflight(server.addr, "https://evil.example").await;
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");
    server.stop().await;
}
