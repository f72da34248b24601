//! Sharing one subscriber's bandwidth among the video tracks it shows. Audio comes first: each
//! audio track it gets is set aside [`AUDIO_RESERVE_BPS`]. Then every shown video track gets
//! its lowest layer while that fits (speakers first: the rest pause when even that does not
//! fit), then, speakers first, each track moves up towards the layer its tile asks for as far
//! as the rest allows. Without an estimate every track gets what its tile asks for.
//!
//! Pure: layers, tiles and a budget in, target layers out.

use videocall_protocol::wire::Layer;

/// Set aside per audio track (Opus at 32 kbit/s with its headers, and room).
pub const AUDIO_RESERVE_BPS: u64 = 48_000;
/// Bits per pixel per second assumed for a layer that did not say its bitrate (about 0.1
/// bit per pixel at 30 frames per second).
const BITS_PER_PIXEL_SECOND: u64 = 3;

/// One video track as one subscriber shows it.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    /// The track's layers (none: one layer, 0, of unknown cost).
    pub layers: &'a [Layer],
    /// The layer its tile asks for (`None`: not shown).
    pub wanted: Option<u32>,
    /// Its publisher is among the active speakers.
    pub speaker: bool,
}

/// What a layer costs, in bits per second: its announced bitrate, or its size's guess.
pub fn layer_cost_bps(layer: &Layer) -> u64 {
    if layer.bitrate_kbps > 0 {
        u64::from(layer.bitrate_kbps) * 1000
    } else {
        u64::from(layer.width) * u64::from(layer.height) * BITS_PER_PIXEL_SECOND
    }
}

/// The layer each of `shown` should get with `budget_bps` (`None`: no limit) and `audio_tracks`
/// audio tracks to get first, in `shown`'s order.
pub fn allocate(budget_bps: Option<u64>, audio_tracks: usize, shown: &[Shown]) -> Vec<Option<u32>> {
    let Some(budget) = budget_bps else {
        return shown.iter().map(|s| s.wanted).collect();
    };
    let mut left = budget.saturating_sub(audio_tracks as u64 * AUDIO_RESERVE_BPS);
    // Each track's ladder: its layers up to the one asked for, cheapest first.
    let ladders: Vec<Vec<(u32, u64)>> = shown.iter().map(ladder).collect();
    let mut order: Vec<usize> = (0..shown.len()).collect();
    order.sort_by_key(|&i| !shown[i].speaker);
    let mut step: Vec<Option<usize>> = vec![None; shown.len()];
    for &i in &order {
        if let Some(&(_, cost)) = ladders[i].first() {
            if cost <= left {
                left -= cost;
                step[i] = Some(0);
            }
        }
    }
    for &i in &order {
        let Some(mut at) = step[i] else { continue };
        while let Some(&(_, next)) = ladders[i].get(at + 1) {
            let more = next.saturating_sub(ladders[i][at].1);
            if more > left {
                break;
            }
            left -= more;
            at += 1;
        }
        step[i] = Some(at);
    }
    step.iter()
        .zip(&ladders)
        .map(|(at, ladder)| at.map(|at| ladder[at].0))
        .collect()
}

/// The layers a subscriber may get of `shown`, cheapest first, up to the one it asks for.
fn ladder(shown: &Shown) -> Vec<(u32, u64)> {
    let Some(wanted) = shown.wanted else {
        return Vec::new();
    };
    if shown.layers.is_empty() {
        // One layer of unknown cost: it fits whenever anything does.
        return vec![(wanted, 0)];
    }
    let mut layers: Vec<(u32, u64)> = shown
        .layers
        .iter()
        .map(|l| (l.id, layer_cost_bps(l)))
        .collect();
    layers.sort_by_key(|&(id, cost)| (cost, id));
    match layers.iter().position(|&(id, _)| id == wanted) {
        Some(end) => layers.truncate(end + 1),
        None => layers.clear(),
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<Layer> {
        let layer = |id, width, height, bitrate_kbps| Layer {
            id,
            width,
            height,
            bitrate_kbps,
        };
        vec![
            layer(0, 320, 180, 150),
            layer(1, 640, 360, 500),
            layer(2, 1280, 720, 1500),
        ]
    }

    fn shown(layers: &[Layer], wanted: Option<u32>, speaker: bool) -> Shown<'_> {
        Shown {
            layers,
            wanted,
            speaker,
        }
    }

    #[test]
    fn without_an_estimate_tiles_decide() {
        let layers = three();
        let tracks = [shown(&layers, Some(2), false), shown(&layers, None, false)];
        assert_eq!(allocate(None, 2, &tracks), vec![Some(2), None]);
    }

    #[test]
    fn one_track_gets_the_best_layer_that_fits_after_audio() {
        let layers = three();
        let one = [shown(&layers, Some(2), false)];
        assert_eq!(allocate(Some(2_000_000), 1, &one), vec![Some(2)]);
        // 1.5 Mbit/s of video plus 48 kbit/s of audio does not fit 1.5 Mbit/s.
        assert_eq!(allocate(Some(1_500_000), 1, &one), vec![Some(1)]);
        assert_eq!(allocate(Some(400_000), 1, &one), vec![Some(0)]);
        // Not even the lowest layer: video pauses, audio stays.
        assert_eq!(allocate(Some(150_000), 1, &one), vec![None]);
        // Never above what the tile asks for.
        let small = [shown(&layers, Some(0), false)];
        assert_eq!(allocate(Some(10_000_000), 1, &small), vec![Some(0)]);
    }

    #[test]
    fn the_speaker_moves_up_first_and_everyone_keeps_a_picture() {
        let layers = three();
        let tracks = [
            shown(&layers, Some(2), false),
            shown(&layers, Some(2), true),
            shown(&layers, Some(2), false),
        ];
        // 3 × 150 for the lowest layers, then 1350 more takes the speaker to layer 2.
        assert_eq!(
            allocate(Some(1_800_000), 0, &tracks),
            vec![Some(0), Some(2), Some(0)]
        );
        // 350 more: the first other track to layer 1.
        assert_eq!(
            allocate(Some(2_150_000), 0, &tracks),
            vec![Some(1), Some(2), Some(0)]
        );
        // Less: the speaker as far as it fits, then the others.
        assert_eq!(
            allocate(Some(1_500_000), 0, &tracks),
            vec![Some(1), Some(1), Some(1)]
        );
        // Room for two lowest layers only: the speaker's and the first other's.
        assert_eq!(
            allocate(Some(300_000), 0, &tracks),
            vec![Some(0), Some(0), None]
        );
        assert_eq!(
            allocate(Some(150_000), 0, &tracks),
            vec![None, Some(0), None]
        );
    }

    #[test]
    fn hidden_tracks_take_nothing_and_unknown_costs_are_guessed() {
        let layers = three();
        let tracks = [shown(&layers, None, true), shown(&layers, Some(2), false)];
        assert_eq!(allocate(Some(1_600_000), 0, &tracks), vec![None, Some(2)]);
        // A track without layers costs nothing known: it is sent whenever anything is.
        let plain = [shown(&[], Some(0), false)];
        assert_eq!(allocate(Some(10_000), 1, &plain), vec![Some(0)]);
        let no_rate = Layer {
            id: 1,
            width: 1280,
            height: 720,
            bitrate_kbps: 0,
        };
        assert_eq!(layer_cost_bps(&no_rate), 2_764_800);
        // A wanted layer the track does not have: nothing.
        assert_eq!(
            allocate(Some(10_000_000), 0, &[shown(&layers, Some(7), false)]),
            vec![None]
        );
    }
}
