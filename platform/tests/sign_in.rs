//! Signing in on the meeting page, in Debian's headless Chromium (`web/e2e/sign-in.mjs`):
//! through a real OpenID Connect provider (`oidc-provider`, started here on loopback) that the
//! platform was started with (`videocall up --oidc-…`), and with a local account's password.

use std::time::Duration;

use videocall_testkit::oidc::{ProviderOptions, TestProvider};

mod common;

use common::{root, up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_the_provider_or_with_a_password_in_chromium() {
    assert!(
        root().join("web/dist/index.html").is_file(),
        "web/dist missing: run scripts/web-build.sh"
    );
    let port = videocall_testkit::free_tcp_port();
    let http_addr = format!("127.0.0.1:{port}");
    let provider = TestProvider::start(
        &root(),
        &ProviderOptions {
            redirect_uri: format!("http://{http_addr}/auth/oidc/callback"),
            people: serde_json::json!({
                "alice": {"email": "alice@example.org", "email_verified": true,
                          "name": "Alice Liddell", "picture": "http://127.0.0.1:9/alice.png"},
            }),
            code_ttl_secs: 60,
            claims_in_id_token: false,
        },
    )
    .await;
    let data = tempfile::tempdir().expect("temp dir");
    let provider_args = provider.control_plane_args();
    let provider_args: Vec<&str> = provider_args.iter().map(String::as_str).collect();
    let (_platform, info) = up(data.path(), &http_addr, &provider_args).await;
    let admin_password =
        std::fs::read_to_string(&info.admin_password_file).expect("admin password");
    common::run_browser_script(
        "sign-in.mjs",
        &info.http_url,
        &[admin_password.trim()],
        Duration::from_secs(180),
        "signing in in Chromium",
    )
    .await;
}
