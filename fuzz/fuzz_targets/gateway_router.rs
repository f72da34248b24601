//! The gateway's routing state machine (`videocall_gateway::router::Router`) fed datagrams
//! from a few clients as time passes: every decision is a relay, a hold or a drop; what is
//! held stays bounded and comes out (released or expired) whole.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use videocall_gateway::router::{Decision, Router, RouterConfig};
use videocall_quic_lb::initial::{crypto_frame, seal_client_initial};

#[derive(Debug, Arbitrary)]
enum Step {
    /// A datagram as it arrived.
    Raw { from: u8, datagram: Vec<u8> },
    /// A client Initial carrying these CRYPTO bytes at this offset.
    Initial {
        from: u8,
        dcid: u8,
        offset: u16,
        crypto: Vec<u8>,
    },
    /// Time passes, then the router expires what it held too long.
    Later { ms: u16 },
}

fuzz_target!(|steps: Vec<Step>| {
    let config = RouterConfig {
        max_pending: 4,
        ..RouterConfig::default()
    };
    let mut router = Router::new(config.clone());
    let start = Instant::now();
    let mut now = start;
    let mut held = 0usize;
    for step in steps.into_iter().take(64) {
        let (from, datagram) = match step {
            Step::Raw { from, datagram } => (from, datagram),
            Step::Initial {
                from,
                dcid,
                offset,
                crypto,
            } => {
                let frames = crypto_frame(u64::from(offset), &crypto);
                let dcid = [dcid; 8];
                match seal_client_initial(&dcid, &[1, 2, 3, 4], 0, &frames) {
                    Ok(datagram) => (from, datagram),
                    Err(_) => continue,
                }
            }
            Step::Later { ms } => {
                now += Duration::from_millis(u64::from(ms));
                for (_, _, datagrams) in router.expire(now) {
                    held -= datagrams.len();
                }
                continue;
            }
        };
        let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000 + u16::from(from % 4)));
        match router.route(now, from, &datagram) {
            Decision::Held => held += 1,
            Decision::Release(_, _, released) => held -= released.len(),
            Decision::Forward(..) | Decision::Drop(_) => {}
        }
        assert!(router.pending() <= config.max_pending, "holds are bounded");
    }
    now += config.hold_timeout + Duration::from_millis(1);
    for (_, _, datagrams) in router.expire(now) {
        held -= datagrams.len();
    }
    assert_eq!(router.pending(), 0, "everything held comes out");
    assert_eq!(held, 0, "every held datagram came out once");
});
