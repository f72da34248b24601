//! Bad input gets a clear error or close reason, is counted, and never disturbs the
//! participants who behave.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use futures_util::{SinkExt, StreamExt};
use rand::{RngCore, SeedableRng};
use tokio_tungstenite::tungstenite::Message;
use videocall_client::synthetic::packet;
use videocall_client::{Client, ClientError, Event, Transport};
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, MediaKind};
use videocall_protocol::{decode_envelope, encode_envelope, PROTOCOL_VERSION};
use videocall_testkit::raw_join::{join_frame, join_from};
use videocall_token::{Claims, Grants, TokenIssuer};

const WAIT: Duration = Duration::from_secs(5);

/// A pair that keeps talking while everything else misbehaves.
struct HealthyPair {
    alice: Client,
    bob: Client,
    sequence: u64,
}

impl HealthyPair {
    async fn join(relay: &RelayProcess) -> Self {
        let mut alice = relay
            .join(Transport::WebTransport, "healthy", "alice")
            .await;
        announce(&mut alice, &[(7, MediaKind::Audio)]).await;
        HealthyPair {
            alice,
            bob: relay.join(Transport::WebSocket, "healthy", "bob").await,
            sequence: 0,
        }
    }

    /// Alice sends a packet and bob must get it.
    async fn still_talking(&mut self, context: &str) {
        let seq = self.sequence;
        self.sequence += 1;
        self.alice
            .sender()
            .send_media(packet(7, MediaKind::Audio, seq, false, 100))
            .await
            .expect("alice sends");
        let got = wait_for_message(&mut self.bob, WAIT, |m| match m {
            Body::Media(media) if media.track_id == 7 && media.sequence == seq => Some(()),
            _ => None,
        })
        .await;
        assert!(
            got.is_some(),
            "healthy pair stopped talking after {context}"
        );
    }
}

