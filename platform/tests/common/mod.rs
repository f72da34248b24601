//! Starting `videocall up` for a test: its own data directory, loopback ports, the built
//! browser client, stopped by PID when the guard drops.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tonic::Request;
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::{
    CreateMeetingRequest, EndMeetingRequest, GetMeetingRequest, ListRelaysRequest, LoginRequest,
};
use videocall_relay::RelayInfo;
use videocall_testkit::{wait_for_json, ChildGuard};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_videocall");

/// What a running platform writes to `platform.json`.
#[derive(Debug, Deserialize)]
pub struct PlatformInfo {
    pub http_url: String,
    pub api_url: String,
    pub admin_user: String,
    pub admin_password_file: PathBuf,
    pub relay: RelayInfo,
    #[serde(default)]
    pub relays: Vec<RelayInfo>,
    pub gateway: videocall_gateway::GatewayInfo,
    pub control_plane_metrics_url: String,
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `videocall up` in `data` on `http_addr` (`127.0.0.1:0` for any port), plus `extra` flags.
pub async fn up(data: &Path, http_addr: &str, extra: &[&str]) -> (ChildGuard, PlatformInfo) {
    let _ = std::fs::remove_file(data.join("platform.json"));
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["up", "--http-addr", http_addr, "--web-dir"])
        .arg(root().join("web/dist"))
        .args(videocall_testkit::LOOPBACK_RELAY_ADDRS)
        .args(["--quic-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"])
        .args(["--gateway-admin-addr", "127.0.0.1:0"])
        .args(["--control-plane-metrics-addr", "127.0.0.1:0"])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("PLATFORM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        // With PLATFORM_TEST_LOG set, the platform's log (on stdout) shows in the test output.
        .stdout(if std::env::var_os("PLATFORM_TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("spawn videocall up");
    let mut child = ChildGuard(child);
    let info = wait_for_json(
        &data.join("platform.json"),
        &mut child,
        Duration::from_secs(30),
    )
    .await;
    (child, info)
}

/// A workspace binary beside this test's (`cargo test --workspace` builds them all).
pub fn workspace_binary(name: &str, package: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("the target dir");
    let binary = dir.join(name);
    assert!(
        binary.is_file(),
        "{} missing: cargo build -p {package}",
        binary.display()
    );
    binary
}

/// The `videocall-relay` binary.
pub fn relay_binary() -> std::path::PathBuf {
    workspace_binary("videocall-relay", "videocall-relay")
}

/// Meetings for error screens, bad input and the streamer: `full` (one seat), `private` (no guests),
/// `over` (ended) and `shelf` (where the streamer streams).
pub async fn create_test_meetings(info: &PlatformInfo) {
    let authorization = admin_authorization(info).await;
    let mut meetings = MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect");
    for (id, guests, max, e2ee) in [
        ("full", true, 1, false),
        ("private", false, 10, false),
        ("over", true, 10, false),
        ("shelf", true, 10, false),
        ("encrypted", true, 10, true),
    ] {
        let mut request = Request::new(CreateMeetingRequest {
            id: id.into(),
            guests_allowed: guests,
            max_participants: max,
            e2ee_required: e2ee,
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().expect("header"));
        meetings.create_meeting(request).await.expect("create");
    }
    let mut request = Request::new(EndMeetingRequest { id: "over".into() });
    request
        .metadata_mut()
        .insert("authorization", authorization.parse().expect("header"));
    meetings.end_meeting(request).await.expect("end");
}

/// A command for `videocall-streamer`: the workspace's, or `VIDEOCALL_STREAMER_BIN` (e.g. the
/// aarch64 build, run through `VIDEOCALL_TEST_RUNNER`: `scripts/aarch64.sh`).
pub fn streamer_command() -> Command {
    let binary = std::env::var_os("VIDEOCALL_STREAMER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_binary("videocall-streamer", "videocall-streamer"));
    videocall_testkit::command(binary)
}

/// Signs in as the platform's admin; the `authorization` header value.
pub async fn admin_authorization(info: &PlatformInfo) -> String {
    let password = std::fs::read_to_string(&info.admin_password_file).expect("admin password");
    let login = AuthServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect")
        .login(LoginRequest {
            username: info.admin_user.clone(),
            password: password.trim().into(),
        })
        .await
        .expect("admin login")
        .into_inner();
    videocall_control_api::bearer_authorization(&login.session_token)
}

/// A relay the test `kill -9`s: a process of its own (`videocall-relay`) that registers with
/// the platform's control plane under the platform's relay key and shares its meetings with
/// the platform's relay over NATS. Browsers reach it directly (its own self-signed
/// certificate, advertised to the control plane).
pub async fn separate_relay(
    data: &Path,
    info: &PlatformInfo,
    id: &str,
    prefix: &str,
) -> ChildGuard {
    let secret = std::fs::read_to_string(data.join("keys/relay-api-secret")).expect("relay key");
    let ready = data.join(format!("{id}.json"));
    let child = Command::new(relay_binary())
        .args(["--relay-id", id])
        .args(videocall_testkit::LOOPBACK_RELAY_ADDRS)
        .arg("--self-signed-dir")
        .arg(data.join(id))
        .arg("--ready-file")
        .arg(&ready)
        .args(["--control-plane-url", &info.api_url])
        .args([
            "--control-plane-api-key",
            &format!("vk_embedded_relay:{}", secret.trim()),
        ])
        .args(["--nats-url", "nats://127.0.0.1:4222"])
        .args(["--bus-subject-prefix", prefix])
        .env(
            "RUST_LOG",
            std::env::var("PLATFORM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn videocall-relay");
    let mut child = ChildGuard(child);
    let _: videocall_relay::RelayInfo =
        wait_for_json(&ready, &mut child, Duration::from_secs(30)).await;
    // Fresh in the control plane before anyone is placed.
    let authorization = admin_authorization(info).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut request = Request::new(ListRelaysRequest {});
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().expect("header"));
        let relays = RelayServiceClient::connect(info.api_url.clone())
            .await
            .expect("connect")
            .list_relays(request)
            .await
            .expect("list relays")
            .into_inner()
            .relays;
        if relays
            .iter()
            .any(|r| r.fresh && r.endpoints.as_ref().is_some_and(|e| e.relay_id == id))
        {
            return child;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never registered: {relays:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GetMeeting("demo")`: participants and hosting relays.
pub async fn demo_meeting(info: &PlatformInfo) -> (u32, Vec<String>) {
    let meeting = MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API")
        .get_meeting(GetMeetingRequest { id: "demo".into() })
        .await
        .expect("get meeting")
        .into_inner();
    let mut relays = meeting.relay_ids;
    relays.sort();
    (meeting.participants, relays)
}

/// Waits until `GetMeeting("demo")` shows `participants` on `relays` (sorted); relays report
/// with their heartbeats, so the control plane catches up within a few seconds.
pub async fn wait_for_demo_meeting(
    info: &PlatformInfo,
    participants: u32,
    relays: &[&str],
    within: Duration,
) {
    let wanted = (
        participants,
        relays.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
    );
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = demo_meeting(info).await;
        if now == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo meeting: {now:?}, not {wanted:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the browser script `web/e2e/<script>` with Node.js against the platform at
/// `http_url`, with the screenshot folder and then `args`, its messages shown as they come;
/// fails the test, naming `what`, unless it succeeds within `limit`.
pub async fn run_browser_script(
    script: &str,
    http_url: &str,
    args: &[&str],
    limit: Duration,
    what: &str,
) {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let node = tokio::process::Command::new("node")
        .arg(root().join("web/e2e").join(script))
        .arg(http_url.trim_end_matches('/'))
        .arg(&out)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(limit, node)
        .await
        .unwrap_or_else(|_| panic!("{what}: not finished within {limit:?}"))
        .unwrap_or_else(|e| panic!("node runs web/e2e/{script}: {e}"));
    assert!(
        status.success(),
        "{what} failed (screenshots in {})",
        out.display()
    );
}
