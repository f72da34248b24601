//! The NATS bus against real `nats-server` processes: the shared one on 127.0.0.1:4222,
//! and servers of the test's own (small `max_payload`, authentication, a restart), started
//! on free loopback ports and stopped by PID.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use videocall_bus::{Appended, Bus, BusError, NatsBus, NatsOptions, Subscription};
use videocall_testkit::nats::{unique_prefix, NatsServer as Server};

const SHARED: &str = "nats://127.0.0.1:4222";
const WAIT: Duration = Duration::from_secs(5);

fn options(url: &str) -> NatsOptions {
    NatsOptions {
        url: url.to_owned(),
        max_message: 1 << 20,
        ..Default::default()
    }
}

async fn connect(url: &str) -> NatsBus {
    NatsBus::connect(options(url)).await.expect("connect")
}

async fn next(sub: &mut Subscription, within: Duration) -> Option<Bytes> {
    tokio::time::timeout(within, sub.next())
        .await
        .ok()
        .flatten()
        .map(|m| m.payload)
}

#[tokio::test]
async fn messages_cross_once_in_order_and_never_come_back_to_their_publisher() {
    let subject = unique_prefix("order");
    let (a, b) = (connect(SHARED).await, connect(SHARED).await);
    let mut on_a = a.subscribe(format!("{subject}.>")).await.expect("sub a");
    let mut on_b = b.subscribe(format!("{subject}.>")).await.expect("sub b");
    // Subscriptions reach the server before publishing starts.
    b.publish(format!("{subject}.ready"), Bytes::new())
        .await
        .expect("probe");
    assert!(next(&mut on_a, WAIT).await.is_some());
    for i in 0..500u32 {
        a.publish(
            format!("{subject}.media"),
            Bytes::from(i.to_be_bytes().to_vec()),
        )
        .await
        .expect("publish");
    }
    for i in 0..500u32 {
        let got = next(&mut on_b, WAIT).await.expect("message");
        assert_eq!(got.as_ref(), i.to_be_bytes(), "order kept");
    }
    assert!(
        next(&mut on_b, Duration::from_millis(300)).await.is_none(),
        "delivered once"
    );
    assert!(
        next(&mut on_a, Duration::from_millis(300)).await.is_none(),
        "no echo"
    );
    assert_eq!(b.counters().messages_in.load(Ordering::Relaxed), 500);
    assert_eq!(a.counters().messages_out.load(Ordering::Relaxed), 500);
}

#[tokio::test]
async fn frames_over_max_payload_are_split_and_reassembled_and_oversized_ones_refused() {
    let server = Server::start("max_payload: 4096\n", &[]);
    let (a, b) = (connect(&server.url()).await, connect(&server.url()).await);
    assert_eq!(a.max_payload(), 4096);
    let mut sub = b.subscribe("big.>".into()).await.expect("sub");
    a.publish("big.ready".into(), Bytes::new())
        .await
        .expect("probe");
    assert!(next(&mut sub, WAIT).await.is_some());
    let frame: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    // Large and small interleaved: each arrives whole and in order.
    for round in 0..5u8 {
        a.publish("big.media".into(), Bytes::from(frame.clone()))
            .await
            .expect("large");
        a.publish("big.media".into(), Bytes::from(vec![round]))
            .await
            .expect("small");
    }
    for round in 0..5u8 {
        let large = next(&mut sub, WAIT).await.expect("large arrives");
        assert_eq!(large.len(), frame.len());
        assert!(large.as_ref() == frame.as_slice(), "reassembled exactly");
        assert_eq!(next(&mut sub, WAIT).await.as_deref(), Some(&[round][..]));
    }
    let refused = a
        .publish("big.media".into(), Bytes::from(vec![0u8; 2 << 20]))
        .await;
    assert!(
        matches!(refused, Err(BusError::TooLarge { size, .. }) if size == 2 << 20),
        "{refused:?}"
    );
    assert_eq!(b.counters().incomplete.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn credentials_are_required_and_a_wrong_one_is_a_clear_error() {
    let server = Server::start("", &["--user", "relay", "--pass", "s3cret"]);
    let wrong = NatsBus::connect(NatsOptions {
        user: Some("relay".into()),
        password: Some("nope".into()),
        ..options(&server.url())
    })
    .await;
    let message = wrong.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&server.url()), "{message}");
    assert!(
        NatsBus::connect(options(&server.url())).await.is_err(),
        "no credentials, no connection"
    );
    let right = NatsBus::connect(NatsOptions {
        user: Some("relay".into()),
        password: Some("s3cret".into()),
        ..options(&server.url())
    })
    .await
    .expect("the right password connects");
    right
        .publish("auth.ok".into(), Bytes::new())
        .await
        .expect("publish");

    let token_server = Server::start("", &["--auth", "t0ken"]);
    assert!(NatsBus::connect(options(&token_server.url()))
        .await
        .is_err());
    NatsBus::connect(NatsOptions {
        token: Some("t0ken".into()),
        ..options(&token_server.url())
    })
    .await
    .expect("the token connects");
}

