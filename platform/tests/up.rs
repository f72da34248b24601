//! Command one, as a newcomer runs it: `videocall up` starts everything in one data
//! directory, hands out tokens, and two people can meet.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use videocall_client::synthetic::packet;
use videocall_client::{Client, ConnectOptions, RelayAddress, Transport};
use videocall_protocol::wire::{envelope::Body, MediaKind};
use videocall_relay::RelayInfo;
use videocall_testkit::{http_request, wait_for_json, wait_for_message, ChildGuard};

const BIN: &str = env!("CARGO_BIN_EXE_videocall");

#[derive(Debug, Deserialize)]
struct PlatformInfo {
    http_url: String,
    relay: RelayInfo,
}

#[derive(Debug, Deserialize)]
struct TokenGrant {
    token: String,
    relay: RelayInfo,
}

async fn up(data: &Path) -> (ChildGuard, PlatformInfo) {
    let _ = std::fs::remove_file(data.join("platform.json"));
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["up", "--http-addr", "127.0.0.1:0"])
        .args(videocall_testkit::LOOPBACK_RELAY_ADDRS)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn videocall up");
    let mut child = ChildGuard(child);
    let info = wait_for_json(
        &data.join("platform.json"),
        &mut child,
        Duration::from_secs(20),
    )
    .await;
    (child, info)
}

fn http_addr(info: &PlatformInfo) -> std::net::SocketAddr {
    info.http_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("http addr")
}

async fn token(info: &PlatformInfo, query: &str) -> (u16, String) {
    http_request(http_addr(info), "GET", &format!("/dev/token?{query}")).await
}

fn address(relay: &RelayInfo) -> RelayAddress {
    RelayAddress {
        webtransport_url: relay.webtransport_url.clone(),
        websocket_url: relay.websocket_url.clone(),
        certificate_sha256: Some(relay.certificate_sha256.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_tokens_and_two_people_meet_in_demo() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut platform, info) = up(data.path()).await;
    assert!(info.relay.self_signed);
    assert_eq!(info.relay.certificate_sha256.len(), 64);
    assert!(data.path().join("tls/relay-cert.pem").exists());
    assert!(data.path().join("keys/dev-issuer.key").exists());

    let (status, page) = http_request(http_addr(&info), "GET", "/").await;
    assert_eq!(status, 200);
    assert!(page.contains(&info.relay.certificate_sha256));

    // Bad requests get a clear 400, and the issuer keeps serving.
    for bad in [
        "",
        "meeting=demo",
        "meeting=../x&user=alice",
        "meeting=demo&user=a%20b",
    ] {
        let (status, body) = token(&info, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("error"), "{bad}: {body}");
    }

    let mut clients = Vec::new();
    for (user, transport) in [
        ("alice", Transport::WebTransport),
        ("bob", Transport::WebSocket),
    ] {
        let (status, body) = token(&info, &format!("meeting=demo&user={user}")).await;
        assert_eq!(status, 200, "{body}");
        let grant: TokenGrant = serde_json::from_str(&body).expect("grant json");
        let options = ConnectOptions::new(transport, address(&grant.relay), "demo", &grant.token);
        clients.push(Client::connect(options).await.expect("join demo"));
    }
    let (alice, bob) = clients.split_at_mut(1);
    let (alice, bob) = (&mut alice[0], &mut bob[0]);
    assert_eq!(bob.joined.participants.len(), 1);
    alice
        .sender()
        .send_media(packet(1, MediaKind::Video, 0, true, 2000))
        .await
        .expect("send");
    let got = wait_for_message(bob, Duration::from_secs(5), |m| match m {
        Body::Media(media) if media.participant_id == alice.participant_id() => {
            Some(media.payload.len())
        }
        _ => None,
    })
    .await;
    assert_eq!(got, Some(2000));

    // The terminal participant joins the same meeting and publishes.
    let join = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "join",
            "--meeting",
            "demo",
            "--user",
            "carol",
            "--publish",
            "--seconds",
            "3",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn join");
    let carol_media = wait_for_message(bob, Duration::from_secs(10), |m| match m {
        Body::Media(media) if media.participant_id != alice.participant_id() && media.keyframe => {
            Some(())
        }
        _ => None,
    })
    .await;
    assert!(
        carol_media.is_some(),
        "no media from `videocall join --publish`"
    );
    let output = join.wait_with_output().expect("join output");
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("joined demo as carol"), "{printed}");
    assert!(printed.contains("already here"), "{printed}");

    // SIGTERM drains and stops the platform.
    platform.signal("TERM");
    drop(clients);
    assert_eq!(platform.wait_exit(Duration::from_secs(15)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_survives_a_restart_and_the_token_command_uses_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args(["token", "--meeting", "demo", "--user", "dave"])
        .output()
        .expect("token command");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3);

    for round in 0..2 {
        let (platform, info) = up(data.path()).await;
        let options =
            ConnectOptions::new(Transport::WebSocket, address(&info.relay), "demo", &token);
        let client = Client::connect(options).await;
        assert!(client.is_ok(), "round {round}: {:?}", client.err());
        drop(platform);
    }

    let refused = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args(["token", "--meeting", "no/slashes"])
        .output()
        .expect("token command");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("meeting id"));
}
