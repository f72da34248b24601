//! Opus encoding of 20 ms mono frames at 48 kHz: what the browser's `AudioDecoder` is set
//! up for (`opus`, one channel, 48 kHz).

use opusic_c::{Application, Bitrate, Channels, Encoder, SampleRate};

use super::{AudioError, FRAME_SAMPLES};

/// Largest packet kept (a 20 ms frame at 510 kbit/s is under 1300 bytes).
const MAX_PACKET: usize = 1500;

/// libopus's encoder, set for speech and room sound at a constant-ish bitrate.
pub struct OpusEncoder {
    encoder: Encoder,
    packet: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder at `bitrate_bps`.
    pub fn new(bitrate_bps: u32) -> Result<Self, AudioError> {
        let mut encoder = Encoder::new(Channels::Mono, SampleRate::Hz48000, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Value(bitrate_bps))?;
        Ok(OpusEncoder {
            encoder,
            packet: vec![0; MAX_PACKET],
        })
    }

    /// One Opus packet from one frame of [`FRAME_SAMPLES`] samples.
    pub fn encode(&mut self, frame: &[f32]) -> Result<Vec<u8>, AudioError> {
        debug_assert_eq!(frame.len(), FRAME_SAMPLES);
        let length = self
            .encoder
            .encode_float_to_slice(frame, &mut self.packet)?;
        Ok(self.packet[..length].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::{dominant_frequency, TestTone, TEST_TONE_HZ};
    use crate::audio::{AudioSource, SAMPLE_RATE};

    #[test]
    fn the_tone_survives_encoding_and_decoding() {
        let mut encoder = OpusEncoder::new(32_000).expect("encoder");
        let mut decoder =
            opusic_c::Decoder::new(Channels::Mono, SampleRate::Hz48000).expect("decoder");
        let mut tone = TestTone::new(TEST_TONE_HZ);
        let mut frame = vec![0.0; FRAME_SAMPLES];
        let mut heard = Vec::new();
        let mut bytes = 0;
        for _ in 0..50 {
            tone.read(&mut frame).expect("tone");
            let packet = encoder.encode(&frame).expect("encodes");
            bytes += packet.len();
            let mut out = vec![0.0; FRAME_SAMPLES];
            let samples = decoder
                .decode_float_to_slice(&packet, &mut out, false)
                .expect("decodes");
            assert_eq!(samples, FRAME_SAMPLES);
            heard.extend_from_slice(&out);
        }
        // After the codec's start-up, the pitch is the tone's.
        let hz = dominant_frequency(&heard[9600..], SAMPLE_RATE).expect("a pitch");
        assert!((hz - TEST_TONE_HZ).abs() < 3.0, "{hz}");
        // About the bitrate asked for: 1 s of sound near 32 kbit.
        assert!((2_000..6_000).contains(&bytes), "{bytes} bytes in 1 s");
    }
}
