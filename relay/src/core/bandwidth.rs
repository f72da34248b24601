//! Bandwidth estimation per subscriber: what the link to one participant carries, from what
//! its transport reports every [`SAMPLE_INTERVAL_MS`] ([`LinkSample`]: bytes delivered and
//! lost, bytes waiting, round-trip times).
//!
//! A subscriber starts unlimited (`None`: it gets what its tiles ask for). An interval is
//! congested when more than [`LOSS_FRACTION`] of what was sent was lost, when the round trip
//! grew [`QUEUE_DELAY_MS`] over its minimum (a queue on the path), or when the bytes waiting
//! here (at least [`MIN_BACKLOG_BYTES`], two samples running: one keyframe is a burst, not a
//! slow link) would take more than [`BACKLOG_MS`] to leave at the rate they leave, or grew
//! [`BACKLOG_GROWTHS`] intervals in a row (more comes than leaves). Then the estimate
//! becomes [`BACKOFF`] of what was delivered over the last [`RATE_WINDOW_MS`] (not the interval
//! alone: right after a loss QUIC's window is cut and it sends a fraction of what the link
//! carries for a round trip or two), and it holds for a while: a second after a first congestion, twice as long
//! each time a rise ends in congestion again soon after, up to [`MAX_HOLD_MS`]. After the
//! hold it rises by [`RISE`] per interval; a rise past the next layer's cost is the probe (the
//! layer is sent, and either fits or congests), and past [`UNLIMITED_BPS`] the subscriber is
//! unlimited again.
//!
//! The congestion window over the round trip is no estimate for the same reason: right after a
//! loss the window is cut and the round trip still holds the queue, so it reads a fraction of
//! what the link carries (a subscriber on a 1 Mbit/s link measured 77 kbit/s that way, and its
//! video paused).
//!
//! Pure: samples in, an estimate out.

use std::collections::VecDeque;

/// How often a transport is sampled.
pub const SAMPLE_INTERVAL_MS: u64 = 200;
/// The delivery rate is measured over this long.
pub const RATE_WINDOW_MS: u64 = 1_000;
/// Lost bytes over sent bytes in an interval that mean congestion (with at least
/// [`MIN_LOST_BYTES`]).
pub const LOSS_FRACTION: f64 = 0.05;
/// Fewer lost bytes than this in an interval are noise, whatever the fraction.
pub const MIN_LOST_BYTES: u64 = 2_400;
/// Round trip over its minimum that means a queue on the path.
pub const QUEUE_DELAY_MS: u64 = 100;
/// What waits here, in time at the delivery rate, that means the link does not keep up.
pub const BACKLOG_MS: u64 = 250;
/// Fewer bytes waiting than this are no backlog, whatever the rate.
pub const MIN_BACKLOG_BYTES: u64 = 8 * 1024;
/// Intervals in a row in which the backlog grew that mean the link does not keep up (one
/// large keyframe grows it once).
pub const BACKLOG_GROWTHS: u32 = 2;
/// The estimate after congestion, as a share of what was delivered.
pub const BACKOFF: f64 = 0.85;
/// Growth of the estimate per uncongested interval after the hold.
pub const RISE: f64 = 1.06;
/// The first hold after congestion.
pub const FIRST_HOLD_MS: u64 = 1_000;
/// The longest hold (a link that fails every probe is probed this often).
pub const MAX_HOLD_MS: u64 = 16_000;
/// A congestion this soon after the last hold ended means the rise failed: the hold doubles.
pub const FAILED_RISE_MS: u64 = 5_000;
/// The lowest estimate (audio always fits).
pub const FLOOR_BPS: u64 = 64_000;
/// An estimate past this is no limit.
pub const UNLIMITED_BPS: u64 = 100_000_000;

/// What a transport knows of its link to one participant at one moment. Byte counts are
/// totals since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkSample {
    /// When it was taken.
    pub at_ms: u64,
    /// Bytes that reached the participant (acknowledged, or at least handed on).
    pub delivered_bytes: u64,
    /// Bytes sent, with those lost since (QUIC; 0 where loss is not seen).
    pub sent_bytes: u64,
    /// Bytes lost on the way (QUIC; 0 where loss is not seen).
    pub lost_bytes: u64,
    /// Bytes queued for the participant here, not yet handed to the transport.
    pub backlog_bytes: u64,
    /// Smoothed round trip, when the transport measures it.
    pub rtt_ms: Option<f64>,
    /// The least round trip seen.
    pub min_rtt_ms: Option<f64>,
}

