//! The gateway between real clients and real relays: QUIC routed by server name and
//! connection ID, WebSocket and HTTP by path, garbage dropped, a restart survived.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{join, media_flows, Gateway, Relays};
use tokio::net::UdpSocket;
use videocall_client::{Event, Transport};
use videocall_protocol::wire::{envelope::Body, ErrorCode};
use videocall_quic_lb::initial::{crypto_frame, seal_client_initial};
use videocall_testkit::http_request;
use videocall_testkit::raw_join::{join_frame, join_from};
use videocall_testkit::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_connections_reach_the_relay_their_server_name_names() {
    let relays = Relays::start().await;
    assert_eq!(relays.relays[1].info.quic_server_id, 1);
    assert_eq!(
        relays.relays[1].info.webtransport_url,
        "https://relay-1.localhost:4433/"
    );
    assert_eq!(
        relays.relays[0].info.websocket_url,
        "ws://127.0.0.1:8000/relay/0/ws"
    );
    let gateway = Gateway::start(&relays.spec(), "127.0.0.1:0", "127.0.0.1:0").await;
    // Its public socket asked for more than the kernel's default buffer (which Linux reports
    // as is; a granted ask, even one capped at net.core.rmem_max, it reports doubled).
    if let Some(default) = videocall_testkit::net_core_setting("rmem_default") {
        assert!(
            gateway.info.quic_recv_buffer_bytes > default,
            "QUIC receive buffer {} against the default {default}",
            gateway.info.quic_recv_buffer_bytes
        );
    }

    let to_one = gateway.address("relay-1.localhost", &relays, 1);
    let mut alice = join(
        &relays,
        to_one.clone(),
        Transport::WebTransport,
        "m1",
        "alice",
    )
    .await;
    let mut carol = join(&relays, to_one, Transport::WebTransport, "m1", "carol").await;
    assert_eq!(alice.joined.relay_id, "relays-1");
    assert_eq!(carol.joined.relay_id, "relays-1");
    let bob = join(
        &relays,
        gateway.address("relay-0.localhost", &relays, 0),
        Transport::WebTransport,
        "m0",
        "bob",
    )
    .await;
    assert_eq!(bob.joined.relay_id, "relays-0");
    // A name that names no relay: the default relay (0).
    let dan = join(
        &relays,
        gateway.address("localhost", &relays, 0),
        Transport::WebTransport,
        "m0",
        "dan",
    )
    .await;
    assert_eq!(dan.joined.relay_id, "relays-0");

    // After the handshake every packet is short-header, routed by connection ID.
    media_flows(&mut alice, &mut carol, 1).await;
    media_flows(&mut carol, &mut alice, 2).await;
    assert_eq!(
        gateway
            .metric("videocall_gateway_new_connections_total{by=\"server_name\"}")
            .await,
        3.0
    );
    assert_eq!(
        gateway
            .metric("videocall_gateway_new_connections_total{by=\"default\"}")
            .await,
        1.0
    );
    assert!(
        gateway
            .metric("videocall_gateway_datagrams_to_client_total")
            .await
            > 20.0
    );
    drop(bob);
    drop(dan);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_http_go_by_path() {
    let relays = Relays::start().await;
    // A control plane nobody runs (port 1 refuses).
    let gateway = Gateway::start_with(
        &relays.spec(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--control-plane-addr", "127.0.0.1:1"],
    )
    .await;

    let mut erin = join(
        &relays,
        gateway.address("relay-1.localhost", &relays, 1),
        Transport::WebSocket,
        "ws",
        "erin",
    )
    .await;
    assert_eq!(erin.joined.relay_id, "relays-1");
    // Mixed: one over the proxied WebSocket, one over routed QUIC, same relay, same meeting.
    let mut fay = join(
        &relays,
        gateway.address("relay-1.localhost", &relays, 1),
        Transport::WebTransport,
        "ws",
        "fay",
    )
    .await;
    media_flows(&mut erin, &mut fay, 1).await;
    media_flows(&mut fay, &mut erin, 2).await;
    assert_eq!(gateway.metric("videocall_gateway_websockets").await, 1.0);

    let (status, body) = http_request(gateway.info.http_addr, "GET", "/relay/0/info").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"relay_id\":\"relays-0\""), "{body}");
    let (status, body) = http_request(gateway.info.http_addr, "GET", "/relay/7/info").await;
    assert_eq!(status, 404);
    assert!(body.contains("no relay 7"), "{body}");
    let (status, _) = http_request(gateway.info.http_addr, "GET", "/relay/seven/info").await;
    assert_eq!(status, 400);
    // The control plane is not running in this test: a clear 502, and the gateway goes on.
    let (status, body) = http_request(gateway.info.http_addr, "GET", "/meeting/a/b").await;
    assert_eq!(status, 502, "{body}");
    media_flows(&mut erin, &mut fay, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dropped_while_everyone_else_keeps_talking() {
    let relays = Relays::start().await;
    let gateway = Gateway::start(&relays.spec(), "127.0.0.1:0", "127.0.0.1:0").await;
    let address = gateway.address("relay-1.localhost", &relays, 1);
    let mut alice = join(
        &relays,
        address.clone(),
        Transport::WebTransport,
        "g",
        "alice",
    )
    .await;
    let mut bob = join(&relays, address, Transport::WebTransport, "g", "bob").await;

    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let target: SocketAddr = gateway.info.quic_addr;
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x41, 1, 2],
        vec![0xff; 40],
        vec![0x41; 1400],
        vec![0xc0, 0, 0, 0, 1, 30],
    ];
    // Short headers naming a relay that does not exist.
    let mut ghost = vec![0x41];
    ghost.extend_from_slice(&videocall_quic_lb::cid::encode(
        videocall_quic_lb::ServerId(9),
        [1; 5],
    ));
    ghost.extend_from_slice(&[0; 50]);
    garbage.push(ghost);
    // A full-size Initial whose CRYPTO data is no ClientHello, and a small one.
    let fake =
        seal_client_initial(&[3; 8], &[], 0, &crypto_frame(0, &[9, 9, 9, 9, 9])).expect("seal");
    garbage.push(fake.clone());
    garbage.push(fake[..300].to_vec());
    for round in 0..50 {
        for datagram in &garbage {
            let _ = attacker.send_to(datagram, target).await;
        }
        if round % 10 == 0 {
            media_flows(&mut alice, &mut bob, round).await;
        }
    }
    media_flows(&mut bob, &mut alice, 1000).await;
    let dropped = |reason: &'static str| {
        let gateway = &gateway;
        async move {
            gateway
                .metric(&format!(
                    "videocall_gateway_datagrams_dropped_total{{reason=\"{reason}\"}}"
                ))
                .await
        }
    };
    assert!(dropped("malformed").await >= 100.0);
    assert!(dropped("unroutable_cid").await >= 50.0);
    assert!(dropped("small_initial").await >= 50.0);
    assert!(dropped("bad_client_hello").await >= 50.0);
    assert!(dropped("no_relay").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_gateway_restart() {
    let relays = Relays::start().await;
    let gateway = Gateway::start(&relays.spec(), "127.0.0.1:0", "127.0.0.1:0").await;
    let quic = gateway.info.quic_addr.to_string();
    let http = gateway.info.http_addr.to_string();
    let address = gateway.address("relay-1.localhost", &relays, 1);
    let mut alice = join(
        &relays,
        address.clone(),
        Transport::WebTransport,
        "r",
        "alice",
    )
    .await;
    let mut bob = join(&relays, address, Transport::WebTransport, "r", "bob").await;
    media_flows(&mut alice, &mut bob, 1).await;

    gateway.child.signal("KILL");
    drop(gateway);
    let gateway = Gateway::start(&relays.spec(), &quic, &http).await;
    // No flow survived; the relay-issued connection IDs route the next packets anyway and
    // the relay sees the new upstream port as a migration.
    media_flows(&mut alice, &mut bob, 2).await;
    media_flows(&mut bob, &mut alice, 3).await;
    assert_eq!(
        gateway
            .metric("videocall_gateway_new_connections_total{by=\"server_name\"}")
            .await,
        0.0
    );
    for client in [&mut alice, &mut bob] {
        assert!(
            !matches!(client.try_next_event(), Some(Event::Closed { .. })),
            "session closed across the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_is_reached_through_the_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let web = dir.path().join("dist");
    std::fs::create_dir_all(&web).expect("web dir");
    std::fs::write(web.join("index.html"), "<div id=\"videocall\"></div>").expect("page");
    let mut config = videocall_control_plane::ControlPlaneConfig::defaults();
    config.grpc_addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("cp.db").display());
    config.web_dir = Some(web);
    let control_plane = videocall_control_plane::ControlPlaneServer::start(config)
        .await
        .expect("control plane");
    let relays = Relays::start().await;
    let upstream = control_plane.addr.to_string();
    let gateway = Gateway::start_with(
        &relays.spec(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--control-plane-addr", &upstream],
    )
    .await;

    // The page a browser opens.
    let (status, page) = http_request(gateway.info.http_addr, "GET", "/meeting/ana/demo").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"videocall\""), "{page}");

    // grpc-web, as the page calls it: a POST whose body and trailers must pass unchanged.
    let mut stream = tokio::net::TcpStream::connect(gateway.info.http_addr)
        .await
        .expect("connect");
    let request = "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: meet\r\n\
                   Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
                   Content-Length: 5\r\nConnection: close\r\n\r\n";
    let mut bytes = request.as_bytes().to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0]); // one empty HealthCheckRequest frame
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(&bytes).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("a reply in time")
    .expect("read");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("grpc-status:0"), "{response}");
    drop(gateway);
    control_plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_last_words_cross_the_websocket_proxy() {
    let relays = Relays::start().await;
    let gateway = Gateway::start(&relays.spec(), "127.0.0.1:0", "127.0.0.1:0").await;
    let address = gateway.address("relay-0.localhost", &relays, 0);
    let mut watcher = join(
        &relays,
        address.clone(),
        Transport::WebSocket,
        "words",
        "watcher",
    )
    .await;
    let mut ana = join(
        &relays,
        address.clone(),
        Transport::WebSocket,
        "words",
        "ana",
    )
    .await;
    let limit = ana.joined.max_frame_size as usize;
    let error_of = |event: &Event| match event {
        Event::Message(Body::Error(e)) => Some((e.code, e.fatal)),
        _ => None,
    };

    // Just over the limit: the relay reads it, refuses it, and the session goes on.
    ana.sender()
        .send_raw(Bytes::from(vec![0u8; limit + 1000]))
        .await
        .expect("send");
    let error = wait_for(&mut ana, Duration::from_secs(5), error_of).await;
    assert_eq!(error, Some((ErrorCode::FrameTooLarge as i32, false)));
    media_flows(&mut ana, &mut watcher, 1).await;

    // Far over: the relay stops at the frame's header and closes while the client is still
    // sending. Its Error and close frame reach the client all the same, through the proxy.
    for (n, size) in [limit + 200_000, 4 << 20].into_iter().enumerate() {
        let mut client = join(
            &relays,
            address.clone(),
            Transport::WebSocket,
            "words",
            &format!("big{n}"),
        )
        .await;
        client
            .sender()
            .send_raw(Bytes::from(vec![0u8; size]))
            .await
            .expect("send");
        let error = wait_for(&mut client, Duration::from_secs(5), error_of).await;
        assert_eq!(
            error,
            Some((ErrorCode::FrameTooLarge as i32, true)),
            "{size} bytes"
        );
        let closed = wait_for(&mut client, Duration::from_secs(5), |event| match event {
            Event::Closed { code, .. } => Some(*code),
            _ => None,
        })
        .await;
        assert_eq!(
            closed,
            Some(4000 + ErrorCode::FrameTooLarge as u32),
            "{size} bytes: the close frame"
        );
    }
    media_flows(&mut watcher, &mut ana, 2).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gateway.metric("videocall_gateway_websockets").await != 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "closed sockets stay counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_through_the_gateway_is_held_against_its_sender_not_the_gateway() {
    let relays = Relays::start().await;
    let gateway = Gateway::start(&relays.spec(), "127.0.0.1:0", "127.0.0.1:0").await;
    let url = format!("ws://{}/relay/0/ws", gateway.info.http_addr);
    // Far past the refusals one address may cause (50 at once): before, the relay saw only
    // the gateway's address, and this flood would have shut everyone out.
    let mut codes = std::collections::HashMap::new();
    for _ in 0..120 {
        let junk = join_frame("not.a.token", "junk");
        *codes
            .entry(join_from(&url, [127, 0, 0, 2], junk).await)
            .or_insert(0u32) += 1;
    }
    assert_eq!(codes.get(&None), None, "junk admitted: {codes:?}");
    assert!(
        codes
            .get(&Some(ErrorCode::RateLimited))
            .copied()
            .unwrap_or(0)
            >= 50,
        "the sender was not held back: {codes:?}"
    );
    // People behind the same gateway, from another address, over both transports.
    let address = gateway.address("relay-0.localhost", &relays, 0);
    for (n, transport) in [Transport::WebSocket, Transport::WebTransport]
        .into_iter()
        .enumerate()
    {
        let token = relays.token(&format!("person{n}"), "junk");
        let ws_from_localhost = join_from(&url, [127, 0, 0, 1], join_frame(&token, "junk")).await;
        assert_eq!(ws_from_localhost, None, "a person was refused");
        join(
            &relays,
            address.clone(),
            transport,
            "junk",
            &format!("other{n}"),
        )
        .await;
    }
}
