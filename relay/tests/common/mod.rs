//! Shared test harness: runs the real relay binary on loopback ports of its own and
//! stops it by PID; joins clients with freshly signed tokens.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videocall_client::{Client, ConnectOptions, Event, RelayAddress, Transport};
use videocall_protocol::wire::envelope::Body;
use videocall_relay::RelayInfo;
use videocall_token::{Claims, Grants, TokenIssuer};

pub const KID: &str = "test-key";

/// A relay process.
pub struct RelayProcess {
    child: Child,
    pub info: RelayInfo,
    pub issuer: TokenIssuer,
    _dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts `videocall-relay` with loopback ports chosen by the OS and `extra` flags.
    pub async fn start(extra: &[&str]) -> RelayProcess {
        let issuer = TokenIssuer::generate(KID);
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready.json");
        let key = format!("{KID}={}", issuer.public_key_base64());
        let mut child = Command::new(env!("CARGO_BIN_EXE_videocall-relay"))
            .args([
                "--webtransport-addr",
                "127.0.0.1:0",
                "--websocket-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--token-key",
                &key,
                "--ready-file",
            ])
            .arg(&ready)
            .args(extra)
            .env("RUST_LOG", std::env::var("RELAY_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn relay");
        let info = wait_ready(&ready, &mut child).await;
        RelayProcess {
            child,
            info,
            issuer,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn address(&self) -> RelayAddress {
        RelayAddress {
            webtransport_url: self.info.webtransport_url.clone(),
            websocket_url: self.info.websocket_url.clone(),
            certificate_sha256: Some(self.info.certificate_sha256.clone()),
        }
    }

    pub fn token(&self, user: &str, meeting: &str) -> String {
        self.token_with(user, meeting, Grants::default(), Duration::from_secs(600))
    }

    pub fn token_with(&self, user: &str, meeting: &str, grants: Grants, ttl: Duration) -> String {
        self.issuer
            .issue(&Claims::new(user, &user.to_uppercase(), meeting, grants, ttl))
            .expect("sign")
    }

    pub fn options(&self, transport: Transport, meeting: &str, token: &str) -> ConnectOptions {
        ConnectOptions::new(transport, self.address(), meeting, token)
    }

    /// Joins `meeting` as `user`.
    pub async fn join(&self, transport: Transport, meeting: &str, user: &str) -> Client {
        let token = self.token(user, meeting);
        Client::connect(self.options(transport, meeting, &token))
            .await
            .unwrap_or_else(|e| panic!("{user} could not join over {transport:?}: {e}"))
    }

    /// Resident memory of the relay process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// `GET` on the admin listener; returns (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_request(self.info.admin_addr, "GET", path).await
    }

    /// `POST` on the admin listener; returns (status, body).
    pub async fn admin_post(&self, path: &str) -> (u16, String) {
        http_request(self.info.admin_addr, "POST", path).await
    }

    /// Value of an unlabelled metric or a metric with the given label set.
    pub async fn metric(&self, name_with_labels: &str) -> f64 {
        let (_, body) = self.admin_get("/metrics").await;
        metric_value(&body, name_with_labels)
    }

    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(path: &PathBuf, child: &mut Child) -> RelayInfo {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(info) = serde_json::from_slice(&bytes) {
                return info;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("relay exited before it was ready: {status}");
        }
        assert!(Instant::now() < deadline, "relay did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A minimal HTTP/1.0 request, enough for the admin endpoints.
pub async fn http_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect admin");
    let request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn metric_value(body: &str, name_with_labels: &str) -> f64 {
    let (name, labels) = match name_with_labels.split_once('{') {
        Some((n, l)) => (n, Some(l.trim_end_matches('}'))),
        None => (name_with_labels, None),
    };
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.is_none_or(|want| want.split(',').all(|kv| l.contains(kv))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reads events until `pick` returns something, or `within` passes.
pub async fn wait_for<T>(
    client: &mut Client,
    within: Duration,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, client.next_event()).await.ok()??;
        if let Some(found) = pick(&event) {
            return Some(found);
        }
    }
}

/// Reads events until the message picker matches.
pub async fn wait_for_message<T>(
    client: &mut Client,
    within: Duration,
    mut pick: impl FnMut(&Body) -> Option<T>,
) -> Option<T> {
    wait_for(client, within, |event| match event {
        Event::Message(body) => pick(body),
        Event::Closed { .. } => None,
    })
    .await
}

/// Both transports, for tests that run on each.
pub const TRANSPORTS: [Transport; 2] = [Transport::WebTransport, Transport::WebSocket];
