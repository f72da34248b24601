//! Debian's headless Chromium through the gateway: its real ClientHello (which may span two
//! Initial packets and shuffles its CRYPTO frames) is routed by server name to relay 1, and
//! the relay answers its Join. Needs /usr/bin/chromium and web/node_modules
//! (`scripts/web-build.sh`), as `scripts/test.sh` provides.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::{Gateway, Relays};
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, Join};
use videocall_protocol::{decode_envelope, encode_length_prefixed};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_joins_a_relay_through_the_gateway() {
    assert!(
        root().join("web/node_modules/playwright-core").is_dir(),
        "playwright-core missing: run scripts/web-build.sh (npm ci in web/)"
    );
    let relays = Relays::start().await;
    // Chromium resolves `*.localhost` to ::1: the gateway's QUIC side listens there.
    let gateway = Gateway::start(&relays.spec(), "[::1]:0", "127.0.0.1:0").await;
    let token = relays.token("chromium", "browser");
    let join = encode_length_prefixed(&envelope(Body::Join(Join {
        token,
        meeting_id: "browser".into(),
        client: "chromium".into(),
    })));

    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(root().join("web/e2e/gateway.mjs"))
            // A page through the gateway's HTTP side (a secure context: loopback).
            .arg(format!("http://{}/relay/1/info", gateway.info.http_addr))
            .arg(format!(
                "https://relay-1.localhost:{}/",
                gateway.info.quic_addr.port()
            ))
            .arg(&relays.relays[1].info.certificate_sha256)
            .arg(hex::encode(&join))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finishes within 90 s")
    .expect("node runs web/e2e/gateway.mjs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gateway.mjs failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let reply = hex::decode(line["reply"].as_str().expect("reply")).expect("hex");
    let frame = Bytes::from(reply).slice(4..);
    let reply = decode_envelope(frame, 1 << 20).expect("an envelope");
    match reply.body {
        Some(Body::Joined(joined)) => assert_eq!(joined.relay_id, "relays-1"),
        other => panic!("expected Joined from relay 1, got {other:?}"),
    }
    assert_eq!(
        gateway
            .metric("videocall_gateway_new_connections_total{by=\"server_name\"}")
            .await,
        1.0
    );
    assert_eq!(
        gateway
            .metric("videocall_gateway_http_requests_total{upstream=\"relay\",outcome=\"ok\"}")
            .await,
        1.0
    );
}
