//! Camera or screen → `VideoEncoder` → `Media` envelopes. H.264 (baseline, Annex B, as the
//! streamer sends) where the browser can encode it, VP8 otherwise. Frames come from a
//! `MediaStreamTrackProcessor` where there is one, else from a `<video>` element (Firefox).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use js_sys::Object;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, Codec, Media, MediaKind};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    EncodedVideoChunk, EncodedVideoChunkType, HtmlVideoElement, LatencyMode, MediaStream,
    MediaStreamTrack, MediaStreamTrackProcessor, MediaStreamTrackProcessorInit, VideoEncoder,
    VideoEncoderConfig, VideoEncoderEncodeOptions, VideoEncoderInit, VideoFrame, VideoFrameInit,
};

use super::{EncoderCallbacks, MediaOut, SharedStats};
use crate::bitrate::BitrateControl;
use crate::js::{self, StreamReader};

/// H.264 constrained baseline, level 3.1 (up to 1280×720 at 30 fps).
pub const H264_CODEC: &str = "avc1.42e01f";
/// WebCodecs name of VP8.
pub const VP8_CODEC: &str = "vp8";
const KEYFRAME_INTERVAL_MS: f64 = 3000.0;
const MAX_QUEUED_FRAMES: u32 = 2;
/// An encoder whose frames come out later than this holds them back (a lookahead): after
/// `SLOW_FRAMES_TO_SWITCH` such frames in a row, H.264 gives way to VP8.
const SLOW_ENCODER_MS: f64 = 250.0;
const SLOW_FRAMES_TO_SWITCH: u32 = 30;

/// One video track being sent.
pub struct VideoSender {
    state: Rc<SenderState>,
}

struct SenderState {
    track: MediaStreamTrack,
    encoder: VideoEncoder,
    codec: Rc<Cell<Codec>>,
    vp8_supported: bool,
    too_slow: Rc<Cell<bool>>,
    configured: Cell<(u32, u32)>,
    bitrate: Cell<BitrateControl>,
    keyframe_wanted: Cell<bool>,
    last_keyframe_ms: Cell<f64>,
    paused: Cell<bool>,
    stopped: Cell<bool>,
    stats: SharedStats,
    _closures: EncoderCallbacks,
}

async fn supported(codec: &str, width: u32, height: u32) -> bool {
    let config = encoder_config(codec, width, height, 1_000_000);
    js::wait(VideoEncoder::is_config_supported(&config))
        .await
        .map(|support| js::get(&support, "supported").as_bool() == Some(true))
        .unwrap_or(false)
}

fn encoder_config(codec: &str, width: u32, height: u32, bitrate: u32) -> VideoEncoderConfig {
    let config = VideoEncoderConfig::new(codec, height, width);
    config.set_bitrate(bitrate);
    config.set_framerate(30.0);
    config.set_latency_mode(LatencyMode::Realtime);
    if codec.starts_with("avc1") {
        let avc = Object::new();
        js::set(&avc, "format", &"annexb".into());
        js::set(&config, "avc", &avc);
    }
    config
}

/// Frame size rounded down to even numbers (H.264 wants them).
fn even(value: u32) -> u32 {
    (value & !1).max(2)
}

