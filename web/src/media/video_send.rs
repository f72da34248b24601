//! Camera or screen → `VideoEncoder`s → `Media` envelopes. H.264 (baseline, Annex B, as the
//! streamer sends) where the browser can encode it, VP8 otherwise. Frames come from a
//! `MediaStreamTrackProcessor` where there is one, else from a `<video>` element (Firefox).
//!
//! Simulcast: a camera is encoded in up to three layers ([`crate::simulcast`]), one encoder
//! each, every captured frame given to each (the encoder scales it to its layer's size). A
//! layer the relay says nobody gets (`LayerDemand`) is not encoded until someone does, and then
//! starts with a keyframe. The relay picks a layer per subscriber, so congestion notices do not
//! lower a simulcast track's bitrate (they do a single layer's).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use js_sys::Object;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, Codec, Layer, Media, MediaKind};
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
use crate::simulcast::{camera_layers, demanded, even, LayerPlan, CAMERA_FPS, SCREEN_FPS};

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
    codec: Rc<Cell<Codec>>,
    vp8_supported: bool,
    too_slow: Rc<Cell<bool>>,
    /// The capture size the layers were sized for.
    captured: Cell<(u32, u32)>,
    layers: Vec<LayerEncoder>,
    /// The single layer's bitrate under congestion notices (simulcast: unused).
    bitrate: Cell<BitrateControl>,
    /// Frames per second taken from the capture.
    fps: f64,
    last_frame_ms: Cell<f64>,
    paused: Cell<bool>,
    stopped: Cell<bool>,
    stats: SharedStats,
}

/// One layer's encoder.
struct LayerEncoder {
    plan: Cell<LayerPlan>,
    encoder: VideoEncoder,
    keyframe_wanted: Cell<bool>,
    last_keyframe_ms: Cell<f64>,
    /// Someone gets this layer (dynacast); until the relay says, everyone.
    demanded: Cell<bool>,
    _closures: EncoderCallbacks,
}

async fn supported(codec: &str, width: u32, height: u32) -> bool {
    let config = encoder_config(codec, width, height, 1_000_000, CAMERA_FPS);
    js::wait(VideoEncoder::is_config_supported(&config))
        .await
        .map(|support| js::get(&support, "supported").as_bool() == Some(true))
        .unwrap_or(false)
}

fn encoder_config(
    codec: &str,
    width: u32,
    height: u32,
    bitrate: u32,
    fps: f64,
) -> VideoEncoderConfig {
    let config = VideoEncoderConfig::new(codec, height, width);
    config.set_bitrate(bitrate);
    config.set_framerate(fps);
    config.set_latency_mode(LatencyMode::Realtime);
    if codec.starts_with("avc1") {
        let avc = Object::new();
        js::set(&avc, "format", &"annexb".into());
        js::set(&config, "avc", &avc);
    }
    config
}

fn codec_name(codec: Codec) -> &'static str {
    if codec == Codec::H264 {
        H264_CODEC
    } else {
        VP8_CODEC
    }
}

/// Everything a layer's output callback needs.
#[derive(Clone)]
struct OutputContext {
    track_id: u32,
    kind: MediaKind,
    codec: Rc<Cell<Codec>>,
    too_slow: Rc<Cell<bool>>,
    sequence: Rc<Cell<u64>>,
    out: MediaOut,
    stats: SharedStats,
}

