//! Simulcast: which layer of a publisher's video track each subscriber gets. A subscriber's
//! view of the track (the tile it shows it in, or none) picks the target layer
//! ([`layer_for_view`]); packets pass only of the layer it is getting, and it moves to the
//! target only at a keyframe of the target ([`pass`]), so a decoder never sees a broken
//! chain, and the picture does not freeze while the target's keyframe is on its way (the
//! old layer goes on until then). A track without layers is one layer, 0: it starts at a
//! keyframe and waits for one after a drop, as before simulcast.
//!
//! Pure: layers, views and packets in, decisions out.

use videocall_protocol::wire::Layer;

/// How a subscriber shows a track: `None` when it never said (it gets the largest layer).
pub type View = Option<(u32, u32)>;

/// The layer a subscriber showing the track in `view` should get: the smallest that fills
/// the tile (at least its width and height), the largest when none does; `None` for a tile
/// of no size (not shown: nothing is sent). Layers without a size count as ordered by id.
pub fn layer_for_view(layers: &[Layer], view: View) -> Option<u32> {
    let largest = layers
        .iter()
        .max_by_key(|l| (area(l), l.id))
        .map_or(0, |l| l.id);
    match view {
        None => Some(largest),
        Some((0, _)) | Some((_, 0)) => None,
        Some((width, height)) => Some(
            layers
                .iter()
                .filter(|l| area(l) > 0 && l.width >= width && l.height >= height)
                .min_by_key(|l| (area(l), l.id))
                .map_or(largest, |l| l.id),
        ),
    }
}

fn area(layer: &Layer) -> u64 {
    u64::from(layer.width) * u64::from(layer.height)
}

/// What to do with one packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Send it.
    pub forward: bool,
    /// The layer the subscriber gets after it (`None`: none yet; the next packet it gets is
    /// a keyframe of the target).
    pub getting: Option<u32>,
    /// A keyframe of this layer is wanted (the target, not reached yet); the caller asks the
    /// publisher, coalesced.
    pub ask_keyframe: Option<u32>,
}

/// Decides on a packet of `layer` (a `keyframe` or not) for a subscriber whose target is
/// `target` (`None`: not shown) and who is getting `getting`.
pub fn pass(target: Option<u32>, getting: Option<u32>, layer: u32, keyframe: bool) -> Decision {
    let Some(target) = target else {
        return Decision {
            forward: false,
            getting: None,
            ask_keyframe: None,
        };
    };
    if layer == target && keyframe {
        return Decision {
            forward: true,
            getting: Some(target),
            ask_keyframe: None,
        };
    }
    let reached = getting == Some(target);
    Decision {
        // The layer it is getting goes on (also while it waits for the target's keyframe).
        forward: getting == Some(layer),
        getting,
        // Asked on a packet of the target itself: that layer is being sent.
        ask_keyframe: (!reached && layer == target).then_some(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(id: u32, width: u32, height: u32) -> Layer {
        Layer {
            id,
            width,
            height,
            bitrate_kbps: 0,
        }
    }

    fn three() -> Vec<Layer> {
        vec![layer(0, 320, 180), layer(1, 640, 360), layer(2, 1280, 720)]
    }

    #[test]
    fn the_smallest_layer_that_fills_the_tile() {
        let layers = three();
        assert_eq!(layer_for_view(&layers, Some((160, 90))), Some(0));
        assert_eq!(layer_for_view(&layers, Some((320, 180))), Some(0));
        assert_eq!(layer_for_view(&layers, Some((321, 180))), Some(1));
        assert_eq!(layer_for_view(&layers, Some((640, 200))), Some(1));
        assert_eq!(layer_for_view(&layers, Some((1280, 720))), Some(2));
        // Larger than any: the largest.
        assert_eq!(layer_for_view(&layers, Some((1920, 1080))), Some(2));
        // Never said: the largest; not shown: none.
        assert_eq!(layer_for_view(&layers, None), Some(2));
        assert_eq!(layer_for_view(&layers, Some((0, 0))), None);
        assert_eq!(layer_for_view(&layers, Some((640, 0))), None);
        // Order of announcement does not matter.
        let mut reversed = three();
        reversed.reverse();
        assert_eq!(layer_for_view(&reversed, Some((500, 300))), Some(1));
    }

    #[test]
    fn a_track_without_layers_is_layer_zero() {
        assert_eq!(layer_for_view(&[], None), Some(0));
        assert_eq!(layer_for_view(&[], Some((1920, 1080))), Some(0));
        assert_eq!(layer_for_view(&[], Some((0, 0))), None);
        // Layers of unknown size: by id, the highest the largest.
        let no_sizes = vec![layer(0, 0, 0), layer(1, 0, 0)];
        assert_eq!(layer_for_view(&no_sizes, Some((100, 100))), Some(1));
    }

    #[test]
    fn a_subscriber_starts_at_a_keyframe_of_its_target() {
        let target = Some(1);
        let d = pass(target, None, 0, true);
        assert!(!d.forward && d.getting.is_none() && d.ask_keyframe.is_none());
        let d = pass(target, None, 1, false);
        assert!(!d.forward);
        assert_eq!(d.ask_keyframe, Some(1));
        let d = pass(target, None, 1, true);
        assert!(d.forward);
        assert_eq!(d.getting, Some(1));
        let d = pass(target, Some(1), 1, false);
        assert!(d.forward && d.ask_keyframe.is_none());
        // Other layers' packets do not pass.
        assert!(!pass(target, Some(1), 2, true).forward);
        assert!(!pass(target, Some(1), 0, false).forward);
    }

    #[test]
    fn a_switch_waits_for_the_targets_keyframe_and_the_old_layer_goes_on_until_then() {
        // Getting 2, the tile shrank: the target is 0.
        let target = Some(0);
        let d = pass(target, Some(2), 2, false);
        assert!(d.forward, "no freeze while waiting");
        assert_eq!(d.getting, Some(2));
        let d = pass(target, Some(2), 0, false);
        assert!(!d.forward, "a delta of the target is no place to start");
        assert_eq!(d.ask_keyframe, Some(0));
        let d = pass(target, Some(2), 0, true);
        assert!(d.forward);
        assert_eq!(d.getting, Some(0));
        // From then on the old layer stops.
        assert!(!pass(target, Some(0), 2, false).forward);
        assert!(!pass(target, Some(0), 2, true).forward);
    }

    #[test]
    fn a_hidden_track_gets_nothing_and_restarts_at_a_keyframe() {
        let d = pass(None, Some(1), 1, true);
        assert!(!d.forward);
        assert_eq!(d.getting, None);
        assert!(d.ask_keyframe.is_none());
        // Shown again: nothing until the target's keyframe.
        assert!(!pass(Some(1), None, 1, false).forward);
        assert!(pass(Some(1), None, 1, true).forward);
    }
}