impl VideoSender {
    /// Starts sending `track` as `track_id` of `kind` through `out`.
    pub async fn start(
        track: MediaStreamTrack,
        track_id: u32,
        kind: MediaKind,
        element_capture: bool,
        max_bitrate: u32,
        out: MediaOut,
        stats: SharedStats,
    ) -> Result<Self, String> {
        let settings = track.get_settings();
        let width = even(js::get(&settings, "width").as_f64().unwrap_or(640.0) as u32);
        let height = even(js::get(&settings, "height").as_f64().unwrap_or(480.0) as u32);
        let vp8_supported = supported(VP8_CODEC, width, height).await;
        let (codec, codec_name) = if supported(H264_CODEC, width, height).await {
            (Codec::H264, H264_CODEC)
        } else if vp8_supported {
            (Codec::Vp8, VP8_CODEC)
        } else {
            return Err("this browser can encode neither H.264 nor VP8".into());
        };
        let codec = Rc::new(Cell::new(codec));
        let too_slow = Rc::new(Cell::new(false));
        let sequence = Cell::new(0u64);
        let slow_frames = Cell::new(0u32);
        let sent_stats = stats.clone();
        let (output_codec, output_too_slow) = (codec.clone(), too_slow.clone());
        let on_output =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |chunk: JsValue, _meta| {
                let Ok(chunk) = chunk.dyn_into::<EncodedVideoChunk>() else {
                    return;
                };
                let mut payload = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to_with_u8_slice(&mut payload).is_err() {
                    return;
                }
                // Frames are stamped with the wall clock when they go in (see `encode`).
                let now = js::now_ms();
                if now - chunk.timestamp() / 1000.0 > SLOW_ENCODER_MS {
                    slow_frames.set(slow_frames.get() + 1);
                    if slow_frames.get() >= SLOW_FRAMES_TO_SWITCH {
                        output_too_slow.set(true);
                    }
                } else {
                    slow_frames.set(0);
                }
                sequence.set(sequence.get() + 1);
                let media = Media {
                    participant_id: 0,
                    track_id,
                    kind: kind as i32,
                    codec: output_codec.get() as i32,
                    sequence: sequence.get(),
                    capture_timestamp_us: chunk.timestamp() as u64,
                    keyframe: chunk.type_() == EncodedVideoChunkType::Key,
                    layer: 0,
                    payload: Bytes::from(payload),
                    sealed: false,
                    audio_level: 0,
                };
                sent_stats.borrow_mut().encoded.add(now, 0);
                out(envelope(Body::Media(media)));
            });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            web_sys::console::warn_1(&format!("video encoder: {}", js::error_text(&error)).into());
        });
        let init = VideoEncoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        );
        let encoder = VideoEncoder::new(&init).map_err(|e| js::error_text(&e))?;
        encoder
            .configure(&encoder_config(codec_name, width, height, max_bitrate))
            .map_err(|e| js::error_text(&e))?;
        let state = Rc::new(SenderState {
            track: track.clone(),
            encoder,
            codec,
            vp8_supported,
            too_slow,
            configured: Cell::new((width, height)),
            bitrate: Cell::new(BitrateControl::new(max_bitrate)),
            keyframe_wanted: Cell::new(true),
            last_keyframe_ms: Cell::new(0.0),
            paused: Cell::new(false),
            stopped: Cell::new(false),
            stats,
            _closures: (on_error, on_output),
        });
        if element_capture || !js::has_global("MediaStreamTrackProcessor") {
            spawn_local(pump_from_element(state.clone()));
        } else {
            spawn_local(pump_from_processor(state.clone()));
        }
        Ok(Self { state })
    }

    /// The codec in use.
    pub fn codec(&self) -> Codec {
        self.state.codec.get()
    }

    /// A subscriber needs a keyframe.
    pub fn request_keyframe(&self) {
        self.state.keyframe_wanted.set(true);
    }

    /// Stops sending frames (camera off) without releasing the encoder.
    pub fn set_paused(&self, paused: bool) {
        self.state.paused.set(paused);
        if !paused {
            self.state.keyframe_wanted.set(true);
        }
    }

    /// Subscribers lose packets: lower the bitrate.
    pub fn congested(&self) {
        self.change_bitrate(BitrateControl::congested);
    }

    /// No loss for a while: raise the bitrate again.
    pub fn recover(&self) {
        self.change_bitrate(BitrateControl::quiet);
    }

    /// The bitrate now.
    pub fn bitrate(&self) -> u32 {
        self.state.bitrate.get().current()
    }

    fn change_bitrate(&self, change: fn(&mut BitrateControl) -> u32) {
        let mut control = self.state.bitrate.get();
        let before = control.current();
        if change(&mut control) != before {
            self.state.bitrate.set(control);
            self.state.reconfigure(self.state.configured.get());
        }
    }

    /// Stops capture and encoding.
    pub fn stop(&self) {
        self.state.stopped.set(true);
        self.state.track.stop();
        let _ = self.state.encoder.close();
    }
}

