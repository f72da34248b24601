use super::*;
use rand::{RngCore, SeedableRng};
use videocall_quic_lb::initial::{crypto_frame, seal_client_initial};

fn client_hello(name: &str) -> Vec<u8> {
    videocall_quic_lb::client_hello::real_client_hello(name).unwrap()
}

const CLIENT_DCID: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];

fn client() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

fn router() -> Router {
    Router::new(RouterConfig {
        default_server: ServerId(7),
        ..RouterConfig::default()
    })
}

#[test]
fn a_first_initial_goes_to_the_relay_its_server_name_names() {
    let mut router = router();
    let hello = client_hello("relay-3.meet.example.org");
    let datagram = seal_client_initial(&CLIENT_DCID, &[9], 0, &crypto_frame(0, &hello)).unwrap();
    let now = Instant::now();
    assert_eq!(
        router.route(now, client(), &datagram),
        Decision::Forward(ServerId(3), RoutedBy::ServerName)
    );
    // A retransmission, or the same client's 0-RTT, follows it.
    assert_eq!(
        router.route(now, client(), &datagram),
        Decision::Forward(ServerId(3), RoutedBy::Remembered)
    );
}

#[test]
fn names_that_name_no_relay_go_to_the_default_relay() {
    let mut router = router();
    for (i, name) in [
        "meet.example.org",
        "relay-x.example.org",
        "relay-99999.example.org",
        "localhost",
    ]
    .into_iter()
    .enumerate()
    {
        let dcid = [i as u8; 8];
        let hello = client_hello(name);
        let datagram = seal_client_initial(&dcid, &[], 0, &crypto_frame(0, &hello)).unwrap();
        assert_eq!(
            router.route(Instant::now(), client(), &datagram),
            Decision::Forward(ServerId(7), RoutedBy::Default),
            "{name}"
        );
    }
}

#[test]
fn a_client_hello_over_two_datagrams_in_shuffled_frames_is_held_then_released() {
    let mut router = router();
    let hello = client_hello("relay-2.localhost");
    // First datagram: a few bytes of the start, nowhere near the name.
    let first = seal_client_initial(&CLIENT_DCID, &[], 0, &crypto_frame(0, &hello[..10])).unwrap();
    // Second: the rest, as two frames in reverse order.
    let mid = 10 + (hello.len() - 10) / 2;
    let mut frames = crypto_frame(mid as u64, &hello[mid..]);
    frames.extend(crypto_frame(10, &hello[10..mid]));
    let second = seal_client_initial(&CLIENT_DCID, &[], 1, &frames).unwrap();
    let now = Instant::now();
    assert_eq!(router.route(now, client(), &first), Decision::Held);
    assert_eq!(router.pending(), 1);
    assert_eq!(
        router.route(now, client(), &second),
        Decision::Release(ServerId(2), RoutedBy::ServerName, vec![first])
    );
    assert_eq!(router.pending(), 0);
}

#[test]
fn a_handshake_that_never_completes_is_released_to_the_default_relay() {
    let mut router = router();
    let hello = client_hello("relay-2.localhost");
    let first = seal_client_initial(&CLIENT_DCID, &[], 0, &crypto_frame(0, &hello[..10])).unwrap();
    let start = Instant::now();
    assert_eq!(router.route(start, client(), &first), Decision::Held);
    assert!(router.expire(start + Duration::from_millis(100)).is_empty());
    let released = router.expire(start + Duration::from_secs(1));
    assert_eq!(released, vec![(client(), ServerId(7), vec![first.clone()])]);
    assert_eq!(router.pending(), 0);
}

#[test]
fn a_client_that_keeps_sending_fragments_is_cut_off() {
    let mut router = router();
    let now = Instant::now();
    for n in 0..MAX_HELD as u32 {
        // Pieces far from offset 0 never complete anything.
        let datagram = seal_client_initial(
            &CLIENT_DCID,
            &[],
            n,
            &crypto_frame(100 + u64::from(n), b"x"),
        )
        .unwrap();
        assert_eq!(router.route(now, client(), &datagram), Decision::Held);
    }
    let one_more = seal_client_initial(&CLIENT_DCID, &[], 99, &crypto_frame(500, b"x")).unwrap();
    assert_eq!(
        router.route(now, client(), &one_more),
        Decision::Drop(DropReason::HoldFull)
    );
    // What was held is not lost: it goes to the default relay when the hold times out.
    assert_eq!(router.pending(), 1);
    let released = router.expire(now + Duration::from_secs(1));
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].2.len(), MAX_HELD);
}

/// Found by the `gateway_router` fuzz target: a second Initial whose CRYPTO data lies past
/// the 16 KiB a ClientHello may take made the router forget the first, already held.
#[test]
fn a_bad_initial_after_a_held_one_leaves_the_held_one_to_expire() {
    let mut router = router();
    let now = Instant::now();
    let first = seal_client_initial(&CLIENT_DCID, &[], 0, &crypto_frame(4983, b"")).unwrap();
    assert_eq!(router.route(now, client(), &first), Decision::Held);
    let beyond = seal_client_initial(&CLIENT_DCID, &[], 1, &crypto_frame(31488, b"x")).unwrap();
    assert_eq!(
        router.route(now, client(), &beyond),
        Decision::Drop(DropReason::BadClientHello)
    );
    assert_eq!(router.pending(), 1);
    // The handshake goes on: the whole ClientHello arrives and everything held follows it.
    let hello = client_hello("relay-2.localhost");
    let whole = seal_client_initial(&CLIENT_DCID, &[], 2, &crypto_frame(0, &hello)).unwrap();
    assert_eq!(
        router.route(now, client(), &whole),
        Decision::Release(ServerId(2), RoutedBy::ServerName, vec![first.clone()])
    );
    assert_eq!(router.pending(), 0);
    // Or nothing more arrives, and the held Initial goes to the default relay.
    let mut router = self::router();
    assert_eq!(router.route(now, client(), &first), Decision::Held);
    assert_eq!(
        router.route(now, client(), &beyond),
        Decision::Drop(DropReason::BadClientHello)
    );
    assert_eq!(
        router.expire(now + Duration::from_secs(1)),
        vec![(client(), ServerId(7), vec![first])]
    );
}

