//! Where an encrypted media frame is sealed or opened so that it waits least, learned from
//! what frames took: in the session (software AES on the caller's thread: a cost that grows
//! with the frame's bytes, about 14 ns a byte in a browser's wasm) or outside it (the
//! browser's WebCrypto: native AES off the page's main thread, but its answer comes back
//! only when the page's event loop is free, so its round trip hardly depends on the size and
//! much on how busy the page is: 0.2–0.35 ms in Chromium, 2–5 ms in Firefox in a meeting).
//!
//! A frame of at least the floor goes outside when
//! - ciphering it in place would take longer than the outside round trip does now, or
//! - ciphering every such frame in place would have taken more than [`BUSY_SHARE`] of the
//!   caller's thread in the last [`BUSY_WINDOW_MS`] (a large meeting: there the main thread
//!   is what costs; counted whichever way the frames went, so the choice does not swing), or
//! - [`PROBE_EVERY`] frames of that size in a row stayed in place (the round trip is measured
//!   again: it changes with the page's load).
//!
//! Smaller frames (audio) always stay: starting an outside call costs more than they do.
//! Times are the caller's measurements in milliseconds, the clock an argument.

/// In-place cost assumed before any is measured: 14 ns a byte (BENCHMARKS.md: wasm in
/// Chromium and Firefox).
const PRIOR_INSIDE_MS_PER_BYTE: f64 = 14e-6;
/// How many bytes' worth of measurements the prior counts as.
const PRIOR_INSIDE_BYTES: f64 = 256.0 * 1024.0;
/// Outside round trip assumed before any is measured.
const PRIOR_OUTSIDE_MS: f64 = 0.5;
/// Weight of each new outside round trip in the running estimate.
const OUTSIDE_WEIGHT: f64 = 1.0 / 8.0;
/// After this many frames of the floor's size or more in place in a row, one goes outside.
pub const PROBE_EVERY: u32 = 30;
/// The share of the caller's thread ciphering in place above which frames go outside.
pub const BUSY_SHARE: f64 = 0.05;
/// The window over which that share is counted.
pub const BUSY_WINDOW_MS: u64 = 1000;

/// Where one frame was ciphered and how long it took, as the caller measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CipherTook {
    /// In the session: `ms` of the caller's thread for a frame of `bytes`.
    Inside {
        /// The frame's payload.
        bytes: usize,
        /// Milliseconds.
        ms: f64,
    },
    /// Outside: `ms` from handing the job out to its answer.
    Outside {
        /// Milliseconds.
        ms: f64,
    },
}

/// The learned choice; see the module's header.
#[derive(Debug, Clone)]
pub struct CipherChoice {
    floor: usize,
    inside_ms: f64,
    inside_bytes: f64,
    outside_ms: f64,
    in_place_in_a_row: u32,
    window_start_ms: u64,
    window_demand_ms: f64,
    last_window_demand_ms: f64,
}

impl CipherChoice {
    /// Frames from `floor` bytes may go outside; nothing measured yet.
    pub fn new(floor: usize) -> Self {
        CipherChoice {
            floor,
            inside_ms: PRIOR_INSIDE_MS_PER_BYTE * PRIOR_INSIDE_BYTES,
            inside_bytes: PRIOR_INSIDE_BYTES,
            outside_ms: PRIOR_OUTSIDE_MS,
            in_place_in_a_row: 0,
            window_start_ms: 0,
            window_demand_ms: 0.0,
            last_window_demand_ms: 0.0,
        }
    }

    /// Whether a frame of `bytes` goes outside, at `now_ms`.
    pub fn outside(&mut self, bytes: usize, now_ms: u64) -> bool {
        if bytes < self.floor {
            return false;
        }
        self.roll_window(now_ms);
        let in_place_ms = self.inside_estimate_ms(bytes);
        self.window_demand_ms += in_place_ms;
        let outside = in_place_ms >= self.outside_ms
            || self.busy_share() > BUSY_SHARE
            || self.in_place_in_a_row + 1 >= PROBE_EVERY;
        if outside {
            self.in_place_in_a_row = 0;
        } else {
            self.in_place_in_a_row += 1;
        }
        outside
    }

