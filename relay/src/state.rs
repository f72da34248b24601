//! State shared by every connection of one relay.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::config::RelayConfig;
use crate::meeting::Meetings;
use crate::metrics::Metrics;
use crate::participant::ParticipantId;
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, Draining};
use videocall_token::TokenVerifier;

/// Everything connections of one relay share.
pub struct RelayState {
    /// Configuration the relay started with.
    pub config: RelayConfig,
    /// Trusted token keys; replaced whole when the control plane rotates keys.
    pub verifier: ArcSwap<TokenVerifier>,
    /// Live meetings.
    pub meetings: Meetings,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Fires when the relay stops: every session ends.
    pub shutdown: CancellationToken,
    /// Fires when a drain starts.
    pub drain: CancellationToken,
    draining: AtomicBool,
    /// Meeting id -> when it ended (Unix seconds), from the control plane.
    ended: Mutex<HashMap<String, u64>>,
    join_limiter: DefaultDirectRateLimiter,
    next_id: AtomicU64,
    epoch: Instant,
}

impl RelayState {
    /// State for `config` with `verifier`'s keys.
    pub fn new(config: RelayConfig, verifier: TokenVerifier, metrics: Metrics) -> Self {
        let rate =
            NonZeroU32::new(config.limits.join_rate_per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.limits.join_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        // Ids start at a time-derived offset so ids of a restarted relay do not repeat.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        RelayState {
            meetings: Meetings::new(metrics.clone()),
            metrics,
            verifier: ArcSwap::from_pointee(verifier),
            ended: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            drain: CancellationToken::new(),
            draining: AtomicBool::new(false),
            join_limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            next_id: AtomicU64::new((seed & 0xFFFF_FFFF) << 16 | 1),
            epoch: Instant::now(),
            config,
        }
    }

    /// Milliseconds on the relay's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A fresh participant id.
    pub fn next_participant_id(&self) -> ParticipantId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes one join from the rate budget.
    pub fn take_join_permit(&self) -> bool {
        self.join_limiter.check().is_ok()
    }

    /// Whether `meeting` ended at or after a token issued at `issued_at` (Unix seconds).
    pub fn ended_before(&self, meeting: &str, issued_at: u64) -> bool {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended.get(meeting).is_some_and(|&at| issued_at <= at)
    }

    /// Records the meetings the control plane says have ended (replacing the last list)
    /// and disconnects everyone still in them. Returns how many were disconnected.
    pub fn end_meetings(&self, ended: HashMap<String, u64>) -> usize {
        let mut closed = 0;
        for id in ended.keys() {
            if let Some(meeting) = self.meetings.get(id) {
                for participant in meeting.participants() {
                    participant.close(crate::participant::CloseReason::error(
                        videocall_protocol::wire::LeaveReason::MeetingEnded,
                        videocall_protocol::wire::ErrorCode::MeetingEnded,
                        "the meeting has ended",
                    ));
                    closed += 1;
                }
            }
        }
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = ended;
        closed
    }

    /// Whether the relay refuses new joins.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stops admitting and tells every participant to move. Returns false if already draining.
    pub fn start_drain(&self) -> bool {
        if self.draining.swap(true, Ordering::AcqRel) {
            return false;
        }
        let deadline_ms =
            (self.config.timing.drain_timeout_secs * 1000).min(u32::MAX as u64) as u32;
        let frame = encode_length_prefixed(&envelope(Body::Draining(Draining {
            deadline_ms,
            redirect_url: String::new(),
        })));
        for meeting in self.meetings.all() {
            meeting.broadcast(0, &frame);
        }
        tracing::info!(
            meetings = self.meetings.count(),
            "drain started: refusing new joins"
        );
        self.drain.cancel();
        true
    }
}
