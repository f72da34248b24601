//! The audio thread: a frame from the source every 20 ms, encoded to Opus and handed to the
//! sending task. A microphone keeps time itself; the test tone is paced by the clock. A
//! full hand-off queue drops the packet (audio has no keyframes: the next one plays).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::opus::OpusEncoder;
use super::{AudioError, AudioSource, FRAME_DURATION, FRAME_SAMPLES};
use crate::metrics::Metrics;

/// Behind the clock by more than this, the pace starts again from now rather than
/// sending the backlog in a burst.
const MOST_BEHIND: Duration = Duration::from_millis(200);

/// One Opus packet and when its sound was recorded.
#[derive(Debug)]
pub struct AudioPacket {
    /// The Opus packet (20 ms).
    pub payload: Vec<u8>,
    /// When its first sample was recorded, microseconds since the Unix epoch.
    pub captured_us: u64,
}

/// When frame `index` is due, counted from `start`, and whether the pace had to start again
/// because the thread fell too far behind (`now` past the due time by [`MOST_BEHIND`]).
pub fn due(start: Instant, index: u32, now: Instant) -> (Instant, bool) {
    let due = start + FRAME_DURATION * index;
    if now > due + MOST_BEHIND {
        (now, true)
    } else {
        (due, false)
    }
}

/// Runs the audio loop on a thread of its own until the receiver is gone, or the source or
/// encoder fails.
pub fn spawn(
    mut source: Box<dyn AudioSource>,
    mut encoder: OpusEncoder,
    packets: mpsc::Sender<AudioPacket>,
    metrics: Metrics,
) -> std::thread::JoinHandle<Result<(), AudioError>> {
    std::thread::spawn(move || {
        let mut frame = vec![0.0f32; FRAME_SAMPLES];
        let mut start = Instant::now();
        let mut index = 0u32;
        while !packets.is_closed() {
            let now = Instant::now();
            let (due, restarted) = due(start, index, now);
            if restarted {
                start = now;
                index = 0;
            } else if due > now {
                std::thread::sleep(due - now);
            }
            index += 1;
            source.read(&mut frame)?;
            let captured_us =
                videocall_client::unix_micros().saturating_sub(FRAME_DURATION.as_micros() as u64);
            let payload = encoder.encode(&frame)?;
            metrics.audio_frames_encoded.inc();
            let packet = AudioPacket {
                payload,
                captured_us,
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = packets.try_send(packet) {
                metrics
                    .frames_dropped
                    .with_label_values(&["audio_queue_full"])
                    .inc();
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_due_every_20_ms_and_a_long_stall_starts_the_pace_again() {
        let start = Instant::now();
        assert_eq!(due(start, 0, start), (start, false));
        let fifth = start + Duration::from_millis(100);
        assert_eq!(due(start, 5, start), (fifth, false));
        // A little late: the frame is still due when it was, the next comes sooner.
        assert_eq!(
            due(start, 5, fifth + Duration::from_millis(50)),
            (fifth, false)
        );
        // Far behind: from now on.
        let late = fifth + Duration::from_millis(500);
        assert_eq!(due(start, 5, late), (late, true));
    }

    #[test]
    fn the_test_tone_arrives_paced_as_opus() {
        let metrics = Metrics::new().expect("metrics");
        let (tx, mut rx) = mpsc::channel(64);
        let thread = spawn(
            Box::new(super::super::tone::TestTone::new(440.0)),
            OpusEncoder::new(32_000).expect("encoder"),
            tx,
            metrics.clone(),
        );
        let began = Instant::now();
        let mut stamps = Vec::new();
        while stamps.len() < 10 {
            let packet = rx.blocking_recv().expect("a packet");
            assert!(!packet.payload.is_empty());
            stamps.push(packet.captured_us);
        }
        let took = began.elapsed();
        drop(rx);
        thread.join().expect("no panic").expect("no error");
        // Ten frames of 20 ms: the first at once, the tenth 180 ms later (not all at once).
        assert!(took >= Duration::from_millis(170), "{took:?}");
        assert!(stamps.windows(2).all(|w| w[1] > w[0]));
        assert!(metrics.audio_frames_encoded.get() >= 10);
    }
}
