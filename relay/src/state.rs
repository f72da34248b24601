//! What every connection and task of one running relay shares: the core, and the tokens
//! that stop the relay and start its drain.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::config::RelayConfig;
use crate::core::{lock, Relay};
use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;

/// Lines a second for refused joins, at most.
const REFUSAL_LINES_PER_SECOND: u32 = 10;

/// Everything connections of one relay share.
pub struct RelayState {
    /// Meetings, keys and admission policy.
    pub(crate) core: Arc<Relay>,
    /// Fires when the relay stops: every session ends.
    pub shutdown: CancellationToken,
    /// Fires when a drain starts.
    pub drain: CancellationToken,
    /// Lines for refused joins, a few a second (a flood of junk is counted, not logged).
    refusal_log: Mutex<LogThrottle>,
}

impl RelayState {
    /// State around `core`.
    pub(crate) fn new(core: Relay) -> Self {
        RelayState {
            core: Arc::new(core),
            shutdown: CancellationToken::new(),
            drain: CancellationToken::new(),
            refusal_log: Mutex::new(LogThrottle::new(REFUSAL_LINES_PER_SECOND)),
        }
    }

    /// Whether to log a refused join now: `Some(n)` with the lines left out since the last.
    pub(crate) fn log_refusal(&self) -> Option<u64> {
        lock(&self.refusal_log).admit(std::time::Instant::now())
    }

    /// Configuration the relay started with.
    pub fn config(&self) -> &RelayConfig {
        &self.core.config
    }

    /// The relay's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// Whether the relay refuses new joins.
    pub fn is_draining(&self) -> bool {
        self.core.is_draining()
    }

    /// Token verification keys trusted now (none before the control plane's arrive).
    pub fn verification_key_count(&self) -> usize {
        self.core.verifier.load().key_count()
    }

    /// Live meetings now.
    pub fn meeting_count(&self) -> usize {
        self.core.meetings.count()
    }

    /// Stops admitting and tells every participant to move. Returns false if already draining.
    pub fn start_drain(&self) -> bool {
        if !self.core.start_drain() {
            return false;
        }
        self.drain.cancel();
        true
    }
}
