//! What every connection and task of one running relay shares: the core, and the tokens
//! that stop the relay and start its drain.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::RelayConfig;
use crate::core::Relay;
use crate::metrics::Metrics;

/// Everything connections of one relay share.
pub struct RelayState {
    /// Meetings, keys and admission policy.
    pub(crate) core: Arc<Relay>,
    /// Fires when the relay stops: every session ends.
    pub shutdown: CancellationToken,
    /// Fires when a drain starts.
    pub drain: CancellationToken,
}

impl RelayState {
    /// State around `core`.
    pub(crate) fn new(core: Relay) -> Self {
        RelayState {
            core: Arc::new(core),
            shutdown: CancellationToken::new(),
            drain: CancellationToken::new(),
        }
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
