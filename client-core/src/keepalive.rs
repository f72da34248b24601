//! Keepalive: a ping every interval, the round trip from the pong, and how long the relay has
//! been silent. Both sides ping, so a relay that has said nothing for a few intervals is gone
//! even when the transport has not noticed (a QUIC peer that died sends no close, and idle
//! timeouts are long).

use videocall_protocol::wire::{envelope::Body, Ping, Pong};

/// Pings sent and heard of one connection.
#[derive(Debug, Clone)]
pub struct Keepalive {
    /// `None`: this side never pings.
    interval_ms: Option<u64>,
    silence_ms: u64,
    last_ping_ms: Option<u64>,
    /// The nonce of the latest ping sent, until its pong comes.
    awaited: Option<u64>,
    last_heard_ms: u64,
    rtt_ms: Option<u64>,
}

impl Keepalive {
    /// Pings every `interval_ms` (`None`: never); the relay counts as gone after
    /// `silence_ms` without a word. Starts at `now_ms` as if just heard.
    pub fn new(interval_ms: Option<u64>, silence_ms: u64, now_ms: u64) -> Self {
        Keepalive {
            interval_ms,
            silence_ms,
            last_ping_ms: None,
            awaited: None,
            last_heard_ms: now_ms,
            rtt_ms: None,
        }
    }

    /// Something came from the relay at `now_ms`.
    pub fn heard(&mut self, now_ms: u64) {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
    }

    /// The ping due at `now_ms`, if one is. Its `sent_at_us` is `now_ms` on the caller's
    /// clock, which the pong brings back.
    pub fn due(&mut self, now_ms: u64) -> Option<Body> {
        let interval_ms = self.interval_ms?;
        if self
            .last_ping_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < interval_ms)
        {
            return None;
        }
        self.last_ping_ms = Some(now_ms);
        self.awaited = Some(now_ms);
        Some(Body::Ping(Ping {
            nonce: now_ms,
            sent_at_us: now_ms.saturating_mul(1000),
        }))
    }

    /// A pong arrived at `now_ms`: the round trip, if it answers this keepalive's latest
    /// ping; whether it did (a pong of someone else's ping is not this keepalive's).
    pub fn pong(&mut self, pong: &Pong, now_ms: u64) -> bool {
        if self.awaited != Some(pong.nonce) {
            return false;
        }
        self.awaited = None;
        self.rtt_ms = Some(now_ms.saturating_sub(pong.sent_at_us / 1000));
        true
    }

    /// The latest round trip, in milliseconds.
    pub fn rtt_ms(&self) -> Option<u64> {
        self.rtt_ms
    }

    /// Whether the relay has been silent too long at `now_ms`.
    pub fn silent(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_heard_ms) > self.silence_ms
    }
}

/// The answer to the relay's `ping`.
pub fn pong(ping: &Ping) -> Body {
    Body::Pong(Pong {
        nonce: ping.nonce,
        sent_at_us: ping.sent_at_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_once_per_interval_from_the_first_poll() {
        let mut keepalive = Keepalive::new(Some(2000), 6000, 0);
        assert!(keepalive.due(10).is_some());
        assert!(keepalive.due(1500).is_none());
        assert!(keepalive.due(2009).is_none());
        assert!(keepalive.due(2010).is_some());
    }

    #[test]
    fn the_pong_gives_the_round_trip() {
        let mut keepalive = Keepalive::new(Some(2000), 6000, 0);
        let Some(Body::Ping(ping)) = keepalive.due(100) else {
            panic!("a ping is due");
        };
        keepalive.pong(
            &Pong {
                nonce: ping.nonce,
                sent_at_us: ping.sent_at_us,
            },
            142,
        );
        assert_eq!(keepalive.rtt_ms(), Some(42));
    }

    #[test]
    fn a_pong_of_another_ping_is_not_taken() {
        let mut keepalive = Keepalive::new(Some(2000), 6000, 0);
        keepalive.due(100);
        let other = Pong {
            nonce: 12345,
            sent_at_us: 1,
        };
        assert!(!keepalive.pong(&other, 200));
        assert_eq!(keepalive.rtt_ms(), None);
    }

    #[test]
    fn silence_counts_from_the_last_word() {
        let mut keepalive = Keepalive::new(Some(2000), 6000, 0);
        assert!(!keepalive.silent(6000));
        assert!(keepalive.silent(6001));
        keepalive.heard(5000);
        assert!(!keepalive.silent(11_000));
        assert!(keepalive.silent(11_001));
        // A late-delivered, earlier time does not set the clock back.
        keepalive.heard(1);
        assert!(keepalive.silent(11_001));
    }
}