impl LayerEncoder {
    fn start(plan: LayerPlan, fps: f64, context: OutputContext) -> Result<Self, String> {
        let slow_frames = Cell::new(0u32);
        let layer = plan.id;
        let codec = codec_name(context.codec.get());
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
                        context.too_slow.set(true);
                    }
                } else {
                    slow_frames.set(0);
                }
                context.sequence.set(context.sequence.get() + 1);
                let media = Media {
                    participant_id: 0,
                    track_id: context.track_id,
                    kind: context.kind as i32,
                    codec: context.codec.get() as i32,
                    sequence: context.sequence.get(),
                    capture_timestamp_us: chunk.timestamp() as u64,
                    keyframe: chunk.type_() == EncodedVideoChunkType::Key,
                    layer,
                    payload: Bytes::from(payload),
                    sealed: false,
                    audio_level: 0,
                };
                {
                    let mut stats = context.stats.borrow_mut();
                    stats.encoded.add(now, 0);
                    if let Some(count) = stats.encoded_by_layer.get_mut(layer as usize) {
                        *count += 1;
                    }
                }
                (context.out)(envelope(Body::Media(media)));
            });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            web_sys::console::warn_1(
                &format!("video encoder (layer {layer}): {}", js::error_text(&error)).into(),
            );
        });
        let init = VideoEncoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        );
        let encoder = VideoEncoder::new(&init).map_err(|e| js::error_text(&e))?;
        let layer = LayerEncoder {
            plan: Cell::new(plan),
            encoder,
            keyframe_wanted: Cell::new(true),
            last_keyframe_ms: Cell::new(0.0),
            demanded: Cell::new(true),
            _closures: (on_error, on_output),
        };
        layer.configure(plan, codec, fps)?;
        Ok(layer)
    }

    fn configure(&self, plan: LayerPlan, codec: &str, fps: f64) -> Result<(), String> {
        self.plan.set(plan);
        self.keyframe_wanted.set(true);
        self.encoder
            .configure(&encoder_config(
                codec,
                plan.width,
                plan.height,
                plan.bitrate,
                fps,
            ))
            .map_err(|e| js::error_text(&e))
    }

    /// Encodes `frame` (not closed here) if this layer is wanted and keeps up.
    fn encode(&self, frame: &VideoFrame, now: f64, stats: &SharedStats) {
        if !self.demanded.get() {
            stats.borrow_mut().paused_layer_frames += 1;
            return;
        }
        if self.encoder.encode_queue_size() > MAX_QUEUED_FRAMES {
            stats.borrow_mut().dropped_frames += 1;
            return;
        }
        let keyframe =
            self.keyframe_wanted.get() || now - self.last_keyframe_ms.get() >= KEYFRAME_INTERVAL_MS;
        let options = VideoEncoderEncodeOptions::new();
        options.set_key_frame(keyframe);
        if self.encoder.encode_with_options(frame, &options).is_ok() && keyframe {
            self.keyframe_wanted.set(false);
            self.last_keyframe_ms.set(now);
        }
    }
}

