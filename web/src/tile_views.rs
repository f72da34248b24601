//! What to tell the relay of how large the page shows each remote video (`ViewTracks`): only
//! changes, in steps of [`STEP`] device pixels so that a window being resized does not send a
//! view per pixel; a tile of no size is not shown (0 x 0: the relay sends none of its video).
//! Pure; the session measures the tiles (`session/views.rs`).

use std::collections::HashMap;

use videocall_protocol::wire::TrackView;

/// Sizes are rounded up to a multiple of this many device pixels.
pub const STEP: u32 = 16;

/// What the relay was last told of each (publisher, track).
#[derive(Debug, Default)]
pub struct TileViews {
    told: HashMap<(u64, u32), (u32, u32)>,
}

impl TileViews {
    /// The views to send for tiles measured now as `(publisher, track, width, height)` (0 x 0:
    /// not shown); tracks no longer measured are forgotten (their publisher left).
    pub fn changes(&mut self, measured: &[(u64, u32, u32, u32)]) -> Vec<TrackView> {
        let mut changes = Vec::new();
        let mut now = HashMap::with_capacity(measured.len());
        for &(participant_id, track_id, width, height) in measured {
            let size = (round_up(width), round_up(height));
            let size = if size.0 == 0 || size.1 == 0 {
                (0, 0)
            } else {
                size
            };
            if self.told.get(&(participant_id, track_id)) != Some(&size) {
                changes.push(TrackView {
                    participant_id,
                    track_id,
                    width: size.0,
                    height: size.1,
                });
            }
            now.insert((participant_id, track_id), size);
        }
        self.told = now;
        changes
    }

    /// Forgets what was told (a new connection: the relay knows nothing yet).
    pub fn reset(&mut self) {
        self.told.clear();
    }
}

fn round_up(pixels: u32) -> u32 {
    pixels.div_ceil(STEP).saturating_mul(STEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_sent_in_steps() {
        let mut views = TileViews::default();
        let first = views.changes(&[(1, 1, 320, 180), (2, 1, 0, 0)]);
        assert_eq!(first.len(), 2);
        assert_eq!((first[0].width, first[0].height), (320, 192));
        assert_eq!((first[1].width, first[1].height), (0, 0));
        // The same, or within a step: nothing.
        assert!(views.changes(&[(1, 1, 318, 190), (2, 1, 0, 0)]).is_empty());
        // Grown, and the other shown.
        let grown = views.changes(&[(1, 1, 1280, 720), (2, 1, 640, 360)]);
        assert_eq!(grown.len(), 2);
        assert_eq!((grown[0].width, grown[0].height), (1280, 720));
        // A tile with no width is not shown.
        let gone = views.changes(&[(1, 1, 0, 720), (2, 1, 640, 360)]);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].width, gone[0].height), (0, 0));
    }

    #[test]
    fn a_new_connection_is_told_everything_again() {
        let mut views = TileViews::default();
        assert_eq!(views.changes(&[(1, 1, 320, 180)]).len(), 1);
        views.reset();
        assert_eq!(views.changes(&[(1, 1, 320, 180)]).len(), 1);
        // A publisher who left is forgotten: back, it is told again.
        assert!(views.changes(&[]).is_empty());
        assert_eq!(views.changes(&[(1, 1, 320, 180)]).len(), 1);
    }
}