#[tokio::test]
async fn after_a_server_restart_messages_flow_again_within_five_seconds() {
    let mut server = Server::start("", &[]);
    let (a, b) = (connect(&server.url()).await, connect(&server.url()).await);
    let mut sub = b.subscribe("restart.>".into()).await.expect("sub");
    a.publish("restart.x".into(), Bytes::from_static(b"before"))
        .await
        .expect("publish");
    assert_eq!(next(&mut sub, WAIT).await.as_deref(), Some(&b"before"[..]));

    server.restart();
    let restarted = Instant::now();
    let mut back = None;
    while restarted.elapsed() < Duration::from_secs(10) {
        // Publishing while disconnected buffers or fails; neither stops the caller for long.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            a.publish("restart.x".into(), Bytes::from_static(b"after")),
        )
        .await;
        if next(&mut sub, Duration::from_millis(100)).await.as_deref() == Some(&b"after"[..]) {
            back = Some(restarted.elapsed());
            break;
        }
    }
    let back = back.expect("messages flow again after the restart");
    assert!(back < Duration::from_secs(5), "took {back:?}");
    assert!(a.counters().reconnects.load(Ordering::Relaxed) >= 1);
    assert!(b.counters().reconnects.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn an_nkey_authenticates_and_another_key_is_refused() {
    let user = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
        user.public_key()
    );
    let server = Server::start(&config, &[]);
    let seed = user.seed().expect("seed");
    let stranger = nkeys::KeyPair::new_user().seed().expect("seed");
    let refused = NatsBus::connect(NatsOptions {
        nkey_seed: Some(stranger),
        ..options(&server.url())
    })
    .await;
    assert!(refused.is_err(), "an unknown nkey is refused");
    let bus = NatsBus::connect(NatsOptions {
        nkey_seed: Some(seed),
        ..options(&server.url())
    })
    .await
    .expect("the server's nkey connects");
    bus.publish("nkey.ok".into(), Bytes::new())
        .await
        .expect("publish");
}

#[tokio::test]
async fn tls_with_the_servers_ca_carries_messages_and_an_untrusted_server_is_refused() {
    let files = tempfile::tempdir().expect("dir");
    let pki = videocall_testkit::pki::write_test_pki(files.path());
    let (ca_pem, cert_pem, key_pem) = (pki.ca, pki.cert, pki.key);
    let config = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        cert_pem.display(),
        key_pem.display()
    );
    let server = Server::start(&config, &[]);
    let tls = |ca: Option<std::path::PathBuf>| NatsOptions {
        tls_ca: ca,
        require_tls: true,
        ..options(&format!("tls://127.0.0.1:{}", server.port()))
    };
    assert!(
        NatsBus::connect(tls(None)).await.is_err(),
        "a server whose CA is not trusted is refused"
    );
    let (a, b) = (
        NatsBus::connect(tls(Some(ca_pem.clone())))
            .await
            .expect("a over TLS"),
        NatsBus::connect(tls(Some(ca_pem)))
            .await
            .expect("b over TLS"),
    );
    let mut sub = b.subscribe("tls.>".into()).await.expect("sub");
    a.publish("tls.x".into(), Bytes::from_static(b"secret"))
        .await
        .expect("publish");
    assert_eq!(next(&mut sub, WAIT).await.as_deref(), Some(&b"secret"[..]));
}

