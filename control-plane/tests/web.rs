//! The control plane serves the browser client beside its API: the page at any
//! `/meeting/<user>/<meeting>`, its assets, and without a built client a page that says so.

use videocall_control_plane::{ControlPlaneConfig, ControlPlaneServer};
use videocall_testkit::http_request;

async fn start(web_dir: Option<std::path::PathBuf>, db: &std::path::Path) -> ControlPlaneServer {
    let mut config = ControlPlaneConfig::defaults();
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
    server.stop().await;
}
