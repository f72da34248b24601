//! Time as the core sees it: always passed in, never read by the core itself.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One moment on both clocks the core needs.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time: timeouts, intervals, latency.
    pub at: Instant,
    /// Wall-clock time in microseconds since the Unix epoch: what goes on the wire.
    pub unix_us: u64,
}

impl Now {
    /// The system's clocks now (for adapters; tests make their own).
    pub fn system() -> Self {
        Now {
            at: Instant::now(),
            unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
        }
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> u64 {
        self.unix_us / 1000
    }

    /// This moment `ms` milliseconds later, on both clocks.
    pub fn later(&self, ms: u64) -> Self {
        Now {
            at: self.at + std::time::Duration::from_millis(ms),
            unix_us: self.unix_us + ms * 1000,
        }
    }
}
