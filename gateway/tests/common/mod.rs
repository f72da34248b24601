//! Shared harness: relays in this process, the gateway binary on loopback ports of its own.

#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use videocall_client::synthetic::packet;
use videocall_client::{Client, ConnectOptions, RelayAddress, Transport};
use videocall_gateway::GatewayInfo;
use videocall_protocol::wire::{envelope::Body, MediaKind};
use videocall_relay::{RelayConfig, RelayHandle};
use videocall_testkit::{http_request, metric_value, wait_for_json, ChildGuard};
use videocall_token::{Claims, Grants, TokenIssuer, TokenVerifier};

pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Parser)]
struct RelayArgs {
    #[command(flatten)]
    config: RelayConfig,
}

/// Two relays (server ids 0 and 1) in this process and one token issuer they trust.
pub struct Relays {
    pub relays: Vec<RelayHandle>,
    pub issuer: TokenIssuer,
}

impl Relays {
    pub async fn start() -> Relays {
        let issuer = TokenIssuer::generate("gw");
        let mut relays = Vec::new();
        for id in 0..2u16 {
            let relay_id = format!("relays-{id}");
            let mut argv = vec!["relay", "--relay-id", &relay_id];
            argv.extend(videocall_testkit::LOOPBACK_RELAY_ADDRS);
            argv.extend([
                "--public-webtransport-url",
                "https://relay-{server_id}.localhost:4433/",
                "--public-websocket-url",
                "ws://127.0.0.1:8000/relay/{server_id}/ws",
                // The gateway connects from here: its X-Forwarded-For names the client.
                "--trusted-proxies",
                "127.0.0.1",
            ]);
            let args = RelayArgs::parse_from(argv);
            let mut verifier = TokenVerifier::new();
            verifier
                .add_key_base64("gw", &issuer.public_key_base64())
                .expect("key");
            let relay = videocall_relay::start_with_verifier(args.config, verifier)
                .await
                .expect("relay starts");
            relays.push(relay);
        }
        Relays { relays, issuer }
    }

    /// `--relay` value naming both relays.
    pub fn spec(&self) -> String {
        self.relays
            .iter()
            .map(|r| {
                format!(
                    "{}={}/{}",
                    r.info.quic_server_id, r.info.webtransport_addr, r.info.websocket_addr
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn token(&self, user: &str, meeting: &str) -> String {
        self.issuer
            .issue(&Claims::new(
                user,
                user,
                meeting,
                Grants::default(),
                Duration::from_secs(600),
            ))
            .expect("sign")
    }
}

/// The gateway binary.
pub struct Gateway {
    pub child: ChildGuard,
    pub info: GatewayInfo,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn start(relays: &str, quic: &str, http: &str) -> Gateway {
        Self::start_with(relays, quic, http, &[]).await
    }

    /// As [`Self::start`], with more flags.
    pub async fn start_with(relays: &str, quic: &str, http: &str, extra: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready.json");
        let child = Command::new(env!("CARGO_BIN_EXE_videocall-gateway"))
            .args(["--quic-addr", quic, "--http-addr", http])
            .args(["--admin-addr", "127.0.0.1:0", "--relay", relays])
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("GATEWAY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn gateway");
        let mut child = ChildGuard(child);
        let info = wait_for_json(&ready, &mut child, Duration::from_secs(20)).await;
        Gateway {
            child,
            info,
            _dir: dir,
        }
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = http_request(self.info.admin_addr, "GET", "/metrics").await;
        metric_value(&body, name)
    }

    /// How clients reach relay `server` through this gateway, by name.
    pub fn address(&self, host: &str, relays: &Relays, server: usize) -> RelayAddress {
        RelayAddress {
            webtransport_url: format!("https://{host}:{}/", self.info.quic_addr.port()),
            websocket_url: format!("ws://{}/relay/{server}/ws", self.info.http_addr),
            certificate_sha256: Some(relays.relays[server].info.certificate_sha256.clone()),
        }
    }
}

pub async fn join(
    relays: &Relays,
    address: RelayAddress,
    transport: Transport,
    meeting: &str,
    user: &str,
) -> Client {
    let token = relays.token(user, meeting);
    Client::connect(ConnectOptions::new(transport, address, meeting, &token))
        .await
        .unwrap_or_else(|e| panic!("{user} could not join through the gateway: {e}"))
}

/// `from` announces its camera and sends a keyframe; `to` must receive video from it.
pub async fn media_flows(from: &mut Client, to: &mut Client, sequence: u64) {
    videocall_testkit::announce(from, &[(1, MediaKind::Video)]).await;
    from.sender()
        .send_media(packet(1, MediaKind::Video, sequence, true, 2500))
        .await
        .expect("send");
    let sender = from.participant_id();
    let got = videocall_testkit::wait_for_message(to, WAIT, |body| match body {
        Body::Media(m) if m.participant_id == sender && m.sequence == sequence => Some(()),
        _ => None,
    })
    .await;
    assert!(got.is_some(), "media {sequence} did not cross the gateway");
}
