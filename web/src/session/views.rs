//! Measures how large the page shows each remote video, for the relay's choice of layer
//! ([`crate::tile_views::TileViews`] says what to send): the tile's size in device pixels, or
//! nothing at all while the page is in the background or the tile is not laid out.

use crate::js;
use crate::media::video_recv::canvas_id;

/// The size in device pixels at which the page shows `publisher`'s `track` now: 0 x 0 when
/// the page is in the background or the tile is not laid out (hidden); `None` when the page
/// has no tile for it (nothing to say: the relay sends its largest layer).
pub fn measure(publisher: u64, track: u32) -> Option<(u32, u32)> {
    let document = js::document();
    let element = document.get_element_by_id(&canvas_id(publisher, track))?;
    if document.hidden() {
        return Some((0, 0));
    }
    let scale = js::window().device_pixel_ratio().max(1.0);
    let pixels = |css: i32| (f64::from(css.max(0)) * scale).round() as u32;
    Some((
        pixels(element.client_width()),
        pixels(element.client_height()),
    ))
}
