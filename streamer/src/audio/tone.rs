//! The test tone (a steady sine, sent where no microphone is) and the frequency a listener
//! hears in decoded samples, which is how tests tell the tone, or a recording, came through.

use super::{AudioError, AudioSource, SAMPLE_RATE};

/// The test tone's pitch (concert A).
pub const TEST_TONE_HZ: f32 = 440.0;
/// Its loudness: a quarter of full scale.
const AMPLITUDE: f32 = 0.25;

/// A sine wave, frame after frame without a seam.
pub struct TestTone {
    hz: f32,
    phase: f64,
}

impl TestTone {
    /// A tone at `hz`.
    pub fn new(hz: f32) -> Self {
        TestTone { hz, phase: 0.0 }
    }
}

impl AudioSource for TestTone {
    fn read(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
        let step = std::f64::consts::TAU * f64::from(self.hz) / f64::from(SAMPLE_RATE);
        for sample in frame.iter_mut() {
            *sample = AMPLITUDE * self.phase.sin() as f32;
            self.phase = (self.phase + step) % std::f64::consts::TAU;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("test tone {} Hz", self.hz)
    }
}

/// The pitch of `samples` at `rate` from its zero crossings (rising ones, with a little
/// hysteresis so noise around zero does not count): right for a tone, about right for a
/// voice; `None` for silence.
pub fn dominant_frequency(samples: &[f32], rate: u32) -> Option<f32> {
    const THRESHOLD: f32 = 0.02;
    let mut below = false;
    let mut first = None;
    let mut last = 0usize;
    let mut rises = 0u32;
    for (index, &sample) in samples.iter().enumerate() {
        if sample < -THRESHOLD {
            below = true;
        } else if below && sample > THRESHOLD {
            below = false;
            if first.is_none() {
                first = Some(index);
            } else {
                rises += 1;
            }
            last = index;
        }
    }
    let first = first?;
    if rises == 0 {
        return None;
    }
    Some(rises as f32 * rate as f32 / (last - first) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    #[test]
    fn the_tone_has_its_pitch_and_no_seam_between_frames() {
        let mut tone = TestTone::new(TEST_TONE_HZ);
        let mut samples = Vec::new();
        let mut frame = vec![0.0; FRAME_SAMPLES];
        for _ in 0..10 {
            tone.read(&mut frame).expect("a tone never fails");
            samples.extend_from_slice(&frame);
        }
        let hz = dominant_frequency(&samples, SAMPLE_RATE).expect("a pitch");
        assert!((hz - TEST_TONE_HZ).abs() < 2.0, "{hz}");
        // No jump bigger than one step of the sine anywhere, seams included.
        let step = AMPLITUDE * (std::f32::consts::TAU * TEST_TONE_HZ / SAMPLE_RATE as f32);
        assert!(samples
            .windows(2)
            .all(|w| (w[1] - w[0]).abs() <= step * 1.01));
        assert!(samples.iter().all(|s| s.abs() <= AMPLITUDE));
    }

    #[test]
    fn silence_has_no_pitch_and_other_tones_are_told_apart() {
        assert_eq!(dominant_frequency(&[0.0; 4800], SAMPLE_RATE), None);
        let mut tone = TestTone::new(1000.0);
        let mut frame = vec![0.0; 4800];
        tone.read(&mut frame).expect("a tone never fails");
        let hz = dominant_frequency(&frame, SAMPLE_RATE).expect("a pitch");
        assert!((hz - 1000.0).abs() < 5.0, "{hz}");
    }
}
