//! H.264 (constrained baseline, Annex B) with openh264 at a constant bitrate: a keyframe at
//! the interval, and on request (a new subscriber, a lost packet, a rejoin).

use std::time::{Duration, Instant};

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::OpenH264API;

use crate::frame::I420Frame;

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
#[error("openh264: {0}")]
pub struct EncodeError(#[from] openh264::Error);

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeSettings {
    /// Target bitrate, bits per second.
    pub bitrate_bps: u32,
    /// Frames per second the source delivers.
    pub fps: f32,
    /// A keyframe this many frames after the latest one (0: only when asked).
    pub keyframe_interval: u32,
    /// Encoder threads (0: one per core).
    pub threads: u16,
}

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Annex B NAL units.
    pub data: Vec<u8>,
    /// Whether it is a keyframe (IDR).
    pub keyframe: bool,
    /// How long the encoder took.
    pub encode_time: Duration,
}

/// The streamer's H.264 encoder.
pub struct H264Encoder {
    encoder: Encoder,
    keyframe_asked: bool,
}

impl H264Encoder {
    /// An encoder with `settings`.
    pub fn new(settings: EncodeSettings) -> Result<Self, EncodeError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(settings.bitrate_bps.max(10_000)))
            .max_frame_rate(FrameRate::from_hz(settings.fps.max(1.0)))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            // openh264 holds the bitrate only when it may skip a frame now and then.
            .skip_frames(true)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.keyframe_interval,
            ));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        Ok(H264Encoder {
            encoder,
            keyframe_asked: false,
        })
    }

    /// The next frame is a keyframe.
    pub fn ask_keyframe(&mut self) {
        self.keyframe_asked = true;
    }

    /// Encodes `frame`; `None` when the encoder produced nothing for it.
    pub fn encode(&mut self, frame: &I420Frame) -> Result<Option<EncodedFrame>, EncodeError> {
        if std::mem::take(&mut self.keyframe_asked) {
            self.encoder.force_intra_frame();
        }
        let started = Instant::now();
        let stream = self.encoder.encode(frame)?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        let data = stream.to_vec();
        let encode_time = started.elapsed();
        Ok((!data.is_empty()).then_some(EncodedFrame {
            data,
            keyframe,
            encode_time,
        }))
    }
}

#[cfg(test)]
mod tests {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;

    use super::*;
    use crate::pattern::{self, BurnedIn};

    fn settings(keyframe_interval: u32) -> EncodeSettings {
        EncodeSettings {
            bitrate_bps: 500_000,
            fps: 30.0,
            keyframe_interval,
            threads: 1,
        }
    }

    #[test]
    fn the_burned_in_counter_survives_encoding_and_decoding() {
        let mut encoder = H264Encoder::new(settings(0)).expect("encoder");
        let mut decoder = Decoder::new().expect("decoder");
        let mut frame = I420Frame::new(640, 480);
        let mut read = Vec::new();
        for counter in 0..20u32 {
            pattern::draw(
                &mut frame,
                BurnedIn {
                    counter,
                    captured_ms: 1_796_000_000_000 + u64::from(counter) * 33,
                },
            );
            let encoded = encoder.encode(&frame).expect("encode").expect("a frame");
            assert_eq!(encoded.keyframe, counter == 0, "frame {counter}");
            if let Some(picture) = decoder.decode(&encoded.data).expect("decode") {
                let (width, height) = picture.dimensions();
                let code = pattern::read_code(picture.y(), picture.strides().0, width, height)
                    .expect("the strip reads");
                read.push(code.counter);
                assert_eq!(
                    code.captured_ms,
                    1_796_000_000_000 + u64::from(code.counter) * 33
                );
            }
        }
        assert_eq!(read, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn keyframes_come_at_the_interval_and_when_asked() {
        let mut encoder = H264Encoder::new(settings(10)).expect("encoder");
        let mut frame = I420Frame::new(320, 240);
        let mut keyframes = Vec::new();
        for counter in 0..25u32 {
            if counter == 14 {
                encoder.ask_keyframe();
            }
            pattern::draw(
                &mut frame,
                BurnedIn {
                    counter,
                    captured_ms: 0,
                },
            );
            if encoder
                .encode(&frame)
                .expect("encode")
                .expect("a frame")
                .keyframe
            {
                keyframes.push(counter);
            }
        }
        // The interval counts from the latest keyframe, asked for or not.
        assert_eq!(keyframes, [0, 10, 14, 24]);
    }
}
