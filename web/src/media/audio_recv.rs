//! One remote microphone: `AudioDecoder` (Opus) → `AudioBuffer`s scheduled back to back on the
//! page's `AudioContext`, a small jitter buffer ahead of its clock.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Float32Array, Uint8Array};
use videocall_protocol::wire::{Codec, Media};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    AudioContext, AudioData, AudioDataCopyToOptions, AudioDecoder, AudioDecoderConfig,
    AudioDecoderInit, AudioSampleFormat, CodecState, EncodedAudioChunk, EncodedAudioChunkInit,
    EncodedAudioChunkType,
};

use super::SharedStats;
use crate::js;
use crate::playout::Playout;

/// Jitter buffer when (re)starting playout.
const TARGET_BUFFER_S: f64 = 0.06;
/// Most audio queued before chunks are dropped.
const MAX_BUFFER_S: f64 = 0.3;

type Callbacks = (Closure<dyn FnMut(JsValue)>, Closure<dyn FnMut(JsValue)>);

/// Decodes and plays one remote audio track.
pub struct AudioReceiver {
    decoder: Option<AudioDecoder>,
    _closures: Option<Callbacks>,
}

impl AudioReceiver {
    /// A receiver for `peer`, playing on `context`.
    pub fn new(peer: u64, context: AudioContext, stats: SharedStats) -> Self {
        let playout = Rc::new(RefCell::new(Playout::new(TARGET_BUFFER_S, MAX_BUFFER_S)));
        let on_output = Closure::<dyn FnMut(JsValue)>::new(move |data: JsValue| {
            let Ok(data) = data.dyn_into::<AudioData>() else {
                return;
            };
            {
                let mut stats = stats.borrow_mut();
                stats.audio_frames_decoded += 1;
                *stats.audio_by_peer.entry(peer).or_default() += 1;
            }
            play(&context, &data, &playout);
            data.close();
        });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            web_sys::console::warn_1(&format!("audio decoder: {}", js::error_text(&error)).into());
        });
        let init = AudioDecoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        );
        let decoder = AudioDecoder::new(&init).ok().filter(|decoder| {
            decoder
                .configure(&AudioDecoderConfig::new("opus", 1, 48_000))
                .is_ok()
        });
        Self {
            decoder,
            _closures: Some((on_output, on_error)),
        }
    }

    /// Feeds one packet; `false` when the decoder is broken (an error closed it) and the
    /// receiver should be replaced.
    pub fn receive(&mut self, media: &Media) -> bool {
        if media.codec() != Codec::Opus {
            return true;
        }
        let Some(decoder) = &self.decoder else {
            return false;
        };
        if decoder.state() != CodecState::Configured {
            return false;
        }
        let data = Uint8Array::from(media.payload.as_ref());
        let init = EncodedAudioChunkInit::new(&data, 0, EncodedAudioChunkType::Key);
        init.set_timestamp_f64(media.capture_timestamp_us as f64);
        match EncodedAudioChunk::new(&init) {
            Ok(chunk) => decoder.decode(&chunk).is_ok(),
            Err(_) => true,
        }
    }
}

impl Drop for AudioReceiver {
    fn drop(&mut self) {
        if let Some(decoder) = self.decoder.take() {
            if decoder.state() != CodecState::Closed {
                let _ = decoder.close();
            }
        }
    }
}

fn play(context: &AudioContext, data: &AudioData, playout: &RefCell<Playout>) {
    let frames = data.number_of_frames();
    let rate = data.sample_rate();
    if frames == 0 || rate <= 0.0 {
        return;
    }
    let samples = Float32Array::new_with_length(frames);
    let options = AudioDataCopyToOptions::new(0);
    options.set_format(AudioSampleFormat::F32Planar);
    if data.copy_to_with_buffer_source(&samples, &options).is_err() {
        return;
    }
    let duration = f64::from(frames) / f64::from(rate);
    let Some(at) = playout
        .borrow_mut()
        .schedule(context.current_time(), duration)
    else {
        return;
    };
    let Ok(buffer) = context.create_buffer(1, frames, rate) else {
        return;
    };
    if buffer.copy_to_channel_with_f32_array(&samples, 0).is_err() {
        return;
    }
    let Ok(source) = context.create_buffer_source() else {
        return;
    };
    source.set_buffer(Some(&buffer));
    if source
        .connect_with_audio_node(&context.destination())
        .is_ok()
    {
        let _ = source.start_with_when(at);
    }
}