    /// What a frame took, as the caller measured it (frames below the floor are not counted).
    pub fn took(&mut self, took: CipherTook) {
        match took {
            // Below the floor a frame's fixed cost counts for much: not a sample of bytes.
            CipherTook::Inside { bytes, .. } if bytes < self.floor => {}
            CipherTook::Inside { bytes, ms } => {
                self.inside_ms += ms.max(0.0);
                self.inside_bytes += bytes as f64;
                // Old measurements fade: the estimate follows a page that got slower.
                let cap = 16.0 * PRIOR_INSIDE_BYTES;
                if self.inside_bytes > cap {
                    let keep = cap / self.inside_bytes;
                    self.inside_ms *= keep;
                    self.inside_bytes = cap;
                }
            }
            CipherTook::Outside { ms } => {
                self.outside_ms += OUTSIDE_WEIGHT * (ms.max(0.0) - self.outside_ms);
            }
        }
    }

    /// The smallest frame that goes outside now (not counting probes or a busy thread).
    pub fn line(&self) -> usize {
        let per_byte = self.inside_ms / self.inside_bytes;
        let line = if per_byte > 0.0 {
            (self.outside_ms / per_byte).ceil().min(usize::MAX as f64) as usize
        } else {
            usize::MAX
        };
        line.max(self.floor)
    }

    /// The outside round trip, as estimated now (milliseconds).
    pub fn outside_estimate_ms(&self) -> f64 {
        self.outside_ms
    }

    /// The share of the caller's thread that ciphering every frame of the floor's size or
    /// more in place would have taken in the last full window.
    pub fn busy_share(&self) -> f64 {
        self.last_window_demand_ms / BUSY_WINDOW_MS as f64
    }

    fn inside_estimate_ms(&self, bytes: usize) -> f64 {
        bytes as f64 * self.inside_ms / self.inside_bytes
    }

    fn roll_window(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.window_start_ms);
        if elapsed >= 2 * BUSY_WINDOW_MS {
            // A whole window went by without a frame: it was idle.
            self.last_window_demand_ms = 0.0;
        } else if elapsed >= BUSY_WINDOW_MS {
            self.last_window_demand_ms = self.window_demand_ms;
        } else {
            return;
        }
        self.window_demand_ms = 0.0;
        self.window_start_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYFRAME: usize = 60_000;
    const VIDEO: usize = 4_000;
    const AUDIO: usize = 160;

    /// `frames` frames of `bytes` at 30 a second from `start_ms`, each taking `inside_ms` in
    /// place or `outside_ms` outside; returns how many went outside and the time after.
    fn run(
        choice: &mut CipherChoice,
        start_ms: u64,
        frames: u32,
        bytes: usize,
        inside_ms: f64,
        outside_ms: f64,
    ) -> (u32, u64) {
        let mut out = 0;
        let mut now = start_ms;
        for _ in 0..frames {
            if choice.outside(bytes, now) {
                out += 1;
                choice.took(CipherTook::Outside { ms: outside_ms });
            } else {
                choice.took(CipherTook::Inside {
                    bytes,
                    ms: inside_ms,
                });
            }
            now += 33;
        }
        (out, now)
    }

    #[test]
    fn small_frames_never_go_outside() {
        let mut choice = CipherChoice::new(1024);
        for n in 0..1000 {
            assert!(!choice.outside(AUDIO, n * 20));
            choice.took(CipherTook::Inside {
                bytes: AUDIO,
                ms: 0.5,
            });
        }
    }

