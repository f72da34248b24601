//! The join-rate budget: a token bucket refilled by the time passed in.

/// A token bucket of joins: `rate_per_sec` refill, `burst` at most.
#[derive(Debug, Clone)]
pub struct JoinBudget {
    rate_per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
}

impl JoinBudget {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        JoinBudget {
            rate_per_ms: f64::from(rate_per_sec.max(1)) / 1000.0,
            burst,
            tokens: burst,
            last_ms: 0,
        }
    }

    /// Takes one join at `now_ms` (relay-clock milliseconds); false when none is left.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_budget_allows_a_burst_then_refills_at_its_rate() {
        let mut budget = JoinBudget::new(10, 3);
        assert!(budget.take(0));
        assert!(budget.take(0));
        assert!(budget.take(0));
        assert!(!budget.take(0), "burst spent");
        assert!(!budget.take(50), "half a join refilled");
        assert!(budget.take(100), "one join per 100 ms");
        assert!(!budget.take(100));
        assert!(budget.take(10_000));
        assert!(budget.take(10_000));
        assert!(budget.take(10_000));
        assert!(!budget.take(10_000), "refill stops at the burst");
    }
}
