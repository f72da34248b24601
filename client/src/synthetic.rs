//! A synthetic publisher: video at a frame rate and bitrate with periodic keyframes (or, with
//! simulcast, one frame per layer at each layer's bitrate, each layer with its keyframes),
//! and 20 ms audio packets, each stamped with its capture time. It answers keyframe
//! requests (of the layer asked for), as a real encoder would.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use videocall_protocol::wire::{Codec, Layer, Media, MediaKind, Track};

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
    /// Video bitrate in bits per second (without layers).
    pub video_bitrate_bps: u64,
    /// Simulcast: the video's layers, each sent at its own bitrate (empty: one encoding).
    pub video_layers: Vec<Layer>,
    /// A keyframe every this many frames (keyframe requests add more).
    pub keyframe_interval: u32,
    /// Audio packets per second (0: no audio).
    pub audio_pps: u32,
    /// Bytes per audio packet.
    pub audio_bytes: usize,
    /// Each audio packet's `audio_level` (127 - dBov; 0: not measured).
    pub audio_level: u32,
}

impl MediaPattern {
    /// 30 fps video at 500 kbit/s (a keyframe every 2 s) and 50 audio packets/s of 80 bytes.
    pub fn conference() -> Self {
        MediaPattern {
            video_fps: 30,
            video_bitrate_bps: 500_000,
            video_layers: Vec::new(),
            keyframe_interval: 60,
            audio_pps: 50,
            audio_bytes: 80,
            audio_level: 0,
        }
    }

    /// The same with three simulcast layers: 320x180 at 150, 640x360 at 500 and 1280x720 at
    /// 1500 kbit/s.
    pub fn simulcast() -> Self {
        let layer = |id, width, height, bitrate_kbps| Layer {
            id,
            width,
            height,
            bitrate_kbps,
        };
        MediaPattern {
            video_layers: vec![
                layer(0, 320, 180, 150),
                layer(1, 640, 360, 500),
                layer(2, 1280, 720, 1500),
            ],
            ..Self::conference()
        }
    }

    /// Bytes of one video frame at `bitrate_bps` and this pattern's frame rate.
    pub fn video_frame_bytes(&self, bitrate_bps: u64) -> usize {
        if self.video_fps == 0 {
            return 0;
        }
        (bitrate_bps / 8 / self.video_fps as u64).max(16) as usize
    }

    /// Each layer sent: id and frame bytes (one, layer 0, without simulcast).
    fn video_encodings(&self) -> Vec<(u32, usize)> {
        if self.video_layers.is_empty() {
            return vec![(0, self.video_frame_bytes(self.video_bitrate_bps))];
        }
        self.video_layers
            .iter()
            .map(|l| {
                let bytes = self.video_frame_bytes(u64::from(l.bitrate_kbps) * 1000);
                (l.id, bytes)
            })
            .collect()
    }
}

/// Set by whoever reads the publisher's events: keyframes asked for (a bit per layer) and,
/// with simulcast, the layers the relay says someone gets (dynacast: the others are not sent;
/// one that comes back starts with a keyframe). Every layer until the relay says otherwise.
#[derive(Clone)]
pub struct KeyframeTrigger {
    asked: Arc<AtomicU32>,
    wanted: Arc<AtomicU32>,
}

impl Default for KeyframeTrigger {
    fn default() -> Self {
        KeyframeTrigger {
            asked: Arc::default(),
            wanted: Arc::new(AtomicU32::new(u32::MAX)),
        }
    }
}

impl KeyframeTrigger {
    /// Asks for a keyframe of every layer with the next video frame.
    pub fn request(&self) {
        self.asked.store(u32::MAX, Ordering::Relaxed);
    }

    /// Asks for a keyframe of `layer` with its next frame (a layer past 31: every layer).
    pub fn request_layer(&self, layer: u32) {
        let bit = 1u32.checked_shl(layer).unwrap_or(u32::MAX);
        self.asked.fetch_or(bit, Ordering::Relaxed);
    }

    /// Sends only `layers` of the video from now on; a layer that comes back starts with a
    /// keyframe.
    pub fn want_layers(&self, layers: &[u32]) {
        let mask = layers
            .iter()
            .filter_map(|&l| 1u32.checked_shl(l))
            .fold(0, |mask, bit| mask | bit);
        let before = self.wanted.swap(mask, Ordering::Relaxed);
        self.asked.fetch_or(mask & !before, Ordering::Relaxed);
    }

    /// Whether `layer` is sent now.
    pub fn wanted(&self, layer: u32) -> bool {
        1u32.checked_shl(layer)
            .is_some_and(|bit| self.wanted.load(Ordering::Relaxed) & bit != 0)
    }

    /// Takes what `event` says: a keyframe of the layer the relay names, of every layer (a
    /// new epoch of the encrypted group), or the layers of the video someone gets. Returns
    /// whether it was one of those.
    pub fn answer(&self, event: &crate::Event) -> bool {
        use videocall_protocol::wire::envelope::Body;
        match event {
            crate::Event::Message(Body::KeyframeRequest(request)) => {
                self.request_layer(request.layer)
            }
            crate::Event::Message(Body::LayerDemand(demand)) if demand.track_id == VIDEO_TRACK => {
                self.want_layers(&demand.layers)
            }
            event if event.asks_for_keyframe() => self.request(),
            _ => return false,
        }
        true
    }

    fn take(&self, layer: u32) -> bool {
        let bit = 1u32.checked_shl(layer).unwrap_or(0);
        self.asked.fetch_and(!bit, Ordering::Relaxed) & bit != 0
    }
}

/// Counters of a running publisher.
#[derive(Default, Debug)]
pub struct PublishStats {
    /// Video frames sent (one per layer sent at a tick).
    pub video_sent: AtomicU64,
    /// Video frames captured: one a tick, whatever its layers (the frames a subscriber of one
    /// layer should get).
    pub video_frames: AtomicU64,
    /// Audio packets sent.
    pub audio_sent: AtomicU64,
    /// Keyframes sent.
    pub keyframes_sent: AtomicU64,
    /// Video frames of layers nobody got, not sent (dynacast).
    pub paused_frames: AtomicU64,
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
        audio_level: 0,
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
                Some(event) => {
                    keyframes.answer(&event);
                }
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
    let encodings = pattern.video_encodings();
    let interval = pattern.keyframe_interval.max(1) as u64;
    let (mut video_seq, mut audio_seq) = (0u64, 0u64);
    let mut tracks = Vec::new();
    if video {
        let mut video = track(VIDEO_TRACK, MediaKind::Video);
        video.layers = pattern.video_layers.clone();
        tracks.push(video);
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
                for &(layer, bytes) in &encodings {
                    if !keyframes.wanted(layer) {
                        stats.paused_frames.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let keyframe = video_seq % interval == 0 || keyframes.take(layer);
                    let mut frame = packet(VIDEO_TRACK, MediaKind::Video, video_seq, keyframe, bytes);
                    frame.layer = layer;
                    let sent = sender.send_media(frame).await;
                    if held_back(sent, &keyframes)? {
                        continue;
                    }
                    stats.video_sent.fetch_add(1, Ordering::Relaxed);
                    if keyframe {
                        stats.keyframes_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                stats.video_frames.fetch_add(1, Ordering::Relaxed);
                video_seq += 1;
            }
            _ = audio_tick.tick(), if audio => {
                let mut audio = packet(AUDIO_TRACK, MediaKind::Audio, audio_seq, false, pattern.audio_bytes);
                audio.audio_level = pattern.audio_level;
                let sent = sender.send_media(audio).await;
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
