//! Rates for the connection panel: bits and frames per second over the last second.

/// Counts events and bytes; `rate` gives per-second figures of the last full window.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    window_start_ms: f64,
    bytes: u64,
    events: u64,
    last_bits_per_second: f64,
    last_per_second: f64,
}

const WINDOW_MS: f64 = 1000.0;

impl RateMeter {
    /// Records one event of `bytes` at `now_ms`.
    pub fn add(&mut self, now_ms: f64, bytes: usize) {
        self.roll(now_ms);
        self.bytes += bytes as u64;
        self.events += 1;
    }

    /// (bits per second, events per second) of the last full window.
    pub fn rate(&mut self, now_ms: f64) -> (f64, f64) {
        self.roll(now_ms);
        (self.last_bits_per_second, self.last_per_second)
    }

    fn roll(&mut self, now_ms: f64) {
        let elapsed = now_ms - self.window_start_ms;
        if elapsed >= WINDOW_MS {
            // An idle gap longer than a window means nothing arrived lately.
            let span = if elapsed > 2.0 * WINDOW_MS {
                elapsed
            } else {
                WINDOW_MS
            };
            self.last_bits_per_second = self.bytes as f64 * 8.0 * 1000.0 / span;
            self.last_per_second = self.events as f64 * 1000.0 / span;
            self.bytes = 0;
            self.events = 0;
            self.window_start_ms = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_window() {
        let mut meter = RateMeter::default();
        for i in 0..30 {
            meter.add(1000.0 + f64::from(i) * 33.0, 1000);
        }
        let (bits, fps) = meter.rate(2000.0);
        assert!((bits - 240_000.0).abs() < 1.0, "{bits}");
        assert!((fps - 30.0).abs() < 0.01, "{fps}");
        // Silence afterwards reads as zero, not as the old rate.
        let (bits, _) = meter.rate(5000.0);
        assert_eq!(bits, 0.0);
    }
}