#[tokio::test]
async fn the_log_orders_appends_for_every_follower_and_takes_one_of_two_conditional_ones() {
    let prefix = unique_prefix("log");
    let stream = format!("T_{}", prefix.replace(['.', '-'], "_").to_uppercase());
    let log_options = |url: &str| NatsOptions {
        log_stream: stream.clone(),
        log_subjects: format!("{prefix}.>"),
        ..options(url)
    };
    let a = NatsBus::connect(log_options(SHARED)).await.expect("a");
    let b = NatsBus::connect(log_options(SHARED)).await.expect("b");
    let commits = format!("{prefix}.m.c");
    let packages = format!("{prefix}.m.k");
    // Something before anyone follows: a follower starts from each subject's last entry.
    let first = a
        .append(commits.clone(), Some(0), Bytes::from_static(b"found"))
        .await
        .expect("append");
    let Appended::At(first) = first else {
        panic!("the first conditional append on an empty subject is taken: {first:?}")
    };
    let mut on_a = a.follow(format!("{prefix}.m.>")).await.expect("follow a");
    let mut on_b = b.follow(format!("{prefix}.m.>")).await.expect("follow b");
    let kp = b
        .append(packages.clone(), None, Bytes::from_static(b"kp"))
        .await
        .expect("kp");
    // Two commits built on the founding: the first is taken, the second refused with the
    // sequence of the one that won.
    let won = a
        .append(commits.clone(), Some(first), Bytes::from_static(b"a"))
        .await
        .expect("a");
    let lost = b
        .append(commits.clone(), Some(first), Bytes::from_static(b"b"))
        .await
        .expect("b");
    let Appended::At(won) = won else {
        panic!("{won:?}")
    };
    assert_eq!(lost, Appended::Conflict { last: won });
    assert_eq!(
        b.append(format!("{prefix}.other.c"), Some(5), Bytes::new())
            .await
            .expect("empty subject"),
        Appended::Conflict { last: 0 }
    );
    let Appended::At(kp) = kp else {
        panic!("{kp:?}")
    };
    for follower in [&mut on_a, &mut on_b] {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let entry = tokio::time::timeout(WAIT, follower.next())
                .await
                .expect("in time")
                .expect("entry");
            seen.push((entry.sequence, entry.payload));
        }
        assert_eq!(
            seen,
            vec![
                (first, Bytes::from_static(b"found")),
                (kp, Bytes::from_static(b"kp")),
                (won, Bytes::from_static(b"a")),
            ],
            "every follower sees the same order, and never the refused append"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_a.next())
            .await
            .is_err(),
        "nothing more"
    );
    // The shared server keeps no leftovers of the test.
    let client = async_nats::connect(SHARED).await.expect("connect");
    async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await
        .expect("delete the test's stream");
}

#[tokio::test]
async fn a_log_append_without_jetstream_is_an_error_not_a_hang() {
    // A server of the test's own without JetStream.
    let server = Server::start("", &[]);
    let bus = NatsBus::connect(NatsOptions {
        log_subjects: "nojs.>".into(),
        ..options(&server.url())
    })
    .await
    .expect("connect");
    let started = Instant::now();
    let result = bus
        .append("nojs.m.c".into(), Some(0), Bytes::from_static(b"x"))
        .await;
    assert!(matches!(result, Err(BusError::Log { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // Plain messages still flow.
    let mut sub = bus.subscribe("nojs.>".into()).await.expect("sub");
    let other = connect(&server.url()).await;
    other
        .publish("nojs.x".into(), Bytes::from_static(b"y"))
        .await
        .expect("publish");
    assert!(next(&mut sub, WAIT).await.is_some());
}
