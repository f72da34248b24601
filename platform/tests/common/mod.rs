//! Starting `videocall up` for a test: its own data directory, loopback ports, the built
//! browser client, stopped by PID when the guard drops.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
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
