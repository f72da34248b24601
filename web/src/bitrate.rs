//! How a video sender answers the relay's congestion notices: down by a third at once (not
//! below a floor), back up by a tenth per quiet period (not above where it started).

/// The lowest bitrate a congested sender goes to.
pub const MIN_BITRATE: u32 = 150_000;

/// One sender's bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateControl {
    current: u32,
    max: u32,
}

impl BitrateControl {
    /// Starts at `max`.
    pub fn new(max: u32) -> Self {
        Self { current: max, max }
    }

    /// The bitrate now.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Subscribers lost packets: the new bitrate.
    pub fn congested(&mut self) -> u32 {
        self.current = (self.current / 3 * 2).max(MIN_BITRATE.min(self.max));
        self.current
    }

    /// No notice for a while: the new bitrate.
    pub fn quiet(&mut self) -> u32 {
        self.current = (self.current / 10 * 11).min(self.max);
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_fast_up_slowly_within_bounds() {
        let mut control = BitrateControl::new(1_000_000);
        assert_eq!(control.congested(), 666_666);
        assert_eq!(control.congested(), 444_444);
        for _ in 0..10 {
            control.congested();
        }
        assert_eq!(control.current(), MIN_BITRATE);
        assert_eq!(control.quiet(), 165_000);
        for _ in 0..100 {
            control.quiet();
        }
        assert_eq!(control.current(), 1_000_000, "never above the start");
    }
}
