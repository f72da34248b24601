//! Microphone → `AudioEncoder` (Opus, 48 kHz, mono, 20 ms) → `Media` envelopes, plus the
//! speaking flag from the input level. Input comes from a `MediaStreamTrackProcessor`, or in
//! Firefox from an `AudioWorklet` that posts the samples.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use js_sys::{Float32Array, Object};
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, Codec, Media, MediaKind};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    AudioContext, AudioData, AudioDataCopyToOptions, AudioDataInit, AudioEncoder,
    AudioEncoderConfig, AudioEncoderInit, AudioSampleFormat, AudioWorkletNode, EncodedAudioChunk,
    MediaStream, MediaStreamTrack, MediaStreamTrackProcessor, MediaStreamTrackProcessorInit,
    MessageEvent,
};

use super::{EncoderCallbacks, MediaOut, AUDIO_TRACK};
use crate::js::{self, StreamReader};
use crate::playout::{audio_level, rms, SpeakingDetector};

const SAMPLE_RATE: u32 = 48_000;
const FRAME_SAMPLES: usize = 960; // 20 ms
const BITRATE: u32 = 32_000;

/// The Firefox capture path: the page's context, the node and its message handler.
type Worklet = (
    AudioContext,
    AudioWorkletNode,
    Closure<dyn FnMut(MessageEvent)>,
);

/// The microphone being sent.
pub struct AudioSender {
    state: Rc<AudioState>,
}

struct AudioState {
    track: MediaStreamTrack,
    encoder: AudioEncoder,
    muted: Cell<bool>,
    stopped: Cell<bool>,
    detector: RefCell<SpeakingDetector>,
    /// The last input's level, as `Media.audio_level` carries it.
    level: Rc<Cell<u32>>,
    on_speaking: Box<dyn Fn(bool)>,
    worklet: RefCell<Option<Worklet>>,
    _closures: EncoderCallbacks,
}

impl AudioSender {
    /// Starts sending `track`; `on_speaking` hears when speaking starts and stops.
    pub async fn start(
        track: MediaStreamTrack,
        element_capture: bool,
        context: AudioContext,
        out: MediaOut,
        on_speaking: Box<dyn Fn(bool)>,
    ) -> Result<Self, String> {
        let sequence = Cell::new(0u64);
        let level = Rc::new(Cell::new(0u32));
        let packet_level = level.clone();
        let on_output =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |chunk: JsValue, _meta| {
                let Ok(chunk) = chunk.dyn_into::<EncodedAudioChunk>() else {
                    return;
                };
                let mut payload = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to_with_u8_slice(&mut payload).is_err() {
                    return;
                }
                sequence.set(sequence.get() + 1);
                out(envelope(Body::Media(Media {
                    participant_id: 0,
                    track_id: AUDIO_TRACK,
                    kind: MediaKind::Audio as i32,
                    codec: Codec::Opus as i32,
                    sequence: sequence.get(),
                    capture_timestamp_us: (js::now_ms() * 1000.0) as u64,
                    keyframe: true,
                    layer: 0,
                    payload: Bytes::from(payload),
                    sealed: false,
                    audio_level: packet_level.get(),
                })));
            });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            web_sys::console::warn_1(&format!("audio encoder: {}", js::error_text(&error)).into());
        });
        let init = AudioEncoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        );
        let encoder = AudioEncoder::new(&init).map_err(|e| js::error_text(&e))?;
        let config = AudioEncoderConfig::new("opus", 1, SAMPLE_RATE);
        config.set_bitrate(BITRATE);
        let opus = Object::new();
        js::set(&opus, "frameDuration", &20_000.into());
        js::set(&config, "opus", &opus);
        encoder.configure(&config).map_err(|e| js::error_text(&e))?;
        let state = Rc::new(AudioState {
            track,
            encoder,
            muted: Cell::new(false),
            stopped: Cell::new(false),
            detector: RefCell::new(SpeakingDetector::default()),
            level,
            on_speaking,
            worklet: RefCell::new(None),
            _closures: (on_error, on_output),
        });
        if element_capture || !js::has_global("MediaStreamTrackProcessor") {
            start_worklet(&state, context).await?;
        } else {
            spawn_local(pump_from_processor(state.clone()));
        }
        Ok(Self { state })
    }

    /// Mutes (nothing is encoded or sent) or unmutes.
    pub fn set_muted(&self, muted: bool) {
        self.state.muted.set(muted);
        self.state.track.set_enabled(!muted);
        if muted {
            if let Some(changed) = self.state.detector.borrow_mut().update(0.0, f64::MAX) {
                (self.state.on_speaking)(changed);
            }
        }
    }

    /// Stops capture and encoding.
    pub fn stop(&self) {
        self.state.stopped.set(true);
        self.state.track.stop();
        let _ = self.state.encoder.close();
        if let Some((_, node, _)) = self.state.worklet.borrow_mut().take() {
            let _ = node.disconnect();
        }
    }
}