/// Sends `frames` on a fresh WebSocket and returns the relay's errors and close frame.
async fn raw_websocket(
    relay: &RelayProcess,
    frames: Vec<Message>,
) -> (Vec<wire::Error>, Option<(u16, String)>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(relay.info.websocket_url.as_str())
        .await
        .expect("connect");
    for frame in frames {
        socket.send(frame).await.expect("send");
    }
    let mut errors = Vec::new();
    let mut close = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        match message {
            Message::Binary(b) => {
                if let Ok(env) = decode_envelope(b, usize::MAX) {
                    if let Some(Body::Error(e)) = env.body {
                        errors.push(e);
                    }
                }
            }
            Message::Close(frame) => {
                close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            _ => {}
        }
    }
    (errors, close)
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

fn assert_refused(
    what: &str,
    errors: &[wire::Error],
    close: &Option<(u16, String)>,
    expect: &[ErrorCode],
) {
    let error = errors
        .first()
        .unwrap_or_else(|| panic!("{what}: no error message"));
    let code = ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified);
    assert!(
        expect.contains(&code),
        "{what}: got {code:?}: {}",
        error.message
    );
    assert!(
        error.fatal && !error.message.is_empty(),
        "{what}: {error:?}"
    );
    let (close_code, reason) = close
        .clone()
        .unwrap_or_else(|| panic!("{what}: no close frame"));
    assert_eq!(close_code, 4000 + error.code as u16, "{what}: close code");
    assert!(
        reason.contains(code.as_str_name()),
        "{what}: close reason {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_before_join_are_refused_with_reasons() {
    let relay = RelayProcess::start(&[]).await;
    let mut pair = HealthyPair::join(&relay).await;
    let token = relay.token("mallory", "healthy");
    let join = join_frame(&token, "healthy");

    let mut unknown = encode_envelope(&wire::Envelope {
        version: PROTOCOL_VERSION,
        body: None,
    })
    .to_vec();
    unknown.extend_from_slice(&[0xC0, 0x3E, 0x05]);
    let cases: Vec<(&str, Message, &[ErrorCode])> = vec![
        (
            "random bytes",
            Message::Binary(random_bytes(1, 257).into()),
            &[
                ErrorCode::Malformed,
                ErrorCode::UnsupportedVersion,
                ErrorCode::UnknownMessage,
                ErrorCode::NotJoined,
            ],
        ),
        (
            "truncated protobuf",
            Message::Binary(join.slice(..join.len() - 5)),
            &[ErrorCode::Malformed],
        ),
        (
            "unknown message",
            Message::Binary(unknown.into()),
            &[ErrorCode::UnknownMessage],
        ),
        (
            "text message",
            Message::Text("hello".into()),
            &[ErrorCode::Malformed],
        ),
        (
            "media before join",
            Message::Binary(encode_envelope(&envelope(Body::Media(packet(
                1,
                MediaKind::Video,
                0,
                true,
                10,
            ))))),
            &[ErrorCode::NotJoined],
        ),
        (
            "bad meeting id",
            Message::Binary(join_frame(&relay.token("m", "../etc"), "../etc")),
            &[ErrorCode::Malformed],
        ),
    ];
    for (what, frame, expect) in cases {
        let (errors, close) = raw_websocket(&relay, vec![frame]).await;
        assert_refused(what, &errors, &close, expect);
        pair.still_talking(what).await;
    }

    // The same over WebTransport: garbage on the control stream.
    let refused = raw_webtransport_control(&relay, random_frame()).await;
    assert!(
        refused.is_some_and(|(code, _)| code != 0),
        "WebTransport garbage not refused"
    );
    pair.still_talking("WebTransport garbage").await;

    assert!(relay.metric("videocall_relay_join_refusals_total").await >= 7.0);
}

fn random_frame() -> Bytes {
    let body = random_bytes(2, 64);
    let mut frame = BytesMut::new();
    frame.put_u32(body.len() as u32);
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// A WebTransport client endpoint that trusts the relay's self-signed certificate.
fn webtransport_client(
    relay: &RelayProcess,
) -> Option<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>> {
    wtransport::Endpoint::client(relay.webtransport_config()).ok()
}

/// Opens a WebTransport session, writes `frame` on the control stream, returns the close (code, reason).
async fn raw_webtransport_control(relay: &RelayProcess, frame: Bytes) -> Option<(u64, String)> {
    let connection = webtransport_client(relay)?
        .connect(relay.info.webtransport_url.as_str())
        .await
        .ok()?;
    let (mut send, _recv) = connection.open_bi().await.ok()?.await.ok()?;
    send.write_all(&frame).await.ok()?;
    match tokio::time::timeout(WAIT, connection.closed()).await.ok()? {
        wtransport::error::ConnectionError::ApplicationClosed(close) => Some((
            close.code().into_inner(),
            String::from_utf8_lossy(close.reason()).into_owned(),
        )),
        other => Some((0, other.to_string())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webtransport_session_for_another_path_is_refused_with_404() {
    let relay = RelayProcess::start(&[]).await;
    let base = relay.info.webtransport_url.trim_end_matches('/');
    for path in ["/favicon.ico", "/no-such-page", "/ws"] {
        let outcome = webtransport_client(&relay)
            .expect("client")
            .connect(format!("{base}{path}"))
            .await;
        match outcome {
            Err(wtransport::error::ConnectingError::SessionRejected) => {}
            Err(other) => panic!("{path}: refused, but not as a rejected session: {other}"),
            Ok(_) => panic!("{path}: taken as a session"),
        }
    }
    assert_eq!(
        relay
            .metric("videocall_relay_refused_sessions_total{reason=\"unknown_path\"}")
            .await,
        3.0
    );
    // The relay's own path still works.
    let _pair = HealthyPair::join(&relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_with_its_own_code_on_both_transports() {
    let relay = RelayProcess::start(&[]).await;
    let mut pair = HealthyPair::join(&relay).await;
    let claims = |meeting: &str, ttl: u64| {
        Claims::new(
            "eve",
            "Eve",
            meeting,
            Grants::default(),
            Duration::from_secs(ttl),
        )
    };
    let mut expired = claims("healthy", 0);
    expired.exp = expired.iat - 120;
    let forger = TokenIssuer::generate(KID);
    let stranger = TokenIssuer::generate("other-key");
    let good = relay.token("eve", "healthy");
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let cases: Vec<(&str, String, ErrorCode)> = vec![
        ("missing", String::new(), ErrorCode::TokenMissing),
        ("garbage", "not.a.token".into(), ErrorCode::TokenInvalid),
        (
            "expired",
            relay.issuer.issue(&expired).expect("sign"),
            ErrorCode::TokenExpired,
        ),
        (
            "wrong meeting",
            relay.token("eve", "elsewhere"),
            ErrorCode::TokenWrongMeeting,
        ),
        (
            "forged",
            forger.issue(&claims("healthy", 60)).expect("sign"),
            ErrorCode::TokenInvalid,
        ),
        (
            "unknown key",
            stranger.issue(&claims("healthy", 60)).expect("sign"),
            ErrorCode::TokenUnknownKey,
        ),
        ("tampered", parts.join("."), ErrorCode::TokenInvalid),
    ];
    for transport in TRANSPORTS {
        for (what, token, code) in &cases {
            let result = Client::connect(relay.options(transport, "healthy", token)).await;
            match result {
                Err(ClientError::Refused { code: got, message }) => {
                    assert_eq!(got, *code, "{transport:?} {what}: {message}");
                    assert!(!message.is_empty());
                }
                Err(other) => panic!("{transport:?} {what}: {other}"),
                Ok(_) => panic!("{transport:?} {what}: admitted"),
            }
        }
        pair.still_talking("bad tokens").await;
    }
    assert_eq!(relay.metric("videocall_relay_participants").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_after_join_get_errors_and_the_session_goes_on() {
    let relay = RelayProcess::start(&["--max-frame-size", "65536"]).await;
    let mut pair = HealthyPair::join(&relay).await;
    for transport in TRANSPORTS {
        let mut client = relay.join(transport, "healthy", "fuzzer").await;
        let sender = client.sender();
        let prefix = |body: Bytes| -> Bytes {
            if transport == Transport::WebSocket {
                return body;
            }
            let mut frame = BytesMut::new();
            frame.put_u32(body.len() as u32);
            frame.extend_from_slice(&body);
            frame.freeze()
        };
        let media = encode_envelope(&envelope(Body::Media(packet(
            3,
            MediaKind::Video,
            0,
            true,
            500,
        ))));
        let mut unknown = encode_envelope(&wire::Envelope {
            version: PROTOCOL_VERSION,
            body: None,
        })
        .to_vec();
        unknown.extend_from_slice(&[0xC0, 0x3E, 0x05]);
        let cases: Vec<(&str, Bytes, &[ErrorCode])> = vec![
            (
                "random bytes",
                random_bytes(3, 300).into(),
                &[
                    ErrorCode::Malformed,
                    ErrorCode::UnsupportedVersion,
                    ErrorCode::UnknownMessage,
                ],
            ),
            (
                "truncated media",
                media.slice(..media.len() - 7),
                &[ErrorCode::Malformed],
            ),
            (
                "unknown message",
                unknown.into(),
                &[ErrorCode::UnknownMessage],
            ),
            (
                "second join",
                join_frame("x", "healthy"),
                &[ErrorCode::AlreadyJoined],
            ),
            (
                "relay-only message",
                encode_envelope(&envelope(Body::Joined(wire::Joined::default()))),
                &[ErrorCode::UnknownMessage],
            ),
            (
                "media without kind",
                encode_envelope(&envelope(Body::Media(wire::Media {
                    track_id: 4,
                    ..Default::default()
                }))),
                &[ErrorCode::Malformed],
            ),
        ];
        // Oversized: over 64 KiB. On WebSocket it is one message; on WebTransport's control
        // stream the length prefix is refused and the stream is lost, so it comes last below.
        let oversized = encode_envelope(&envelope(Body::Media(packet(
            3,
            MediaKind::Video,
            1,
            true,
            70_000,
        ))));
        let mut all = cases;
        if transport == Transport::WebSocket {
            all.push((
                "oversized frame",
                oversized.clone(),
                &[ErrorCode::FrameTooLarge],
            ));
        }
        for (what, frame, expect) in all {
            sender.send_raw(prefix(frame)).await.expect("send");
            let error = wait_for_message(&mut client, WAIT, |m| match m {
                Body::Error(e) => Some(e.clone()),
                _ => None,
            })
            .await
            .unwrap_or_else(|| panic!("{transport:?} {what}: no error"));
            let code = ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified);
            assert!(
                expect.contains(&code),
                "{transport:?} {what}: {code:?} {}",
                error.message
            );
            assert!(!error.fatal, "{transport:?} {what}: should not be fatal");
            // Still joined: a ping is answered.
            sender
                .send(Body::Ping(wire::Ping {
                    nonce: 42,
                    sent_at_us: 1,
                }))
                .await
                .expect("ping");
            let pong = wait_for_message(&mut client, WAIT, |m| match m {
                Body::Pong(p) if p.nonce == 42 => Some(()),
                _ => None,
            })
            .await;
            assert!(
                pong.is_some(),
                "{transport:?} {what}: session did not go on"
            );
            pair.still_talking(what).await;
        }
        if transport == Transport::WebTransport {
            // A frame longer than the limit breaks the control stream's framing: the
            // session ends with a clear reason, and nobody else notices.
            sender.send_raw(prefix(oversized)).await.expect("send");
            let closed = wait_for(&mut client, WAIT, |e| match e {
                Event::Closed { code, reason } => Some((*code, reason.clone())),
                _ => None,
            })
            .await
            .expect("closed");
            assert_eq!(closed.0, ErrorCode::FrameTooLarge as u32, "{closed:?}");
            assert!(closed.1.contains("FRAME_TOO_LARGE"), "{closed:?}");
            pair.still_talking("oversized control frame").await;
        }
    }
    assert!(relay.metric("videocall_relay_bad_frames_total").await >= 12.0);
}

/// `people` join one after another, 100 ms apart, alternating transports, from 127.0.0.1;
/// returns how many were admitted.
async fn people_join(relay: &RelayProcess, first: usize, people: usize) -> (usize, Vec<Client>) {
    let mut clients = Vec::new();
    for i in first..first + people {
        let token = relay.token(&format!("person{i}"), "healthy");
        let transport = TRANSPORTS[i % 2];
        match Client::connect(relay.options(transport, "healthy", &token)).await {
            Ok(client) => clients.push(client),
            Err(error) => eprintln!("person{i} ({transport:?}) refused: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (clients.len(), clients)
}

/// Tasks sending one `Join` after another over fresh WebSockets from one loopback address,
/// as fast as they can, until stopped.
struct Flood {
    running: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<HashMap<Option<ErrorCode>, u32>>>,
}

impl Flood {
    /// `tasks` tasks sending `join` to `relay` from `from`.
    fn start(relay: &RelayProcess, tasks: usize, from: [u8; 4], join: Bytes) -> Flood {
        let running = Arc::new(AtomicBool::new(true));
        let tasks = (0..tasks)
            .map(|_| {
                let running = running.clone();
                let url = relay.info.websocket_url.clone();
                let join = join.clone();
                tokio::spawn(async move {
                    let mut codes: HashMap<Option<ErrorCode>, u32> = HashMap::new();
                    while running.load(Ordering::Relaxed) {
                        *codes
                            .entry(join_from(&url, from, join.clone()).await)
                            .or_default() += 1;
                    }
                    codes
                })
            })
            .collect();
        Flood { running, tasks }
    }

    /// Stops the tasks; how many joins ended how (`None`: admitted).
    async fn stop(self) -> HashMap<Option<ErrorCode>, u32> {
        self.running.store(false, Ordering::Relaxed);
        let mut codes = HashMap::new();
        for task in self.tasks {
            for (code, n) in task.await.expect("flood task") {
                *codes.entry(code).or_default() += n;
            }
        }
        codes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_joins_refuses_no_valid_join() {
    // A shared budget of 20 joins at once, 20 a second after: junk charged to it would use it
    // up in milliseconds.
    let relay = RelayProcess::start(&["--join-rate", "20", "--join-burst", "20"]).await;
    let (without_junk, _before) = people_join(&relay, 0, 10).await;

    // Eight tasks send junk joins from another address as fast as this machine allows.
    let flood = Flood::start(
        &relay,
        8,
        [127, 0, 0, 2],
        join_frame("not.a.token", "healthy"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (with_junk, _during) = people_join(&relay, 10, 10).await;
    let junk = flood.stop().await;
    let total: u32 = junk.values().sum();
    println!("people admitted: {without_junk}/10 without junk, {with_junk}/10 beside {total} junk joins ({junk:?})");
    assert_eq!(junk.get(&None), None, "junk admitted");
    assert!(total >= 200, "only {total} junk joins: not a flood");
    assert_eq!((without_junk, with_junk), (10, 10), "valid joins refused");
    // The junk address spent its refusals and was then turned away before being read; the
    // shared budget was never touched by it.
    assert!(
        junk.get(&Some(ErrorCode::RateLimited))
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(
        relay
            .metric("videocall_relay_rate_limited_total{budget=\"address\"}")
            .await
            > 0.0
    );
    assert_eq!(
        relay
            .metric("videocall_relay_rate_limited_total{budget=\"relay\"}")
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_rejoining_in_a_loop_refuses_no_one_else() {
    // A leaked token (or a client stuck in a rejoin loop) joins as fast as it can from its
    // own address, while people join. Before, every one of its joins spent the relay's
    // shared budget.
    let relay = RelayProcess::start(&["--join-rate", "20", "--join-burst", "20"]).await;
    let leaked = relay.token("leaked", "healthy");
    let rejoin_loop = Flood::start(&relay, 4, [127, 0, 0, 3], join_frame(&leaked, "healthy"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (admitted, _people) = people_join(&relay, 0, 10).await;
    let codes = rejoin_loop.stop().await;
    println!("people admitted: {admitted}/10 beside a rejoin loop ({codes:?})");
    assert_eq!(admitted, 10, "people refused beside one identity's loop");
    let limited = codes
        .get(&Some(ErrorCode::RateLimited))
        .copied()
        .unwrap_or(0);
    assert!(limited >= 50, "the loop was not held back: {codes:?}");
    assert!(
        relay
            .metric("videocall_relay_rate_limited_total{budget=\"identity\"}")
            .await
            >= 50.0
    );
    assert_eq!(
        relay
            .metric("videocall_relay_rate_limited_total{budget=\"relay\"}")
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_joins_is_rate_limited_without_hurting_the_meeting() {
    let relay = RelayProcess::start(&["--join-rate", "1", "--join-burst", "5"]).await;
    let mut pair = HealthyPair::join(&relay).await;
    let mut attempts = Vec::new();
    for i in 0..60 {
        let token = relay.token(&format!("flood{i}"), "healthy");
        let options = relay.options(Transport::WebSocket, "healthy", &token);
        attempts.push(tokio::spawn(async move { Client::connect(options).await }));
    }
    let mut limited = 0;
    let mut admitted = Vec::new();
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(client) => admitted.push(client),
            Err(ClientError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert!(
        limited >= 40,
        "only {limited} of 60 flood joins were rate limited"
    );
    assert!(
        admitted.len() <= 20,
        "{} flood joins admitted",
        admitted.len()
    );
    pair.still_talking("join flood").await;
    assert!(
        relay
            .metric("videocall_relay_join_refusals_total{code=\"ERROR_CODE_RATE_LIMITED\"}")
            .await
            >= 40.0
    );
}
