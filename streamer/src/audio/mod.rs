//! Sound for `--audio`: an ALSA microphone where one is present, else a test tone; 20 ms
//! frames of 48 kHz mono, encoded to Opus (what the browser client sends and plays) on a
//! thread of their own.

pub mod capture;
#[cfg(all(target_os = "linux", feature = "alsa"))]
pub mod microphone;
pub mod opus;
pub mod tone;

use std::time::Duration;

/// Samples per second, everywhere in the streamer's audio.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one frame (one Opus packet): 20 ms of mono.
pub const FRAME_SAMPLES: usize = 960;
/// How long one frame lasts.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// `--audio-device` naming the test tone rather than a microphone.
pub const TEST_TONE_DEVICE: &str = "test-tone";

/// Where sound comes from.
pub trait AudioSource: Send {
    /// Fills `frame` ([`FRAME_SAMPLES`] mono samples, -1.0..=1.0). A microphone blocks until
    /// they were recorded; a source that does not keep time returns at once (the capture
    /// thread paces it).
    fn read(&mut self, frame: &mut [f32]) -> Result<(), AudioError>;
    /// What it is, for the log.
    fn describe(&self) -> String;
}

/// Why sound cannot be captured or encoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The ALSA device cannot be opened or read.
    #[cfg(all(target_os = "linux", feature = "alsa"))]
    #[error("microphone {device:?}: {source}")]
    Microphone {
        /// The ALSA device name.
        device: String,
        /// What ALSA said.
        source: alsa::Error,
    },
    /// The device stopped giving sound.
    #[error("microphone {device:?} gives no more sound")]
    Ended {
        /// The ALSA device name.
        device: String,
    },
    /// The device records at another rate and does not convert (a `hw:` device).
    #[error("microphone {device:?} records at {rate} Hz, not 48000 (a plughw: or the default device converts)")]
    Rate {
        /// The ALSA device name.
        device: String,
        /// The rate it offered.
        rate: u32,
    },
    /// This build has no microphone support.
    #[error("this build has no microphone support (the `alsa` feature, Linux only)")]
    NoMicrophoneSupport,
    /// The Opus encoder refused.
    #[error("opus: {}", .0.message())]
    Opus(opusic_c::ErrorCode),
}

impl From<opusic_c::ErrorCode> for AudioError {
    fn from(code: opusic_c::ErrorCode) -> Self {
        AudioError::Opus(code)
    }
}

/// The source `--audio-device` names: the test tone, or a microphone, falling back to the
/// test tone (with a warning) where no microphone can be opened.
pub fn open_source(device: &str) -> Box<dyn AudioSource> {
    if device == TEST_TONE_DEVICE {
        return Box::new(tone::TestTone::new(tone::TEST_TONE_HZ));
    }
    match open_microphone(device) {
        Ok(microphone) => microphone,
        Err(error) => {
            tracing::warn!(%error, "no microphone; sending a {} Hz test tone", tone::TEST_TONE_HZ);
            Box::new(tone::TestTone::new(tone::TEST_TONE_HZ))
        }
    }
}

#[cfg(all(target_os = "linux", feature = "alsa"))]
fn open_microphone(device: &str) -> Result<Box<dyn AudioSource>, AudioError> {
    Ok(Box::new(microphone::Microphone::open(device)?))
}

#[cfg(not(all(target_os = "linux", feature = "alsa")))]
fn open_microphone(_device: &str) -> Result<Box<dyn AudioSource>, AudioError> {
    Err(AudioError::NoMicrophoneSupport)
}