impl AudioState {
    fn level(&self, samples: &[f32]) {
        let rms = rms(samples);
        self.level.set(audio_level(rms));
        let changed = self.detector.borrow_mut().update(rms, js::now_ms());
        if let Some(speaking) = changed {
            (self.on_speaking)(speaking);
        }
    }

    fn encode(&self, data: AudioData) {
        if !self.muted.get() && !self.stopped.get() {
            let _ = self.encoder.encode(&data);
        }
        data.close();
    }
}

async fn pump_from_processor(state: Rc<AudioState>) {
    let init = MediaStreamTrackProcessorInit::new(&state.track);
    let Ok(processor) = MediaStreamTrackProcessor::new(&init) else {
        return;
    };
    let Ok(reader) = StreamReader::new(&processor.readable()) else {
        return;
    };
    while let Ok(Some(data)) = reader.next().await {
        let Ok(data) = data.dyn_into::<AudioData>() else {
            continue;
        };
        if state.stopped.get() {
            data.close();
            break;
        }
        if !state.muted.get() {
            let samples = Float32Array::new_with_length(data.number_of_frames());
            let options = AudioDataCopyToOptions::new(0);
            options.set_format(AudioSampleFormat::F32Planar);
            if data.copy_to_with_buffer_source(&samples, &options).is_ok() {
                state.level(&samples.to_vec());
            }
        }
        state.encode(data);
    }
    reader.cancel();
}

/// Firefox: an `AudioWorklet` posts each render quantum; 20 ms of them make one `AudioData`.
async fn start_worklet(state: &Rc<AudioState>, context: AudioContext) -> Result<(), String> {
    let text = |e: JsValue| js::error_text(&e);
    // The page's context was made in the Join click, so browsers let it run (one made later
    // may stay suspended until another gesture). Never wait for it: a refused resume stays
    // pending, and the meeting must go on without sound rather than hang.
    let _ = context.resume();
    let module = context
        .audio_worklet()
        .map_err(text)?
        .add_module("/assets/capture-worklet.js")
        .map_err(text)?;
    js::wait(module).await.map_err(text)?;
    let stream = MediaStream::new().map_err(text)?;
    stream.add_track(&state.track);
    let source = context.create_media_stream_source(&stream).map_err(text)?;
    let node = AudioWorkletNode::new(&context, "videocall-capture").map_err(text)?;
    source.connect_with_audio_node(&node).map_err(text)?;
    let pending = RefCell::new(Vec::<f32>::with_capacity(FRAME_SAMPLES * 2));
    let weak = Rc::downgrade(state);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(state) = weak.upgrade() else {
            return;
        };
        let quantum = Float32Array::new(&event.data()).to_vec();
        let mut pending = pending.borrow_mut();
        pending.extend_from_slice(&quantum);
        while pending.len() >= FRAME_SAMPLES {
            let frame: Vec<f32> = pending.drain(..FRAME_SAMPLES).collect();
            state.level(&frame);
            let samples = Float32Array::from(frame.as_slice());
            let init = AudioDataInit::new(
                &samples,
                AudioSampleFormat::F32Planar,
                1,
                FRAME_SAMPLES as u32,
                SAMPLE_RATE as f32,
                0,
            );
            init.set_timestamp_f64(js::now_ms() * 1000.0);
            if let Ok(data) = AudioData::new(&init) {
                state.encode(data);
            }
        }
    });
    node.port()
        .map_err(text)?
        .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    *state.worklet.borrow_mut() = Some((context, node, on_message));
    Ok(())
}
