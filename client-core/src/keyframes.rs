//! Keyframe requests held to one per publisher's track per interval: a decoder that lost its
//! place asks with every frame it cannot decode, and the publisher needs to hear it once.

use std::collections::HashMap;

use videocall_protocol::wire::{envelope::Body, KeyframeRequest};

/// When each track was last asked for a keyframe.
#[derive(Debug, Clone)]
pub struct KeyframeAsks {
    interval_ms: u64,
    asked: HashMap<(u64, u32), u64>,
}

impl KeyframeAsks {
    /// At most one request per track per `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        KeyframeAsks {
            interval_ms,
            asked: HashMap::new(),
        }
    }

    /// The request to send for `participant`'s `track` at `now_ms`, unless one went out
    /// less than the interval ago.
    pub fn ask(&mut self, participant: u64, track: u32, now_ms: u64) -> Option<Body> {
        if let Some(last) = self.asked.get(&(participant, track)) {
            if now_ms.saturating_sub(*last) < self.interval_ms {
                return None;
            }
        }
        self.asked.insert((participant, track), now_ms);
        Some(Body::KeyframeRequest(KeyframeRequest {
            participant_id: participant,
            track_id: track,
            layer: 0,
        }))
    }

    /// `participant` left: its tracks are forgotten.
    pub fn forget(&mut self, participant: u64) {
        self.asked.retain(|(p, _), _| *p != participant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_track_per_interval() {
        let mut asks = KeyframeAsks::new(500);
        assert!(asks.ask(1, 1, 0).is_some());
        assert!(asks.ask(1, 1, 499).is_none());
        // Another track, another publisher: asked at once.
        assert!(asks.ask(1, 2, 499).is_some());
        assert!(asks.ask(2, 1, 499).is_some());
        assert!(asks.ask(1, 1, 500).is_some());
    }

    #[test]
    fn a_publisher_that_left_is_forgotten() {
        let mut asks = KeyframeAsks::new(500);
        asks.ask(1, 1, 0);
        asks.forget(1);
        assert!(asks.ask(1, 1, 1).is_some());
    }
}
