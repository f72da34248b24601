//! An ALSA capture device: 48 kHz mono signed 16-bit, read a 20 ms frame at a time. The
//! `default` device (and any `plughw:`) converts from what the hardware records; a bare
//! `hw:` device must record 48 kHz itself.

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::{AudioError, AudioSource, FRAME_SAMPLES, SAMPLE_RATE};

/// Frames of buffering ALSA keeps (80 ms): room for a late read without an overrun.
const BUFFER_FRAMES: usize = 4;

/// One open capture device.
pub struct Microphone {
    pcm: PCM,
    device: String,
    samples: Vec<i16>,
}

impl Microphone {
    /// Opens `device` (an ALSA PCM name: `default`, `plughw:1,0`, `hw:CARD=Device`...).
    pub fn open(device: &str) -> Result<Self, AudioError> {
        let failed = |source| AudioError::Microphone {
            device: device.to_string(),
            source,
        };
        let pcm = PCM::new(device, Direction::Capture, false).map_err(failed)?;
        {
            let params = HwParams::any(&pcm).map_err(failed)?;
            params.set_access(Access::RWInterleaved).map_err(failed)?;
            params.set_format(Format::s16()).map_err(failed)?;
            params.set_channels(1).map_err(failed)?;
            params
                .set_rate(SAMPLE_RATE, ValueOr::Nearest)
                .map_err(failed)?;
            params
                .set_period_size_near(FRAME_SAMPLES as alsa::pcm::Frames, ValueOr::Nearest)
                .map_err(failed)?;
            params
                .set_buffer_size_near((FRAME_SAMPLES * BUFFER_FRAMES) as alsa::pcm::Frames)
                .map_err(failed)?;
            pcm.hw_params(&params).map_err(failed)?;
            let rate = params.get_rate().map_err(failed)?;
            if rate != SAMPLE_RATE {
                return Err(AudioError::Rate {
                    device: device.to_string(),
                    rate,
                });
            }
        }
        tracing::info!(device, "microphone open: 48 kHz mono");
        Ok(Microphone {
            pcm,
            device: device.to_string(),
            samples: vec![0; FRAME_SAMPLES],
        })
    }

    fn failed(&self, source: alsa::Error) -> AudioError {
        AudioError::Microphone {
            device: self.device.clone(),
            source,
        }
    }
}

impl AudioSource for Microphone {
    fn read(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
        let io = self.pcm.io_i16().map_err(|e| self.failed(e))?;
        let wanted = frame.len().min(self.samples.len());
        let mut filled = 0;
        while filled < wanted {
            match io.readi(&mut self.samples[filled..wanted]) {
                // A blocking read returns sound or an error; nothing means the device is done
                // (a file-backed device at its end).
                Ok(0) => {
                    return Err(AudioError::Ended {
                        device: self.device.clone(),
                    })
                }
                Ok(read) => filled += read,
                // An overrun (the thread was late): ALSA restarts, the gap is lost.
                Err(error) => {
                    tracing::debug!(%error, "microphone overrun; recovering");
                    self.pcm
                        .try_recover(error, true)
                        .map_err(|e| self.failed(e))?;
                }
            }
        }
        for (out, &sample) in frame.iter_mut().zip(&self.samples) {
            *out = f32::from(sample) / 32768.0;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("microphone {}", self.device)
    }
}

/// The capture devices ALSA knows of (name and description), for `devices`.
pub fn microphones() -> Vec<(String, String)> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    hints
        .filter(|hint| hint.direction != Some(Direction::Playback))
        .filter_map(|hint| {
            let name = hint.name?;
            let description = hint.desc.unwrap_or_default().replace('\n', " ");
            Some((name, description))
        })
        .collect()
}
