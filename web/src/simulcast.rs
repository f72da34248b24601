//! Simulcast: the layers a camera is encoded in. From one capture of `width`×`height`, up to
//! [`MAX_LAYERS`] encodings, each half the size of the one above (720p → 360p → 180p), the
//! smallest at least [`MIN_LAYER_WIDTH`] wide; the top gets the whole bitrate, the others
//! [`LAYER_BITRATE_SHARE`] of the one above (the relay picks one per subscriber). Screen share
//! is one layer at full size and a low frame rate ([`SCREEN_FPS`]): text needs pixels, not
//! motion.
//!
//! Pure: sizes and bitrates in, layers out.

use videocall_protocol::wire::Layer;

/// Most layers a camera is encoded in.
pub const MAX_LAYERS: usize = 3;
/// The smallest layer is at least this wide.
pub const MIN_LAYER_WIDTH: u32 = 160;
/// Each lower layer's bitrate as a share of the one above (a quarter of the pixels takes about
/// a third of the bits).
pub const LAYER_BITRATE_SHARE: f64 = 0.35;
/// Frames per second of a shared screen.
pub const SCREEN_FPS: f64 = 5.0;
/// Frames per second of a camera.
pub const CAMERA_FPS: f64 = 30.0;

/// One encoding of a video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerPlan {
    /// Layer id on the wire (0 the smallest).
    pub id: u32,
    /// Encoded width.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Target bitrate in bits per second.
    pub bitrate: u32,
}

impl LayerPlan {
    /// How the layer is announced to the relay.
    pub fn announced(&self) -> Layer {
        Layer {
            id: self.id,
            width: self.width,
            height: self.height,
            bitrate_kbps: self.bitrate / 1000,
        }
    }
}

/// The layers of a camera captured at `width`×`height` sent at up to `bitrate` (one layer,
/// id 0, when `simulcast` is off or the capture is too small to halve).
pub fn camera_layers(width: u32, height: u32, bitrate: u32, simulcast: bool) -> Vec<LayerPlan> {
    let mut sizes = vec![(even(width), even(height))];
    while simulcast && sizes.len() < MAX_LAYERS {
        let (w, h) = sizes[sizes.len() - 1];
        if w / 2 < MIN_LAYER_WIDTH {
            break;
        }
        sizes.push((even(w / 2), even(h / 2)));
    }
    let mut rate = f64::from(bitrate);
    let mut layers: Vec<LayerPlan> = sizes
        .into_iter()
        .map(|(width, height)| {
            let layer = LayerPlan {
                id: 0,
                width,
                height,
                bitrate: rate.round() as u32,
            };
            rate *= LAYER_BITRATE_SHARE;
            layer
        })
        .collect();
    layers.reverse();
    for (id, layer) in layers.iter_mut().enumerate() {
        layer.id = id as u32;
    }
    layers
}

/// The layers to encode given the relay's `LayerDemand` (`None`: it never said: all of
/// them), as a bit per layer.
pub fn demanded(layers: &[LayerPlan], demand: Option<&[u32]>) -> u32 {
    layers
        .iter()
        .filter(|l| demand.is_none_or(|d| d.contains(&l.id)))
        .fold(0, |mask, l| mask | (1 << l.id))
}

/// A size rounded down to an even number (H.264 wants them).
pub fn even(value: u32) -> u32 {
    (value & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_720p_camera_is_three_layers_halving_in_size_and_about_a_third_in_bits() {
        let layers = camera_layers(1280, 720, 1_000_000, true);
        let sizes: Vec<_> = layers.iter().map(|l| (l.id, l.width, l.height)).collect();
        assert_eq!(sizes, vec![(0, 320, 180), (1, 640, 360), (2, 1280, 720)]);
        let rates: Vec<_> = layers.iter().map(|l| l.bitrate).collect();
        assert_eq!(rates, vec![122_500, 350_000, 1_000_000]);
        assert_eq!(layers[2].announced().bitrate_kbps, 1000);
        assert_eq!(layers[0].announced().width, 320);
    }

    #[test]
    fn small_captures_have_fewer_layers_and_off_means_one() {
        let sizes = |w, h| {
            camera_layers(w, h, 500_000, true)
                .iter()
                .map(|l| (l.width, l.height))
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(640, 480), vec![(160, 120), (320, 240), (640, 480)]);
        assert_eq!(sizes(320, 240), vec![(160, 120), (320, 240)]);
        assert_eq!(sizes(300, 200), vec![(300, 200)]);
        // Odd sizes stay even.
        assert_eq!(sizes(641, 361), vec![(160, 90), (320, 180), (640, 360)]);
        let one = camera_layers(1280, 720, 1_000_000, false);
        assert_eq!(
            one,
            vec![LayerPlan {
                id: 0,
                width: 1280,
                height: 720,
                bitrate: 1_000_000
            }]
        );
    }

    #[test]
    fn the_relays_demand_picks_what_is_encoded() {
        let layers = camera_layers(1280, 720, 1_000_000, true);
        assert_eq!(demanded(&layers, None), 0b111);
        assert_eq!(demanded(&layers, Some(&[0, 2])), 0b101);
        assert_eq!(demanded(&layers, Some(&[])), 0);
        // Ids it does not have are ignored.
        assert_eq!(demanded(&layers, Some(&[1, 7])), 0b010);
    }
}
