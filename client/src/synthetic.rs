//! A synthetic publisher: video at a frame rate and bitrate with periodic keyframes,
//! and 20 ms audio packets, each stamped with its capture time. It answers keyframe
//! requests, as a real encoder would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use videocall_protocol::wire::{Codec, Media, MediaKind, Track};

use crate::{unix_micros, ClientError, Sender};

/// Track id the synthetic publisher uses for video.
pub const VIDEO_TRACK: u32 = 1;
/// Track id the synthetic publisher uses for audio.
pub const AUDIO_TRACK: u32 = 2;

/// What to publish.
#[derive(Debug, Clone)]
pub struct MediaPattern {
    /// Video frames per second (0: no video).
    pub video_fps: u32,
    /// Video bitrate in bits per second.
    pub video_bitrate_bps: u64,
    /// A keyframe every this many frames (keyframe requests add more).
    pub keyframe_interval: u32,
    /// Audio packets per second (0: no audio).
    pub audio_pps: u32,
    /// Bytes per audio packet.
    pub audio_bytes: usize,
}

impl MediaPattern {
    /// 30 fps video at 500 kbit/s (a keyframe every 2 s) and 50 audio packets/s of 80 bytes.
    pub fn conference() -> Self {
        MediaPattern {
            video_fps: 30,
            video_bitrate_bps: 500_000,
            keyframe_interval: 60,
            audio_pps: 50,
            audio_bytes: 80,
        }
    }

    fn video_frame_bytes(&self) -> usize {
        if self.video_fps == 0 {
            return 0;
        }
        (self.video_bitrate_bps / 8 / self.video_fps as u64).max(16) as usize
    }
}

/// Set by whoever reads the publisher's events when a keyframe request arrives.
#[derive(Clone, Default)]
pub struct KeyframeTrigger(Arc<AtomicBool>);

impl KeyframeTrigger {
    /// Asks for a keyframe with the next video frame.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// Counters of a running publisher.
#[derive(Default, Debug)]
pub struct PublishStats {
    /// Video frames sent.
    pub video_sent: AtomicU64,
    /// Audio packets sent.
    pub audio_sent: AtomicU64,
    /// Keyframes sent.
    pub keyframes_sent: AtomicU64,
}

/// The codec the synthetic publisher uses for `kind`.
pub fn codec(kind: MediaKind) -> Codec {
    if kind == MediaKind::Audio {
        Codec::Opus
    } else {
        Codec::H264
    }
}

/// The announcement of track `id` of `kind`, as [`packet`] sends it.
pub fn track(id: u32, kind: MediaKind) -> Track {
    Track {
        id,
        kind: kind as i32,
        codec: codec(kind) as i32,
        layers: Vec::new(),
    }
}

/// A media packet; the first 8 payload bytes repeat the sequence number so receivers
/// can check what they got.
pub fn packet(track_id: u32, kind: MediaKind, sequence: u64, keyframe: bool, size: usize) -> Media {
    let mut payload = vec![0u8; size.max(8)];
    payload[..8].copy_from_slice(&sequence.to_be_bytes());
    Media {
        participant_id: 0,
        track_id,
        kind: kind as i32,
        codec: codec(kind) as i32,
        sequence,
        capture_timestamp_us: unix_micros(),
        keyframe,
        layer: 0,
        payload: Bytes::from(payload),
        sealed: false,
    }
}

/// Starts a publisher that owns `client`: it publishes `pattern` and answers keyframe
/// requests until `stop`. Returns its counters.
pub fn spawn_publisher(
    client: crate::Client,
    pattern: MediaPattern,
    stop: CancellationToken,
) -> Arc<PublishStats> {
    let stats = Arc::new(PublishStats::default());
    let trigger = KeyframeTrigger::default();
    tokio::spawn(publish(
        client.sender(),
        pattern,
        trigger.clone(),
        stats.clone(),
        stop.clone(),
    ));
    tokio::spawn(answer_keyframe_requests(client, trigger, stop));
    stats
}

/// Reads a publisher's events until `stop`, turning keyframe requests into keyframes.
/// For publishers whose events nobody else needs.
pub async fn answer_keyframe_requests(
    mut client: crate::Client,
    keyframes: KeyframeTrigger,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            event = client.next_event() => match event {
                Some(event) if event.asks_for_keyframe() => keyframes.request(),
                Some(_) => {}
                None => return,
            }
        }
    }
}

/// Publishes `pattern` until `stop` fires or sending fails. On an encrypted session, frames
/// are held back until the participant is in the meeting's group.
pub async fn publish(
    sender: Sender,
    pattern: MediaPattern,
    keyframes: KeyframeTrigger,
    stats: Arc<PublishStats>,
    stop: CancellationToken,
) -> Result<(), ClientError> {
    let video = pattern.video_fps > 0;
    let audio = pattern.audio_pps > 0;
    let mut video_tick = tokio::time::interval(Duration::from_secs_f64(
        1.0 / pattern.video_fps.max(1) as f64,
    ));
    let mut audio_tick = tokio::time::interval(Duration::from_secs_f64(
        1.0 / pattern.audio_pps.max(1) as f64,
    ));
    video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let frame_bytes = pattern.video_frame_bytes();
    let interval = pattern.keyframe_interval.max(1) as u64;
    let (mut video_seq, mut audio_seq) = (0u64, 0u64);
    let mut tracks = Vec::new();
    if video {
        tracks.push(track(VIDEO_TRACK, MediaKind::Video));
    }
    if audio {
        tracks.push(track(AUDIO_TRACK, MediaKind::Audio));
    }
    // Media of a track arriving before its announcement is dropped; the relay then asks
    // for a keyframe, which `keyframes` carries.
    sender.announce(tracks).await?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = video_tick.tick(), if video => {
                let keyframe = video_seq % interval == 0 || keyframes.take();
                let sent = sender
                    .send_media(packet(VIDEO_TRACK, MediaKind::Video, video_seq, keyframe, frame_bytes))
                    .await;
                video_seq += 1;
                if held_back(sent, &keyframes)? {
                    continue;
                }
                stats.video_sent.fetch_add(1, Ordering::Relaxed);
                if keyframe {
                    stats.keyframes_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = audio_tick.tick(), if audio => {
                let sent = sender
                    .send_media(packet(AUDIO_TRACK, MediaKind::Audio, audio_seq, false, pattern.audio_bytes))
                    .await;
                audio_seq += 1;
                if held_back(sent, &keyframes)? {
                    continue;
                }
                stats.audio_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a frame was held back because the encrypted session is not in its group yet (the
/// next video frame is then a keyframe, so whoever reads the first sealed frames can decode
/// them); any other failure ends the publisher.
fn held_back(
    sent: Result<(), ClientError>,
    keyframes: &KeyframeTrigger,
) -> Result<bool, ClientError> {
    match sent {
        Ok(()) => Ok(false),
        Err(ClientError::NotInGroup) => {
            keyframes.request();
            Ok(true)
        }
        Err(e) => Err(e),
    }
}
