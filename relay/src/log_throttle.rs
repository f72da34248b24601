//! Log lines for one kind of event, at most so many a second: a flood of refused junk must not
//! flood the log too. The lines left out are counted, and the next line written says how many.
//! Pure: the time comes in.

use std::time::{Duration, Instant};

/// How often lines of one kind may be written.
#[derive(Debug)]
pub struct LogThrottle {
    per_second: u32,
    window_start: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl LogThrottle {
    /// At most `per_second` lines in any one-second window.
    pub fn new(per_second: u32) -> Self {
        LogThrottle {
            per_second: per_second.max(1),
            window_start: None,
            written: 0,
            suppressed: 0,
        }
    }

    /// Whether to write a line at `now`: `Some(n)` to write it, saying `n` lines were left
    /// out since the last one written; `None` to leave it out (it is counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let new_window = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if new_window {
            self.window_start = Some(now);
            self.written = 0;
        }
        if self.written < self.per_second {
            self.written += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_few_lines_a_second_and_counts_the_rest() {
        let start = Instant::now();
        let mut throttle = LogThrottle::new(3);
        let written: Vec<_> = (0..100).filter_map(|_| throttle.admit(start)).collect();
        assert_eq!(written, vec![0, 0, 0]);
        // A second later the next line says how many were left out.
        let later = start + Duration::from_millis(1000);
        assert_eq!(throttle.admit(later), Some(97));
        assert_eq!(throttle.admit(later), Some(0));
        // Quiet times write every line.
        let mut quiet = LogThrottle::new(3);
        for second in 0..5 {
            assert_eq!(quiet.admit(start + Duration::from_secs(second)), Some(0));
        }
    }
}