impl VideoSender {
    /// Starts sending `track` as `track_id` of `kind` through `out`: a camera in simulcast
    /// layers when `simulcast`, a screen as one layer at a low frame rate.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        track: MediaStreamTrack,
        track_id: u32,
        kind: MediaKind,
        element_capture: bool,
        max_bitrate: u32,
        simulcast: bool,
        out: MediaOut,
        stats: SharedStats,
    ) -> Result<Self, String> {
        let settings = track.get_settings();
        let width = even(js::get(&settings, "width").as_f64().unwrap_or(640.0) as u32);
        let height = even(js::get(&settings, "height").as_f64().unwrap_or(480.0) as u32);
        let vp8_supported = supported(VP8_CODEC, width, height).await;
        let codec = if supported(H264_CODEC, width, height).await {
            Codec::H264
        } else if vp8_supported {
            Codec::Vp8
        } else {
            return Err("this browser can encode neither H.264 nor VP8".into());
        };
        let screen = kind == MediaKind::Screen;
        let fps = if screen { SCREEN_FPS } else { CAMERA_FPS };
        let plans = camera_layers(width, height, max_bitrate, simulcast && !screen);
        let context = OutputContext {
            track_id,
            kind,
            codec: Rc::new(Cell::new(codec)),
            too_slow: Rc::new(Cell::new(false)),
            sequence: Rc::new(Cell::new(0)),
            out,
            stats: stats.clone(),
        };
        let layers = plans
            .into_iter()
            .map(|plan| LayerEncoder::start(plan, fps, context.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let state = Rc::new(SenderState {
            track: track.clone(),
            codec: context.codec,
            vp8_supported,
            too_slow: context.too_slow,
            captured: Cell::new((width, height)),
            layers,
            bitrate: Cell::new(BitrateControl::new(max_bitrate)),
            fps,
            last_frame_ms: Cell::new(0.0),
            paused: Cell::new(false),
            stopped: Cell::new(false),
            stats,
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

    /// The layers to announce (none for a single layer: it is layer 0).
    pub fn layers(&self) -> Vec<Layer> {
        if self.state.layers.len() < 2 {
            return Vec::new();
        }
        self.state
            .layers
            .iter()
            .map(|l| l.plan.get().announced())
            .collect()
    }

    /// A subscriber needs a keyframe of `layer` (`None`: of every layer).
    pub fn request_keyframe(&self, layer: Option<u32>) {
        for encoder in &self.state.layers {
            if layer.is_none_or(|l| l == encoder.plan.get().id) || self.state.layers.len() == 1 {
                encoder.keyframe_wanted.set(true);
            }
        }
    }

    /// Dynacast: the layers someone gets; the others stop being encoded, and one that comes
    /// back starts with a keyframe.
    pub fn set_demand(&self, layers: &[u32]) {
        if self.state.layers.len() < 2 {
            return;
        }
        let plans: Vec<LayerPlan> = self.state.layers.iter().map(|l| l.plan.get()).collect();
        let mask = demanded(&plans, Some(layers));
        for encoder in &self.state.layers {
            let wanted = mask & (1 << encoder.plan.get().id) != 0;
            if wanted && !encoder.demanded.get() {
                encoder.keyframe_wanted.set(true);
            }
            encoder.demanded.set(wanted);
        }
    }

    /// Stops sending frames (camera off) without releasing the encoders.
    pub fn set_paused(&self, paused: bool) {
        self.state.paused.set(paused);
        if !paused {
            self.request_keyframe(None);
        }
    }

    /// Subscribers lose packets: lower the bitrate (a single layer only: with simulcast the
    /// relay gives them a lower layer).
    pub fn congested(&self) {
        self.change_bitrate(BitrateControl::congested);
    }

    /// No loss for a while: raise the bitrate again.
    pub fn recover(&self) {
        self.change_bitrate(BitrateControl::quiet);
    }

    /// The bitrate now (all layers).
    pub fn bitrate(&self) -> u32 {
        if self.state.layers.len() == 1 {
            return self.state.bitrate.get().current();
        }
        self.state.layers.iter().map(|l| l.plan.get().bitrate).sum()
    }

    fn change_bitrate(&self, change: fn(&mut BitrateControl) -> u32) {
        if self.state.layers.len() != 1 {
            return;
        }
        let mut control = self.state.bitrate.get();
        let before = control.current();
        if change(&mut control) != before {
            self.state.bitrate.set(control);
            self.state.reconfigure(self.state.captured.get());
        }
    }

    /// Stops capture and encoding.
    pub fn stop(&self) {
        self.state.stopped.set(true);
        self.state.track.stop();
        for layer in &self.state.layers {
            let _ = layer.encoder.close();
        }
    }
}

impl SenderState {
    /// Sizes every layer for a capture of `width`×`height` (the same number of layers, as
    /// announced) and applies the codec and bitrate of the moment.
    fn reconfigure(&self, (width, height): (u32, u32)) {
        self.captured.set((width, height));
        let top = self.layers.len().saturating_sub(1) as u32;
        let name = codec_name(self.codec.get());
        for layer in &self.layers {
            let mut plan = layer.plan.get();
            let halvings = top - plan.id.min(top);
            plan.width = even(width >> halvings);
            plan.height = even(height >> halvings);
            if self.layers.len() == 1 {
                plan.bitrate = self.bitrate.get().current();
            }
            if let Err(error) = layer.configure(plan, name, self.fps) {
                web_sys::console::warn_1(&format!("video encoder: {error}").into());
            }
        }
    }

    /// Encodes `frame` in every wanted layer (and closes it), stamped with the wall clock so
    /// receivers can measure glass-to-glass latency.
    fn encode(&self, frame: VideoFrame) {
        let now = js::now_ms();
        // A screen is taken at its low frame rate (a little early is on time).
        let too_soon =
            self.fps < CAMERA_FPS && now - self.last_frame_ms.get() < 1000.0 / self.fps - 5.0;
        if self.paused.get() || too_soon {
            frame.close();
            return;
        }
        self.last_frame_ms.set(now);
        let size = (even(frame.display_width()), even(frame.display_height()));
        if self.too_slow.get() && self.codec.get() == Codec::H264 && self.vp8_supported {
            // Some browsers' H.264 encoders (Firefox's, through x264) look ahead ~1.4 s even
            // in realtime mode; VP8 does not.
            web_sys::console::warn_1(
                &"the H.264 encoder holds frames back: switching to VP8".into(),
            );
            self.codec.set(Codec::Vp8);
            self.reconfigure(size);
        } else if size != self.captured.get() {
            self.reconfigure(size);
        }
        let init = VideoFrameInit::new();
        init.set_timestamp_f64(now * 1000.0);
        let stamped = VideoFrame::new_with_video_frame_and_video_frame_init(&frame, &init);
        frame.close();
        let Ok(stamped) = stamped else {
            return;
        };
        for layer in &self.layers {
            layer.encode(&stamped, now, &self.stats);
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
