//! Join-rate budgets: a token bucket refilled by the time passed in, and a bounded map of
//! them, one per client (a token subject, a client address).

use std::collections::HashMap;
use std::hash::Hash;

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
        if self.has_one(now_ms) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a join is left at `now_ms`, taking none.
    pub fn has_one(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.burst);
        self.tokens >= 1.0
    }

    /// Whether the bucket is full again at `now_ms` (nothing to remember about its client).
    fn is_full_at(&self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens + elapsed * self.rate_per_ms >= self.burst
    }
}

/// One [`JoinBudget`] per client, at most `max_clients` remembered. A client whose bucket
/// has refilled is forgotten when room is needed; when every remembered client is still
/// spending, a new one is let through unmetered rather than refused (the shared budget
/// still holds).
#[derive(Debug)]
pub struct ClientBudgets<K> {
    rate_per_sec: u32,
    burst: u32,
    max_clients: usize,
    clients: HashMap<K, JoinBudget>,
}

impl<K: Hash + Eq + Clone> ClientBudgets<K> {
    /// `rate_per_sec` refill and `burst` for each client; `rate_per_sec` 0 turns metering off.
    pub fn new(rate_per_sec: u32, burst: u32, max_clients: usize) -> Self {
        ClientBudgets {
            rate_per_sec,
            burst,
            max_clients,
            clients: HashMap::new(),
        }
    }

    /// Takes one from `client`'s budget; false when it has none left.
    pub fn take(&mut self, client: &K, now_ms: u64) -> bool {
        self.budget(client, now_ms)
            .is_none_or(|budget| budget.take(now_ms))
    }

    /// Whether `client` has one left, taking none.
    pub fn has_one(&mut self, client: &K, now_ms: u64) -> bool {
        match self.clients.get_mut(client) {
            Some(budget) => budget.has_one(now_ms),
            None => true,
        }
    }

    /// Clients remembered now.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.clients.len()
    }

    fn budget(&mut self, client: &K, now_ms: u64) -> Option<&mut JoinBudget> {
        if self.rate_per_sec == 0 {
            return None;
        }
        if !self.clients.contains_key(client) {
            if self.clients.len() >= self.max_clients {
                self.clients.retain(|_, budget| !budget.is_full_at(now_ms));
                if self.clients.len() >= self.max_clients {
                    return None;
                }
            }
            let mut budget = JoinBudget::new(self.rate_per_sec, self.burst);
            budget.last_ms = now_ms;
            self.clients.insert(client.clone(), budget);
        }
        self.clients.get_mut(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_spends_its_own_budget() {
        let mut budgets = ClientBudgets::new(1, 2, 100);
        assert!(budgets.take(&"mallory", 0));
        assert!(budgets.take(&"mallory", 0));
        assert!(!budgets.take(&"mallory", 0), "mallory's burst is spent");
        assert!(!budgets.has_one(&"mallory", 500));
        assert!(budgets.take(&"ana", 500), "ana is not mallory");
        assert!(budgets.has_one(&"mallory", 1000), "a second refills one");
        assert!(budgets.take(&"mallory", 1000));
        assert!(
            budgets.has_one(&"bob", 1000),
            "an unknown client has its whole burst"
        );
    }

    #[test]
    fn refilled_clients_are_forgotten_when_room_is_needed_and_spenders_are_kept() {
        let mut budgets = ClientBudgets::new(1, 2, 2);
        assert!(budgets.take(&1, 0));
        assert!(budgets.take(&2, 0));
        assert!(budgets.take(&2, 0));
        // Full of clients still spending: a third is let through unmetered.
        assert!(budgets.take(&3, 0));
        assert_eq!(budgets.remembered(), 2);
        // A second on, client 1 has refilled and makes room; client 2 (one short) is kept,
        // with what it has left.
        assert!(budgets.take(&3, 1000));
        assert_eq!(budgets.remembered(), 2);
        assert!(budgets.take(&2, 1000));
        assert!(!budgets.take(&2, 1000), "client 2 was not forgotten");
    }

    #[test]
    fn a_zero_rate_meters_nobody() {
        let mut budgets = ClientBudgets::new(0, 1, 10);
        for _ in 0..100 {
            assert!(budgets.take(&"anyone", 0));
        }
        assert_eq!(budgets.remembered(), 0);
    }

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