    #[test]
    fn a_quick_round_trip_takes_keyframes_and_leaves_small_frames_in_place() {
        // Chromium-like: 57 µs per 4 kB in place, 0.3 ms outside.
        let mut choice = CipherChoice::new(1024);
        let (_, now) = run(&mut choice, 0, 600, VIDEO, 0.057, 0.3);
        assert!((0.25..0.35).contains(&choice.outside_estimate_ms()));
        let line = choice.line();
        assert!((15_000..30_000).contains(&line), "line {line}");
        let (keyframes_out, now) = run(&mut choice, now, 10, KEYFRAME, 0.8, 0.3);
        assert_eq!(keyframes_out, 10);
        // 4 kB frames stay, but for one probe in every PROBE_EVERY.
        let (out, _) = run(&mut choice, now, 300, VIDEO, 0.057, 0.3);
        assert_eq!(out, 300 / PROBE_EVERY);
    }

    #[test]
    fn a_slow_round_trip_keeps_even_keyframes_in_place() {
        // Firefox-like: the answer waits 3 ms for the page's event loop.
        let mut choice = CipherChoice::new(1024);
        let (_, now) = run(&mut choice, 0, 300, VIDEO, 0.06, 3.0);
        assert!(choice.outside_estimate_ms() > 2.0);
        let (out, _) = run(&mut choice, now, 300, KEYFRAME, 0.83, 3.0);
        assert_eq!(out, 300 / PROBE_EVERY, "only probes");
    }

    #[test]
    fn the_round_trip_is_measured_again_and_the_choice_follows() {
        let mut choice = CipherChoice::new(1024);
        let (_, now) = run(&mut choice, 0, 600, KEYFRAME, 0.83, 3.0);
        assert!(choice.line() > KEYFRAME);
        // The page gets quiet: the probes see a quick round trip and keyframes go outside.
        let (_, now) = run(&mut choice, now, 900, KEYFRAME, 0.83, 0.2);
        assert!(choice.line() < KEYFRAME, "line {}", choice.line());
        let (out, _) = run(&mut choice, now, 30, KEYFRAME, 0.83, 0.2);
        assert_eq!(out, 30);
    }

    #[test]
    fn a_busy_thread_sends_frames_outside_however_slow_the_round_trip() {
        // A large meeting: 600 frames a second of 4 kB at 0.12 ms each is 7 % of the thread.
        let mut choice = CipherChoice::new(1024);
        let mut now = 0;
        let mut out_after_first_window = 0;
        for n in 0..2400u64 {
            now = n * 1000 / 600;
            let outside = choice.outside(VIDEO, now);
            if now >= 1000 && outside {
                out_after_first_window += 1;
            }
            if outside {
                choice.took(CipherTook::Outside { ms: 3.0 });
            } else {
                choice.took(CipherTook::Inside {
                    bytes: VIDEO,
                    ms: 0.12,
                });
            }
        }
        assert!(choice.busy_share() > BUSY_SHARE, "{}", choice.busy_share());
        // Every window after the first, not every other one.
        assert!(
            out_after_first_window > 1700,
            "{out_after_first_window} of 1800 outside"
        );
        // Idle for a while: the share is zero again and frames come back in place.
        now += 5000;
        assert!(!choice.outside(VIDEO, now));
        assert_eq!(choice.busy_share(), 0.0);
    }

    #[test]
    fn a_slower_page_moves_the_line_down() {
        let mut choice = CipherChoice::new(1024);
        let (_, now) = run(&mut choice, 0, 100, VIDEO, 0.057, 0.3);
        let before = choice.line();
        run(&mut choice, now, 1000, VIDEO, 0.2, 0.3);
        assert!(
            choice.line() < before / 2,
            "{} then {}",
            before,
            choice.line()
        );
    }

    #[test]
    fn nonsense_times_do_not_break_the_estimates() {
        let mut choice = CipherChoice::new(1024);
        choice.took(CipherTook::Outside { ms: -5.0 });
        choice.took(CipherTook::Inside { bytes: 0, ms: -1.0 });
        assert!(choice.outside_estimate_ms() >= 0.0);
        assert!(choice.line() >= 1024);
        let _ = choice.outside(VIDEO, u64::MAX);
    }
}
