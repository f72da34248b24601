//! Audio playout timing: each decoded chunk is scheduled on the `AudioContext` clock right after
//! the previous one, starting a small jitter buffer ahead of now. Late audio re-anchors the
//! schedule (one short gap) instead of piling up; audio too far ahead is dropped so latency
//! cannot grow without bound.

/// The playout schedule of one remote audio track.
#[derive(Debug, Clone)]
pub struct Playout {
    next_start: Option<f64>,
    /// Buffer kept ahead of the clock when (re)starting, in seconds.
    target: f64,
    /// Most audio allowed to be queued ahead of the clock, in seconds.
    max_ahead: f64,
}

impl Playout {
    /// A schedule with `target` seconds of jitter buffer and at most `max_ahead` queued.
    pub fn new(target: f64, max_ahead: f64) -> Self {
        Self {
            next_start: None,
            target,
            max_ahead,
        }
    }

    /// When to start a chunk of `duration` seconds that is ready at clock time `now`;
    /// `None`: drop it (the queue is already `max_ahead` long).
    pub fn schedule(&mut self, now: f64, duration: f64) -> Option<f64> {
        let start = match self.next_start {
            Some(next) if next >= now => next,
            // First chunk, or the queue ran dry: start again one buffer ahead.
            _ => now + self.target,
        };
        if start - now > self.max_ahead {
            return None;
        }
        self.next_start = Some(start + duration);
        Some(start)
    }

    /// Seconds queued ahead of `now`.
    #[cfg(test)]
    pub fn queued(&self, now: f64) -> f64 {
        self.next_start.map(|n| (n - now).max(0.0)).unwrap_or(0.0)
    }
}

/// Speaking or not, from audio levels, with hysteresis so the ring does not flicker.
#[derive(Debug, Clone, Default)]
pub struct SpeakingDetector {
    speaking: bool,
    quiet_since_ms: Option<f64>,
}

/// RMS level above which someone is speaking.
pub const SPEAKING_ON: f32 = 0.02;
/// RMS level below which speaking may end.
pub const SPEAKING_OFF: f32 = 0.01;
/// How long the level must stay low before speaking ends.
pub const SPEAKING_HOLD_MS: f64 = 400.0;

impl SpeakingDetector {
    /// Feeds the RMS `level` at `now_ms`; returns the new state when it changed.
    pub fn update(&mut self, level: f32, now_ms: f64) -> Option<bool> {
        if level >= SPEAKING_ON {
            self.quiet_since_ms = None;
            if !self.speaking {
                self.speaking = true;
                return Some(true);
            }
        } else if self.speaking && level < SPEAKING_OFF {
            let since = *self.quiet_since_ms.get_or_insert(now_ms);
            if now_ms - since >= SPEAKING_HOLD_MS {
                self.speaking = false;
                self.quiet_since_ms = None;
                return Some(false);
            }
        }
        None
    }
}

/// Root mean square of samples.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}

/// How loud samples of RMS `rms` (full scale 1.0) are, as `Media.audio_level` carries it:
/// 127 minus their level in -dBov (RFC 6464), so 127 at full scale and 1 at -126 dBov or
/// quieter (0 means "not measured" on the wire).
pub fn audio_level(rms: f32) -> u32 {
    if rms.is_nan() || rms <= 0.0 {
        return 1;
    }
    let dbov = 20.0 * rms.min(1.0).log10();
    (127.0 + dbov).round().clamp(1.0, 127.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_each_other_one_buffer_ahead() {
        let mut playout = Playout::new(0.06, 0.3);
        assert_eq!(playout.schedule(1.0, 0.02), Some(1.06));
        assert_eq!(playout.schedule(1.005, 0.02), Some(1.08));
        assert_eq!(playout.schedule(1.01, 0.02), Some(1.1));
        assert!((playout.queued(1.01) - 0.11).abs() < 1e-9);
    }

    #[test]
    fn late_audio_re_anchors_and_a_flood_is_dropped() {
        let mut playout = Playout::new(0.06, 0.1);
        playout.schedule(1.0, 0.02);
        // A pause of half a second: the next chunk starts a buffer ahead of now.
        assert_eq!(playout.schedule(1.5, 0.02), Some(1.56));
        // A burst: beyond 100 ms queued, chunks are dropped.
        let mut dropped = 0;
        for _ in 0..10 {
            if playout.schedule(1.5, 0.02).is_none() {
                dropped += 1;
            }
        }
        assert!(dropped > 0);
        assert!(playout.queued(1.5) <= 0.1 + 0.02 + 1e-9);
    }

    #[test]
    fn speaking_has_hysteresis() {
        let mut detector = SpeakingDetector::default();
        assert_eq!(detector.update(0.1, 0.0), Some(true));
        assert_eq!(
            detector.update(0.015, 100.0),
            None,
            "between thresholds: still speaking"
        );
        assert_eq!(detector.update(0.0, 200.0), None);
        assert_eq!(detector.update(0.0, 500.0), None);
        assert_eq!(detector.update(0.0, 600.0), Some(false));
        assert_eq!(rms(&[0.5, -0.5]), 0.5);
    }

    #[test]
    fn audio_levels_as_the_wire_carries_them() {
        assert_eq!(audio_level(1.0), 127);
        assert_eq!(audio_level(2.0), 127, "clipped at full scale");
        assert_eq!(audio_level(0.1), 107, "-20 dBov");
        assert_eq!(audio_level(0.001), 67, "-60 dBov");
        assert_eq!(audio_level(0.0), 1);
        assert_eq!(audio_level(1e-9), 1);
        assert_eq!(audio_level(f32::NAN), 1);
    }
}
