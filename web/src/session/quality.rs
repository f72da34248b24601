//! The tiles' connection indicators: every 2 s, what arrived of each participant since the
//! last look (frames drawn, audio packets played, the layer sent), judged by
//! [`crate::quality`]; this participant's own link from the round trip and congestion.

use std::collections::HashMap;

use videocall_protocol::wire::{MediaKind, Participant};

use crate::media::{Stats, CAMERA_TRACK};
use crate::quality::{self, Observed, Quality};

/// How long each look covers.
const WINDOW_MS: f64 = 2_000.0;

/// The counts at the start of the current window, and the verdicts of the last one.
#[derive(Default)]
pub struct QualityWatch {
    started_ms: f64,
    counts: HashMap<u64, (u64, u64)>,
    verdicts: HashMap<u64, Quality>,
}

impl QualityWatch {
    /// Whether a window has passed since the last look.
    pub fn due(&self, now_ms: f64) -> bool {
        now_ms - self.started_ms >= WINDOW_MS
    }

    /// Looks again (when [`Self::due`]); true when the verdicts were renewed.
    pub fn look(&mut self, now_ms: f64, participants: &[Participant], stats: &Stats) -> bool {
        let elapsed = now_ms - self.started_ms;
        let first = self.counts.is_empty() && self.verdicts.is_empty();
        let mut counts = HashMap::new();
        let mut verdicts = HashMap::new();
        for peer in participants {
            let frames = stats.frames_by_peer.get(&peer.id).copied().unwrap_or(0);
            let audio = stats.audio_by_peer.get(&peer.id).copied().unwrap_or(0);
            counts.insert(peer.id, (frames, audio));
            // Someone new is judged after a whole window of their own.
            let Some(&(frames_then, audio_then)) = self.counts.get(&peer.id) else {
                continue;
            };
            let seconds = elapsed / 1000.0;
            let camera = peer
                .tracks
                .iter()
                .find(|t| t.id == CAMERA_TRACK && t.kind() == MediaKind::Video);
            let observed = Observed {
                video_expected: camera.is_some() && !peer.video_muted,
                video_fps: frames.saturating_sub(frames_then) as f64 / seconds,
                layer: camera.and_then(|track| {
                    let layer = stats.layer_by_peer.get(&peer.id)?;
                    Some((*layer, track.layers.len()))
                }),
                audio_expected: peer.tracks.iter().any(|t| t.kind() == MediaKind::Audio)
                    && !peer.audio_muted,
                audio_pps: audio.saturating_sub(audio_then) as f64 / seconds,
            };
            if let Some(verdict) = quality::remote(&observed) {
                verdicts.insert(peer.id, verdict);
            }
        }
        self.started_ms = now_ms;
        self.counts = counts;
        self.verdicts = verdicts;
        !first
    }

    /// The verdict on participant `id`, once there is one.
    pub fn of(&self, id: u64) -> Option<Quality> {
        self.verdicts.get(&id).copied()
    }

    /// Forgets everyone (a new connection).
    pub fn reset(&mut self) {
        *self = QualityWatch::default();
    }
}