impl SenderState {
    fn reconfigure(&self, (width, height): (u32, u32)) {
        let name = if self.codec.get() == Codec::H264 {
            H264_CODEC
        } else {
            VP8_CODEC
        };
        self.configured.set((width, height));
        let _ = self.encoder.configure(&encoder_config(
            name,
            width,
            height,
            self.bitrate.get().current(),
        ));
        self.keyframe_wanted.set(true);
    }

    /// Encodes `frame` (and closes it), stamped with the wall clock so receivers can measure
    /// glass-to-glass latency.
    fn encode(&self, frame: VideoFrame) {
        let now = js::now_ms();
        if self.paused.get() || self.encoder.encode_queue_size() > MAX_QUEUED_FRAMES {
            if !self.paused.get() {
                self.stats.borrow_mut().dropped_frames += 1;
            }
            frame.close();
            return;
        }
        let size = (even(frame.display_width()), even(frame.display_height()));
        if self.too_slow.get() && self.codec.get() == Codec::H264 && self.vp8_supported {
            // Some browsers' H.264 encoders (Firefox's, through x264) look ahead ~1.4 s even
            // in realtime mode; VP8 does not.
            web_sys::console::warn_1(
                &"the H.264 encoder holds frames back: switching to VP8".into(),
            );
            self.codec.set(Codec::Vp8);
            self.reconfigure(size);
        } else if size != self.configured.get() {
            self.reconfigure(size);
        }
        let init = VideoFrameInit::new();
        init.set_timestamp_f64(now * 1000.0);
        let stamped = VideoFrame::new_with_video_frame_and_video_frame_init(&frame, &init);
        frame.close();
        let Ok(stamped) = stamped else {
            return;
        };
        let keyframe =
            self.keyframe_wanted.get() || now - self.last_keyframe_ms.get() >= KEYFRAME_INTERVAL_MS;
        let options = VideoEncoderEncodeOptions::new();
        options.set_key_frame(keyframe);
        if self.encoder.encode_with_options(&stamped, &options).is_ok() && keyframe {
            self.keyframe_wanted.set(false);
            self.last_keyframe_ms.set(now);
        }
        stamped.close();
    }
}

async fn pump_from_processor(state: Rc<SenderState>) {
    let init = MediaStreamTrackProcessorInit::new(&state.track);
    let Ok(processor) = MediaStreamTrackProcessor::new(&init) else {
        return spawn_local(pump_from_element(state));
    };
    let Ok(reader) = StreamReader::new(&processor.readable()) else {
        return;
    };
    while let Ok(Some(frame)) = reader.next().await {
        let Ok(frame) = frame.dyn_into::<VideoFrame>() else {
            continue;
        };
        if state.stopped.get() {
            frame.close();
            break;
        }
        state.encode(frame);
    }
    reader.cancel();
}

/// Firefox has no `MediaStreamTrackProcessor`: play the track in a detached `<video>` and
/// take a frame from it 30 times a second.
async fn pump_from_element(state: Rc<SenderState>) {
    let Ok(video) = js::document()
        .create_element("video")
        .map(|e| e.unchecked_into::<HtmlVideoElement>())
    else {
        return;
    };
    video.set_muted(true);
    let stream = MediaStream::new().ok();
    if let Some(stream) = &stream {
        stream.add_track(&state.track);
    }
    video.set_src_object(stream.as_ref());
    if let Ok(promise) = video.play() {
        let _ = js::wait(promise).await;
    }
    let last = RefCell::new(-1.0);
    while !state.stopped.get() {
        js::sleep(33).await;
        // HAVE_CURRENT_DATA or better, and a new picture since the last one.
        if video.ready_state() < 2 || *last.borrow() == video.current_time() {
            continue;
        }
        *last.borrow_mut() = video.current_time();
        if let Ok(frame) = VideoFrame::new_with_html_video_element(&video) {
            state.encode(frame);
        }
    }
    video.set_src_object(None);
}
