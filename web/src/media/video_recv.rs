//! One remote video track: `VideoDecoder` → its tile's canvas. A decoder starts (and restarts
//! after an error or a codec change) at a keyframe; until then the session asks for one.

use js_sys::Uint8Array;
use videocall_protocol::wire::{Codec, Media};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d, CodecState, EncodedVideoChunk, EncodedVideoChunkInit,
    EncodedVideoChunkType, HtmlCanvasElement, VideoDecoder, VideoDecoderConfig, VideoDecoderInit,
    VideoFrame,
};

use super::video_send::{H264_CODEC, VP8_CODEC};
use super::SharedStats;
use crate::js;

/// The id of the canvas that shows `peer`'s `track`.
pub fn canvas_id(peer: u64, track: u32) -> String {
    format!("video-{peer}-{track}")
}

/// What a packet asks of the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Decoding (or queued).
    Ok,
    /// The decoder waits for a keyframe: ask the publisher.
    NeedKeyframe,
}

/// Decodes one remote track.
pub struct VideoReceiver {
    peer: u64,
    track: u32,
    stats: SharedStats,
    decoder: Option<(VideoDecoder, Codec, Closures)>,
    waiting_for_key: bool,
}

type Closures = (Closure<dyn FnMut(JsValue)>, Closure<dyn FnMut(JsValue)>);

impl VideoReceiver {
    /// A receiver for `peer`'s `track`.
    pub fn new(peer: u64, track: u32, stats: SharedStats) -> Self {
        Self {
            peer,
            track,
            stats,
            decoder: None,
            waiting_for_key: false,
        }
    }

    /// Feeds one packet.
    pub fn receive(&mut self, media: &Media) -> Decoded {
        let codec = media.codec();
        let usable = matches!(&self.decoder, Some((d, c, _)) if *c == codec && d.state() == CodecState::Configured);
        if !usable {
            self.close();
            if !media.keyframe {
                self.stats.borrow_mut().dropped_frames += 1;
                return Decoded::NeedKeyframe;
            }
            match self.open(codec) {
                Some(decoder) => self.decoder = Some(decoder),
                None => return Decoded::Ok,
            }
        }
        let Some((decoder, _, _)) = &self.decoder else {
            return Decoded::NeedKeyframe;
        };
        // A skipped delta frame breaks the chain after it: once behind, skip to a keyframe.
        if !media.keyframe && (self.waiting_for_key || decoder.decode_queue_size() > 8) {
            self.waiting_for_key = true;
            self.stats.borrow_mut().dropped_frames += 1;
            return Decoded::NeedKeyframe;
        }
        self.waiting_for_key = false;
        let data = Uint8Array::from(media.payload.as_ref());
        let kind = if media.keyframe {
            EncodedVideoChunkType::Key
        } else {
            EncodedVideoChunkType::Delta
        };
        let init = EncodedVideoChunkInit::new(&data, 0, kind);
        init.set_timestamp_f64(media.capture_timestamp_us as f64);
        match EncodedVideoChunk::new(&init).and_then(|chunk| decoder.decode(&chunk)) {
            Ok(()) => Decoded::Ok,
            Err(_) => {
                self.close();
                Decoded::NeedKeyframe
            }
        }
    }

    fn open(&self, codec: Codec) -> Option<(VideoDecoder, Codec, Closures)> {
        let name = match codec {
            Codec::H264 => H264_CODEC,
            Codec::Vp8 => VP8_CODEC,
            _ => return None,
        };
        let canvas = canvas_id(self.peer, self.track);
        let stats = self.stats.clone();
        let peer = self.peer;
        let on_output = Closure::<dyn FnMut(JsValue)>::new(move |frame: JsValue| {
            let Ok(frame) = frame.dyn_into::<VideoFrame>() else {
                return;
            };
            draw(&canvas, &frame);
            let capture_ms = frame.timestamp() / 1000.0;
            frame.close();
            stats
                .borrow_mut()
                .frame_rendered(peer, capture_ms, js::now_ms());
        });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            web_sys::console::warn_1(&format!("video decoder: {}", js::error_text(&error)).into());
        });
        let init = VideoDecoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        );
        let decoder = VideoDecoder::new(&init).ok()?;
        let config = VideoDecoderConfig::new(name);
        config.set_optimize_for_latency(true);
        decoder.configure(&config).ok()?;
        Some((decoder, codec, (on_output, on_error)))
    }

    /// Releases the decoder.
    pub fn close(&mut self) {
        if let Some((decoder, _, _)) = self.decoder.take() {
            if decoder.state() != CodecState::Closed {
                let _ = decoder.close();
            }
        }
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        self.close();
    }
}

fn draw(canvas_id: &str, frame: &VideoFrame) {
    let Some(canvas) = js::document()
        .get_element_by_id(canvas_id)
        .and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok())
    else {
        return;
    };
    let (width, height) = (frame.display_width(), frame.display_height());
    if canvas.width() != width || canvas.height() != height {
        canvas.set_width(width);
        canvas.set_height(height);
    }
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok());
    if let Some(context) = context {
        let _ = context.draw_image_with_video_frame_and_dw_and_dh(
            frame,
            0.0,
            0.0,
            f64::from(width),
            f64::from(height),
        );
    }
}