#[test]
fn packets_to_relay_issued_ids_route_by_the_id() {
    let mut router = router();
    let issued = cid::encode(ServerId(4), [1, 2, 3, 4, 5]);
    let mut short = vec![0x41];
    short.extend_from_slice(&issued);
    short.extend_from_slice(&[0u8; 30]);
    assert_eq!(
        router.route(Instant::now(), client(), &short),
        Decision::Forward(ServerId(4), RoutedBy::ConnectionId)
    );
    // The client's second Initial is addressed to the relay's ID but still encrypted with
    // keys from its first one.
    let hello = client_hello("relay-4.localhost");
    let mut later = seal_client_initial(&CLIENT_DCID, &[], 1, &crypto_frame(0, &hello)).unwrap();
    later[6..14].copy_from_slice(&issued);
    assert_eq!(
        router.route(Instant::now(), client(), &later),
        Decision::Forward(ServerId(4), RoutedBy::ConnectionId)
    );
    // A handshake packet.
    let mut handshake = vec![0xe0, 0, 0, 0, 1, 8];
    handshake.extend_from_slice(&issued);
    handshake.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        router.route(Instant::now(), client(), &handshake),
        Decision::Forward(ServerId(4), RoutedBy::ConnectionId)
    );
}

#[test]
fn garbage_is_dropped_with_a_reason() {
    let mut router = router();
    let now = Instant::now();
    assert_eq!(
        router.route(now, client(), &[]),
        Decision::Drop(DropReason::Malformed)
    );
    assert_eq!(
        router.route(now, client(), &[0x41, 1, 2]),
        Decision::Drop(DropReason::Malformed)
    );
    let mut foreign = vec![0x41];
    foreign.extend_from_slice(&[0xff; 40]);
    assert_eq!(
        router.route(now, client(), &foreign),
        Decision::Drop(DropReason::UnroutableCid)
    );
    let hello = client_hello("relay-1.localhost");
    let datagram = seal_client_initial(&CLIENT_DCID, &[], 0, &crypto_frame(0, &hello)).unwrap();
    assert_eq!(
        router.route(now, client(), &datagram[..600]),
        Decision::Drop(DropReason::SmallInitial)
    );
    let not_a_hello =
        seal_client_initial(&CLIENT_DCID, &[], 0, &crypto_frame(0, &[2, 0, 0, 1, 0])).unwrap();
    assert_eq!(
        router.route(now, client(), &not_a_hello),
        Decision::Drop(DropReason::BadClientHello)
    );
    // Random bytes dressed as a full-size Initial do not decrypt and carry no relay id.
    let mut fake = datagram.clone();
    for byte in fake.iter_mut().skip(30) {
        *byte = byte.wrapping_mul(31).wrapping_add(7);
    }
    assert_eq!(
        router.route(now, client(), &fake),
        Decision::Drop(DropReason::UnroutableCid)
    );
}

#[test]
fn server_names_are_read_strictly() {
    let router = router();
    assert_eq!(router.server_named("relay-0.localhost"), Some(ServerId(0)));
    assert_eq!(router.server_named("relay-12"), Some(ServerId(12)));
    assert_eq!(router.server_named("relay-.localhost"), None);
    assert_eq!(router.server_named("relay-+1.localhost"), None);
    assert_eq!(router.server_named("xrelay-1.localhost"), None);
    assert_eq!(router.server_named("relay-70000.localhost"), None);
}

/// Random and mutated datagrams (a seeded random stream) never panic the router and
/// never make it hold more than its limits allow.
#[test]
fn random_and_mutated_datagrams_never_panic() {
    let mut router = Router::new(RouterConfig {
        max_pending: 64,
        ..RouterConfig::default()
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut next = move || rng.next_u64();
    let hello = client_hello("relay-5.localhost");
    let genuine = seal_client_initial(&CLIENT_DCID, &[1], 0, &crypto_frame(0, &hello)).unwrap();
    let now = Instant::now();
    for round in 0..20_000u32 {
        let from: SocketAddr = ([127, 0, 0, 1], (next() % 60_000) as u16 + 1).into();
        let datagram: Vec<u8> = match round % 3 {
            // Pure noise of any length, with the header bits that matter biased on.
            0 => {
                let len = (next() % 1_400) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if let Some(first) = bytes.first_mut() {
                    *first |= 0xc0;
                }
                bytes
            }
            // A genuine Initial with a few bytes flipped.
            1 => {
                let mut bytes = genuine.clone();
                for _ in 0..(1 + next() % 4) {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= (next() as u8) | 1;
                }
                bytes
            }
            // A genuine Initial cut short or padded with noise.
            _ => {
                let mut bytes = genuine.clone();
                bytes.truncate((next() as usize) % (bytes.len() + 1));
                bytes.extend((0..next() % 64).map(|_| next() as u8));
                bytes
            }
        };
        let _ = router.route(now, from, &datagram);
        assert!(router.pending() <= 64);
    }
    let released = router.expire(now + Duration::from_secs(1));
    assert!(released.iter().all(|(_, _, held)| held.len() <= MAX_HELD));
    assert_eq!(router.pending(), 0);
}