/// Why an interval was congested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// Packets were lost.
    Loss,
    /// The round trip grew: a queue on the path.
    Delay,
    /// What waits here does not leave fast enough.
    Backlog,
}

/// One subscriber's estimate.
#[derive(Debug, Clone, Default)]
pub struct Estimator {
    last: Option<LinkSample>,
    /// Times and delivered totals of the samples within [`RATE_WINDOW_MS`].
    delivered: VecDeque<(u64, u64)>,
    estimate_bps: Option<f64>,
    hold_ms: u64,
    hold_until_ms: u64,
    last_backlog: u64,
    /// Intervals in a row in which the backlog grew.
    backlog_growths: u32,
}

impl Estimator {
    /// The estimate in bits per second (`None`: no limit seen).
    pub fn estimate_bps(&self) -> Option<u64> {
        self.estimate_bps.map(|e| e as u64)
    }

    /// Takes a sample; returns why its interval was congested, if it was. Samples closer
    /// than half an interval to the last are ignored.
    pub fn sample(&mut self, now: LinkSample) -> Option<Congestion> {
        let Some(last) = self.last else {
            self.last = Some(now);
            self.delivered.push_back((now.at_ms, now.delivered_bytes));
            return None;
        };
        let elapsed_ms = now.at_ms.saturating_sub(last.at_ms);
        if elapsed_ms < SAMPLE_INTERVAL_MS / 2 {
            return None;
        }
        self.last = Some(now);
        self.delivered.push_back((now.at_ms, now.delivered_bytes));
        while self
            .delivered
            .get(1)
            .is_some_and(|&(at, _)| now.at_ms.saturating_sub(at) >= RATE_WINDOW_MS)
        {
            self.delivered.pop_front();
        }
        let rate_bps = match self.delivered.front() {
            Some(&(at, bytes)) if at < now.at_ms => {
                now.delivered_bytes.saturating_sub(bytes) as f64 * 8_000.0 / (now.at_ms - at) as f64
            }
            _ => 0.0,
        };
        self.backlog_growths = if now.backlog_bytes > self.last_backlog {
            self.backlog_growths + 1
        } else {
            0
        };
        let congestion = congestion(
            &last,
            &now,
            rate_bps,
            self.last_backlog,
            self.backlog_growths,
        );
        self.last_backlog = now.backlog_bytes;
        match congestion {
            Some(_) => self.congested(now, rate_bps),
            None => self.rise(now.at_ms),
        }
        congestion
    }

    fn congested(&mut self, now: LinkSample, rate_bps: f64) {
        let lowered = (rate_bps * BACKOFF).max(FLOOR_BPS as f64);
        self.estimate_bps = Some(self.estimate_bps.map_or(lowered, |e| e.min(lowered)));
        if now.at_ms >= self.hold_until_ms {
            // A new congestion, not the same one going on.
            let failed_rise = self.hold_ms > 0 && now.at_ms < self.hold_until_ms + FAILED_RISE_MS;
            self.hold_ms = if failed_rise {
                (self.hold_ms * 2).min(MAX_HOLD_MS)
            } else {
                FIRST_HOLD_MS
            };
        }
        self.hold_until_ms = now.at_ms + self.hold_ms;
    }

    fn rise(&mut self, now_ms: u64) {
        if now_ms < self.hold_until_ms {
            return;
        }
        if let Some(estimate) = self.estimate_bps {
            let risen = estimate * RISE;
            self.estimate_bps = (risen < UNLIMITED_BPS as f64).then_some(risen);
        }
    }
}

