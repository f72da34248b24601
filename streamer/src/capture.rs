//! The capture thread: takes a picture from the source at every frame tick, encodes it and
//! hands it to the sending task. A thread of its own, because encoding is CPU work that
//! must not stall the network side; a full hand-off queue drops the frame (and asks for a
//! keyframe, so viewers recover at once) rather than letting latency build up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::encode::{EncodedFrame, H264Encoder};
use crate::metrics::Metrics;
use crate::source::{FrameSource, SourceError};

/// One encoded frame and when its picture was taken.
#[derive(Debug)]
pub struct CapturedFrame {
    /// The H.264 frame.
    pub encoded: EncodedFrame,
    /// Capture time, microseconds since the Unix epoch.
    pub captured_us: u64,
}

/// What the sending side tells the capture thread, and what it can see of it.
#[derive(Clone, Default)]
pub struct CaptureControl {
    keyframe: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    last_frame_ms: Arc<AtomicU64>,
}

impl CaptureControl {
    /// The next frame is a keyframe.
    pub fn ask_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// Stops the thread after the current frame.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// When the latest frame was encoded (ms since the Unix epoch; 0 before the first).
    pub fn last_frame_ms(&self) -> u64 {
        self.last_frame_ms.load(Ordering::Relaxed)
    }
}

/// Why the capture thread stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] crate::encode::EncodeError),
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    videocall_client::unix_micros() / 1000
}

/// Runs the capture loop on a thread of its own until stopped, the receiver is gone or the
/// source or encoder fails.
pub fn spawn(
    mut source: Box<dyn FrameSource>,
    mut encoder: H264Encoder,
    fps: f64,
    frames: mpsc::Sender<CapturedFrame>,
    control: CaptureControl,
    metrics: Metrics,
) -> std::thread::JoinHandle<Result<(), CaptureError>> {
    std::thread::spawn(move || {
        let period = Duration::from_secs_f64(1.0 / fps.clamp(1.0, 120.0));
        let mut next = Instant::now();
        let paced = source.frame_rate().is_some();
        while !control.stop.load(Ordering::Relaxed) && !frames.is_closed() {
            let now = Instant::now();
            if paced {
                // The camera keeps time: its next frame is the tick.
            } else if now < next {
                std::thread::sleep(next - now);
            } else if now - next > period {
                // Behind by more than a frame (a slow encoder): skip ahead, do not catch up.
                let missed = ((now - next).as_secs_f64() / period.as_secs_f64()) as u64;
                metrics
                    .frames_dropped
                    .with_label_values(&["source_late"])
                    .inc_by(missed);
                next = now;
            }
            next += period;
            let captured_us = videocall_client::unix_micros();
            let picture = source.next_frame(captured_us / 1000)?;
            metrics.frames_captured.inc();
            if control.keyframe.swap(false, Ordering::Relaxed) {
                encoder.ask_keyframe();
            }
            let Some(encoded) = encoder.encode(&picture)? else {
                // Rate control skipped it (after a keyframe asked for on top of another, say).
                metrics
                    .frames_dropped
                    .with_label_values(&["encoder_skipped"])
                    .inc();
                continue;
            };
            metrics.frames_encoded.inc();
            metrics
                .encode_seconds
                .observe(encoded.encode_time.as_secs_f64());
            if encoded.keyframe {
                metrics.keyframes.inc();
            }
            control.last_frame_ms.store(unix_ms(), Ordering::Relaxed);
            let frame = CapturedFrame {
                encoded,
                captured_us,
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = frames.try_send(frame) {
                metrics
                    .frames_dropped
                    .with_label_values(&["send_queue_full"])
                    .inc();
                // The next frames refer to this one: viewers need a fresh start.
                encoder.ask_keyframe();
            }
        }
        Ok(())
    })
}
