//! Shared test harness: runs the real relay binary on loopback ports of its own and
//! stops it by PID; joins clients with freshly signed tokens.

#![allow(dead_code, unused_imports)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use videocall_client::{Client, ConnectOptions, RelayAddress, Transport};
use videocall_protocol::wire::ErrorCode;
use videocall_relay::RelayInfo;
use videocall_testkit::{wait_for_json, ChildGuard};
use videocall_token::{Claims, Grants, TokenIssuer};

pub use videocall_testkit::{announce, http_request, metric_value, wait_for, wait_for_message};

pub const KID: &str = "test-key";

/// A relay process.
pub struct RelayProcess {
    child: ChildGuard,
    pub info: RelayInfo,
    pub issuer: Arc<TokenIssuer>,
    _dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts `videocall-relay` with loopback ports chosen by the OS and `extra` flags.
    pub async fn start(extra: &[&str]) -> RelayProcess {
        Self::start_with_issuer(Arc::new(TokenIssuer::generate(KID)), extra).await
    }

    /// Starts a relay that trusts the same token key as `other` (relays of one pool).
    pub async fn start_beside(other: &RelayProcess, extra: &[&str]) -> RelayProcess {
        Self::start_with_issuer(other.issuer.clone(), extra).await
    }

    async fn start_with_issuer(issuer: Arc<TokenIssuer>, extra: &[&str]) -> RelayProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready.json");
        let key = format!("{KID}={}", issuer.public_key_base64());
        let child = Command::new(env!("CARGO_BIN_EXE_videocall-relay"))
            .args(videocall_testkit::LOOPBACK_RELAY_ADDRS)
            .args(["--token-key", &key, "--ready-file"])
            .arg(&ready)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RELAY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn relay");
        let mut child = ChildGuard(child);
        let info = wait_for_json(&ready, &mut child, Duration::from_secs(20)).await;
        RelayProcess {
            child,
            info,
            issuer,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
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
            .issue(&Claims::new(
                user,
                &user.to_uppercase(),
                meeting,
                grants,
                ttl,
            ))
            .expect("sign")
    }

    /// A token of an end-to-end encrypted meeting (the relay takes only sealed media and chat).
    pub fn token_encrypted(&self, user: &str, meeting: &str) -> String {
        let mut claims = Claims::new(
            user,
            &user.to_uppercase(),
            meeting,
            Grants::default(),
            Duration::from_secs(600),
        );
        claims.e2ee = true;
        self.issuer.issue(&claims).expect("sign")
    }

    /// Joins an end-to-end encrypted meeting (the session does not encrypt by itself).
    pub async fn join_encrypted(&self, transport: Transport, meeting: &str, user: &str) -> Client {
        let token = self.token_encrypted(user, meeting);
        Client::connect(self.options(transport, meeting, &token))
            .await
            .unwrap_or_else(|e| panic!("{user} could not join over {transport:?}: {e}"))
    }

    /// A raw WebTransport client configuration that trusts the relay's self-signed
    /// certificate (for tests that speak the protocol by hand).
    pub fn webtransport_config(&self) -> wtransport::ClientConfig {
        let hash: [u8; 32] = hex::decode(&self.info.certificate_sha256)
            .expect("certificate hash in hex")
            .try_into()
            .expect("a 32-byte certificate hash");
        wtransport::ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
            .build()
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
        self.child.rss_kib()
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
        self.child.signal(signal);
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        self.child.wait_exit(within).await
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}

/// The error code of a refused join (`None` if it was admitted or failed otherwise).
pub fn refusal_code(result: Result<Client, videocall_client::ClientError>) -> Option<ErrorCode> {
    match result {
        Err(videocall_client::ClientError::Refused { code, .. }) => Some(code),
        _ => None,
    }
}

/// Both transports, for tests that run on each.
pub const TRANSPORTS: [Transport; 2] = [Transport::WebTransport, Transport::WebSocket];
