//! Byte budgets: how much video one subscriber may have queued, whatever the packet sizes,
//! so a subscriber that lags holds bounded memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of video one subscriber may have queued.
pub struct QueueBudget {
    used: AtomicUsize,
    max: usize,
    gauge: prometheus::IntGauge,
}

impl QueueBudget {
    /// A budget of `max` bytes reported into `gauge`.
    pub fn new(max: usize, gauge: prometheus::IntGauge) -> Arc<Self> {
        Arc::new(QueueBudget {
            used: AtomicUsize::new(0),
            max,
            gauge,
        })
    }

    /// Reserves `bytes`; false when that would exceed the budget.
    pub fn reserve(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used + bytes > self.max {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.gauge.add(bytes as i64);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Returns `bytes` once they left the queue.
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.sub(bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_queued_bytes_and_reports_them() {
        let gauge = prometheus::IntGauge::new("queued", "test").expect("gauge");
        let budget = QueueBudget::new(1000, gauge.clone());
        assert!(budget.reserve(600));
        assert!(!budget.reserve(600), "over budget");
        assert!(budget.reserve(400));
        assert_eq!(gauge.get(), 1000);
        budget.release(600);
        assert_eq!(gauge.get(), 400);
        assert!(budget.reserve(600));
    }
}
