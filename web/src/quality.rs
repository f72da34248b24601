//! How well a participant comes through, as this page sees it, for the tiles' connection
//! indicator: from what arrived of them in the last window (video frames drawn, audio packets
//! played, the simulcast layer the relay sends), and, for this participant, from the round trip
//! to the relay and the relay's congestion notices. Pure: figures in, a verdict out.

/// A connection-quality verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// Something they send does not come through (video stalled, audio broken up).
    Poor,
    /// It comes through reduced (a lower layer, a low frame rate, audio with gaps).
    Fair,
    /// Everything they send comes through.
    Good,
}

impl Quality {
    /// The word for people (and tests).
    pub fn word(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Fair => "fair",
            Quality::Poor => "poor",
        }
    }

    /// Bars of the indicator lit (of 3).
    pub fn bars(self) -> u32 {
        match self {
            Quality::Good => 3,
            Quality::Fair => 2,
            Quality::Poor => 1,
        }
    }
}

/// Audio packets a second a sender sends (20 ms Opus frames).
const AUDIO_PACKETS_PER_SECOND: f64 = 50.0;

/// What arrived of a remote participant in the last window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// They send a camera that is on (video is expected).
    pub video_expected: bool,
    /// Their video frames drawn per second.
    pub video_fps: f64,
    /// The layer the relay sends of their camera, and how many layers they send.
    pub layer: Option<(u32, usize)>,
    /// Their microphone is on (audio is expected; a silent microphone still sends packets).
    pub audio_expected: bool,
    /// Their audio packets played per second.
    pub audio_pps: f64,
}

/// The verdict on a remote participant; `None` when nothing of theirs is expected (camera and
/// microphone off).
pub fn remote(observed: &Observed) -> Option<Quality> {
    let video = observed.video_expected.then(|| {
        let below_top = observed
            .layer
            .is_some_and(|(layer, layers)| layers > 1 && (layer as usize) + 1 < layers);
        if observed.video_fps < 2.0 {
            Quality::Poor
        } else if observed.video_fps < 12.0 || below_top {
            Quality::Fair
        } else {
            Quality::Good
        }
    });
    let audio = observed.audio_expected.then(|| {
        let share = observed.audio_pps / AUDIO_PACKETS_PER_SECOND;
        if share < 0.5 {
            Quality::Poor
        } else if share < 0.85 {
            Quality::Fair
        } else {
            Quality::Good
        }
    });
    match (video, audio) {
        (Some(v), Some(a)) => Some(v.min(a)),
        (one, other) => one.or(other),
    }
}

/// The verdict on this participant's own link: its round trip to the relay, and how long ago
/// the relay last said it was sending more than the link takes.
pub fn own(rtt_ms: Option<f64>, since_congestion_ms: f64) -> Option<Quality> {
    let rtt = rtt_ms?;
    Some(if rtt > 500.0 || since_congestion_ms < 2_000.0 {
        Quality::Poor
    } else if rtt > 200.0 || since_congestion_ms < 10_000.0 {
        Quality::Fair
    } else {
        Quality::Good
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(video_fps: f64, layer: Option<(u32, usize)>, audio_pps: f64) -> Observed {
        Observed {
            video_expected: true,
            video_fps,
            layer,
            audio_expected: true,
            audio_pps,
        }
    }

    #[test]
    fn everything_arriving_is_good_and_the_worst_part_decides() {
        assert_eq!(remote(&seen(30.0, Some((2, 3)), 50.0)), Some(Quality::Good));
        assert_eq!(remote(&seen(30.0, None, 50.0)), Some(Quality::Good));
        assert_eq!(remote(&seen(30.0, Some((1, 3)), 50.0)), Some(Quality::Fair));
        assert_eq!(remote(&seen(8.0, Some((2, 3)), 50.0)), Some(Quality::Fair));
        assert_eq!(remote(&seen(0.0, Some((2, 3)), 50.0)), Some(Quality::Poor));
        assert_eq!(remote(&seen(30.0, Some((2, 3)), 35.0)), Some(Quality::Fair));
        assert_eq!(remote(&seen(30.0, Some((2, 3)), 10.0)), Some(Quality::Poor));
    }

    #[test]
    fn what_is_turned_off_is_not_judged() {
        let muted = Observed {
            audio_expected: false,
            ..seen(30.0, Some((2, 3)), 0.0)
        };
        assert_eq!(remote(&muted), Some(Quality::Good));
        let camera_off = Observed {
            video_expected: false,
            ..seen(0.0, None, 50.0)
        };
        assert_eq!(remote(&camera_off), Some(Quality::Good));
        let both = Observed {
            video_expected: false,
            audio_expected: false,
            ..seen(0.0, None, 0.0)
        };
        assert_eq!(remote(&both), None);
    }

    #[test]
    fn own_link_from_round_trip_and_congestion() {
        assert_eq!(own(None, 1e9), None);
        assert_eq!(own(Some(20.0), 1e9), Some(Quality::Good));
        assert_eq!(own(Some(300.0), 1e9), Some(Quality::Fair));
        assert_eq!(own(Some(20.0), 5_000.0), Some(Quality::Fair));
        assert_eq!(own(Some(20.0), 500.0), Some(Quality::Poor));
        assert_eq!(own(Some(900.0), 1e9), Some(Quality::Poor));
        assert_eq!(Quality::Fair.bars(), 2);
    }
}