fn congestion(
    last: &LinkSample,
    now: &LinkSample,
    rate_bps: f64,
    last_backlog: u64,
    backlog_growths: u32,
) -> Option<Congestion> {
    let sent = now.sent_bytes.saturating_sub(last.sent_bytes);
    let lost = now.lost_bytes.saturating_sub(last.lost_bytes);
    if lost >= MIN_LOST_BYTES && lost as f64 > sent as f64 * LOSS_FRACTION {
        return Some(Congestion::Loss);
    }
    if let (Some(rtt), Some(min)) = (now.rtt_ms, now.min_rtt_ms) {
        if rtt - min > QUEUE_DELAY_MS as f64 {
            return Some(Congestion::Delay);
        }
    }
    let backlog = now.backlog_bytes;
    if backlog >= MIN_BACKLOG_BYTES {
        let drain_ms = backlog as f64 * 8_000.0 / rate_bps.max(1.0);
        let slow = drain_ms > BACKLOG_MS as f64
            && backlog >= last_backlog
            && last_backlog >= MIN_BACKLOG_BYTES;
        if slow || backlog_growths >= BACKLOG_GROWTHS {
            return Some(Congestion::Backlog);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that delivers `rate_bps` for `ms`, sampled every interval from `start`.
    struct Link {
        sample: LinkSample,
    }

    impl Link {
        fn new() -> Self {
            Link {
                sample: LinkSample {
                    rtt_ms: Some(20.0),
                    min_rtt_ms: Some(20.0),
                    ..LinkSample::default()
                },
            }
        }

        /// One interval delivering `rate_bps`, losing `lost` bytes, at round trip `rtt_ms`.
        fn step(&mut self, rate_bps: u64, lost: u64, rtt_ms: f64, backlog: u64) -> LinkSample {
            let bytes = rate_bps * SAMPLE_INTERVAL_MS / 8_000;
            let s = &mut self.sample;
            s.at_ms += SAMPLE_INTERVAL_MS;
            s.delivered_bytes += bytes;
            s.sent_bytes += bytes + lost;
            s.lost_bytes += lost;
            s.rtt_ms = Some(rtt_ms);
            s.backlog_bytes = backlog;
            *s
        }
    }

    /// An estimator that has seen a second of a link delivering 1 Mbit/s.
    fn started() -> (Estimator, Link) {
        let mut estimator = Estimator::default();
        let mut link = Link::new();
        estimator.sample(link.sample);
        for _ in 0..6 {
            assert_eq!(estimator.sample(link.step(1_000_000, 0, 20.0, 0)), None);
        }
        (estimator, link)
    }

    #[test]
    fn a_link_that_keeps_up_stays_unlimited() {
        let (mut e, mut link) = started();
        for _ in 0..50 {
            assert_eq!(e.sample(link.step(3_000_000, 100, 21.0, 4_000)), None);
        }
        assert_eq!(e.estimate_bps(), None);
    }

    #[test]
    fn loss_lowers_the_estimate_to_what_got_through() {
        let (mut e, mut link) = started();
        // 1 Mbit/s delivered, 20 % lost.
        let got = e.sample(link.step(1_000_000, 6_250, 20.0, 0));
        assert_eq!(got, Some(Congestion::Loss));
        assert_eq!(e.estimate_bps(), Some(850_000));
        // Little loss is noise.
        let (mut e, mut link) = started();
        assert_eq!(e.sample(link.step(1_000_000, 1_200, 20.0, 0)), None);
    }

    #[test]
    fn a_queue_on_the_path_lowers_it() {
        let (mut e, mut link) = started();
        assert_eq!(
            e.sample(link.step(1_000_000, 0, 180.0, 0)),
            Some(Congestion::Delay)
        );
        assert_eq!(e.estimate_bps(), Some(850_000));
        // The queue drains: the round trip comes down and the estimate holds.
        assert_eq!(e.sample(link.step(1_000_000, 0, 90.0, 0)), None);
        assert_eq!(e.estimate_bps(), Some(850_000));
        // Right after a loss QUIC sends little for a while: the estimate is what the last
        // second delivered, not that interval alone.
        let (mut e, mut link) = started();
        e.sample(link.step(200_000, 5_000, 20.0, 0));
        assert_eq!(e.estimate_bps(), Some(714_000));
    }

    #[test]
    fn a_growing_backlog_here_lowers_it() {
        let (mut e, mut link) = started();
        // 500 kbit/s leaves now (900 over the last second); 64 kB wait (half a second at
        // that rate): a burst, once; again the next time: a slow link.
        assert_eq!(e.sample(link.step(500_000, 0, 20.0, 64_000)), None);
        assert_eq!(
            e.sample(link.step(500_000, 0, 20.0, 64_000)),
            Some(Congestion::Backlog)
        );
        assert_eq!(e.estimate_bps(), Some(680_000));
        // Draining: not congested, though something still waits.
        assert_eq!(e.sample(link.step(500_000, 0, 20.0, 30_000)), None);
        // A small backlog is none.
        let (mut e, mut link) = started();
        assert_eq!(e.sample(link.step(50_000, 0, 20.0, 4_000)), None);
        assert_eq!(e.sample(link.step(50_000, 0, 20.0, 6_000)), None);
        assert_eq!(e.sample(link.step(50_000, 0, 20.0, 8_000)), None);
        // One that leaves in time, but grows twice in a row.
        let (mut e, mut link) = started();
        assert_eq!(e.sample(link.step(1_000_000, 0, 20.0, 17_000)), None);
        assert_eq!(
            e.sample(link.step(1_000_000, 0, 20.0, 20_000)),
            Some(Congestion::Backlog)
        );
        // A burst that grew it once and drains is none.
        let (mut e, mut link) = started();
        assert_eq!(e.sample(link.step(1_000_000, 0, 20.0, 20_000)), None);
        assert_eq!(e.sample(link.step(1_000_000, 0, 20.0, 4_000)), None);
    }

    #[test]
    fn after_a_hold_it_rises_back_to_unlimited() {
        let (mut e, mut link) = started();
        e.sample(link.step(1_000_000, 10_000, 20.0, 0));
        let low = e.estimate_bps().expect("limited");
        // Held for a second.
        for _ in 0..(FIRST_HOLD_MS / SAMPLE_INTERVAL_MS - 1) {
            e.sample(link.step(800_000, 0, 20.0, 0));
        }
        assert_eq!(e.estimate_bps(), Some(low));
        e.sample(link.step(800_000, 0, 20.0, 0));
        assert_eq!(e.estimate_bps(), Some((low as f64 * RISE) as u64));
        // Rising, it doubles in about 2.4 s, and is unlimited past 100 Mbit/s.
        let mut intervals = 1;
        while e.estimate_bps().is_some() {
            e.sample(link.step(800_000, 0, 20.0, 0));
            intervals += 1;
            assert!(intervals < 200);
        }
        assert!(intervals > 70, "{intervals}");
    }

    #[test]
    fn a_rise_that_congests_again_soon_doubles_the_hold_up_to_the_most() {
        let (mut e, mut link) = started();
        let mut holds = Vec::new();
        for _ in 0..8 {
            e.sample(link.step(1_000_000, 10_000, 20.0, 0));
            let low = e.estimate_bps();
            let mut held = 0;
            while e.estimate_bps() == low {
                e.sample(link.step(800_000, 0, 20.0, 0));
                held += SAMPLE_INTERVAL_MS;
            }
            holds.push(held);
        }
        assert_eq!(
            holds,
            vec![1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000, 16_000]
        );
        // A congestion long after the last: the first hold again.
        for _ in 0..(FAILED_RISE_MS / SAMPLE_INTERVAL_MS + 1) {
            e.sample(link.step(800_000, 0, 20.0, 0));
        }
        e.sample(link.step(1_000_000, 10_000, 20.0, 0));
        let low = e.estimate_bps();
        let mut held = 0;
        while e.estimate_bps() == low {
            e.sample(link.step(800_000, 0, 20.0, 0));
            held += SAMPLE_INTERVAL_MS;
        }
        assert_eq!(held, FIRST_HOLD_MS);
    }

    #[test]
    fn congestion_going_on_extends_the_hold_without_doubling_it() {
        let (mut e, mut link) = started();
        for _ in 0..10 {
            e.sample(link.step(1_000_000, 10_000, 20.0, 0));
        }
        let low = e.estimate_bps();
        let mut held = 0;
        while e.estimate_bps() == low {
            e.sample(link.step(800_000, 0, 20.0, 0));
            held += SAMPLE_INTERVAL_MS;
        }
        assert_eq!(held, FIRST_HOLD_MS);
    }

    #[test]
    fn nonsense_samples_do_not_panic_or_go_below_the_floor() {
        let mut e = Estimator::default();
        let mut s = LinkSample {
            at_ms: 1_000,
            delivered_bytes: 5_000,
            ..Default::default()
        };
        e.sample(s);
        // Counters going backwards, no time passing, a zero round trip.
        s.delivered_bytes = 0;
        assert_eq!(e.sample(s), None);
        s.at_ms += 1_000;
        s.lost_bytes = 1_000_000;
        s.rtt_ms = Some(0.0);
        assert_eq!(e.sample(s), Some(Congestion::Loss));
        assert_eq!(e.estimate_bps(), Some(FLOOR_BPS));
    }
}
