//! Media in the page: capture (camera, microphone, screen), WebCodecs encoders that hand
//! `Media` envelopes to the connection, and per-participant decoders that draw on canvases and
//! play through one `AudioContext`.

pub mod audio_recv;
pub mod audio_send;
pub mod capture;
pub mod video_recv;
pub mod video_send;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use videocall_protocol::wire::Envelope;

use crate::meter::RateMeter;

/// Track id of the camera.
pub const CAMERA_TRACK: u32 = 1;
/// Track id of the microphone.
pub const AUDIO_TRACK: u32 = 2;
/// Track id of the screen share.
pub const SCREEN_TRACK: u32 = 3;

/// An encoder's error and output callbacks, kept alive as long as the encoder.
pub type EncoderCallbacks = (
    wasm_bindgen::closure::Closure<dyn FnMut(wasm_bindgen::JsValue)>,
    wasm_bindgen::closure::Closure<dyn FnMut(wasm_bindgen::JsValue, wasm_bindgen::JsValue)>,
);

/// Where encoders put their envelopes.
pub type MediaOut = Rc<dyn Fn(Envelope)>;

/// Figures for the connection panel and the browser tests.
#[derive(Default)]
pub struct Stats {
    /// Bytes and envelopes sent.
    pub sent: RateMeter,
    /// Bytes and envelopes received.
    pub received: RateMeter,
    /// Video frames encoded.
    pub encoded: RateMeter,
    /// Video frames decoded.
    pub decoded: RateMeter,
    /// Video frames decoded, in all.
    pub frames_decoded: u64,
    /// Video frames decoded per participant.
    pub frames_by_peer: HashMap<u64, u64>,
    /// Audio frames decoded, in all and per participant.
    pub audio_frames_decoded: u64,
    /// Audio frames decoded per participant.
    pub audio_by_peer: HashMap<u64, u64>,
    /// Frames the encoders or decoders skipped.
    pub dropped_frames: u64,
    /// Video frames encoded per simulcast layer.
    pub encoded_by_layer: [u64; crate::simulcast::MAX_LAYERS],
    /// Frames not encoded in a layer nobody gets (dynacast).
    pub paused_layer_frames: u64,
    /// The simulcast layer of the last camera frame received per participant.
    pub layer_by_peer: HashMap<u64, u32>,
    /// Capture → rendered, milliseconds, the last few thousand frames.
    pub glass_to_glass_ms: Vec<f64>,
    /// When Join was clicked (wall clock, ms).
    pub join_clicked_ms: Option<f64>,
    /// When the first remote frame was rendered (wall clock, ms).
    pub first_remote_frame_ms: Option<f64>,
    /// Last round-trip time to the relay.
    pub rtt_ms: Option<f64>,
}

/// Stats shared by everything in the page.
pub type SharedStats = Rc<RefCell<Stats>>;

const MAX_LATENCY_SAMPLES: usize = 5000;

impl Stats {
    /// A frame of `peer` was rendered; it was captured at `capture_ms`.
    pub fn frame_rendered(&mut self, peer: u64, capture_ms: f64, now_ms: f64) {
        self.frames_decoded += 1;
        *self.frames_by_peer.entry(peer).or_default() += 1;
        self.decoded.add(now_ms, 0);
        self.first_remote_frame_ms.get_or_insert(now_ms);
        if self.glass_to_glass_ms.len() >= MAX_LATENCY_SAMPLES {
            self.glass_to_glass_ms.remove(0);
        }
        self.glass_to_glass_ms.push((now_ms - capture_ms).max(0.0));
    }
}
