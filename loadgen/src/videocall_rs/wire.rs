//! videocall-rs's wire format, as much of it as a participant of its meetings speaks: every
//! message is a protobuf `PacketWrapper`; media is a `MediaPacket` in its `data`. Written from
//! the field numbers of its public `.proto` files (the messages, not its code), with prost.

use bytes::Bytes;
use prost::Message;

/// `PacketWrapper.packet_type` of media.
pub const PACKET_MEDIA: i32 = 3;
/// `MediaPacket.media_type` values.
pub const MEDIA_VIDEO: i32 = 1;
pub const MEDIA_AUDIO: i32 = 2;
pub const MEDIA_HEARTBEAT: i32 = 4;
/// `VideoCodec` of its browser client's VP9.
const CODEC_VP9: i32 = 2;

/// The envelope of every message.
#[derive(Clone, PartialEq, Message)]
pub struct PacketWrapper {
    #[prost(int32, tag = "1")]
    pub packet_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub user_id: Vec<u8>,
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    #[prost(uint64, tag = "4")]
    pub session_id: u64,
}

/// One media packet (or a heartbeat).
#[derive(Clone, PartialEq, Message)]
pub struct MediaPacket {
    #[prost(int32, tag = "1")]
    pub media_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub user_id: Vec<u8>,
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    #[prost(string, tag = "4")]
    pub frame_type: String,
    /// Capture time; here microseconds since the Unix epoch ÷ 1000 (milliseconds, as its
    /// browser client's clock).
    #[prost(double, tag = "5")]
    pub timestamp: f64,
    #[prost(double, tag = "6")]
    pub duration: f64,
    #[prost(message, optional, tag = "7")]
    pub audio_metadata: Option<AudioMetadata>,
    #[prost(message, optional, tag = "8")]
    pub video_metadata: Option<VideoMetadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AudioMetadata {
    #[prost(string, tag = "1")]
    pub audio_format: String,
    #[prost(uint32, tag = "2")]
    pub audio_number_of_channels: u32,
    #[prost(uint32, tag = "3")]
    pub audio_number_of_frames: u32,
    #[prost(float, tag = "4")]
    pub audio_sample_rate: f32,
    #[prost(uint64, tag = "5")]
    pub sequence: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct VideoMetadata {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(int32, tag = "2")]
    pub codec: i32,
}

/// A video frame of `size` payload bytes, captured at `now_us`.
pub fn video(user: &str, sequence: u64, keyframe: bool, size: usize, now_us: u64) -> Bytes {
    wrap(
        user,
        MediaPacket {
            media_type: MEDIA_VIDEO,
            user_id: user.as_bytes().to_vec(),
            data: payload(sequence, size),
            frame_type: if keyframe { "key" } else { "delta" }.into(),
            timestamp: now_us as f64 / 1000.0,
            duration: 1000.0 / 30.0,
            audio_metadata: None,
            video_metadata: Some(VideoMetadata {
                sequence,
                codec: CODEC_VP9,
            }),
        },
    )
}

/// An audio packet of `size` payload bytes (20 ms of Opus), captured at `now_us`.
pub fn audio(user: &str, sequence: u64, size: usize, now_us: u64) -> Bytes {
    wrap(
        user,
        MediaPacket {
            media_type: MEDIA_AUDIO,
            user_id: user.as_bytes().to_vec(),
            data: payload(sequence, size),
            frame_type: "key".into(),
            timestamp: now_us as f64 / 1000.0,
            duration: 20.0,
            audio_metadata: Some(AudioMetadata {
                audio_format: "opus".into(),
                audio_number_of_channels: 1,
                audio_number_of_frames: 960,
                audio_sample_rate: 48_000.0,
                sequence,
            }),
            video_metadata: None,
        },
    )
}

/// The heartbeat its clients send every few seconds.
pub fn heartbeat(user: &str, now_us: u64) -> Bytes {
    wrap(
        user,
        MediaPacket {
            media_type: MEDIA_HEARTBEAT,
            user_id: user.as_bytes().to_vec(),
            timestamp: now_us as f64 / 1000.0,
            ..MediaPacket::default()
        },
    )
}

fn payload(sequence: u64, size: usize) -> Bytes {
    let mut payload = vec![0u8; size.max(8)];
    payload[..8].copy_from_slice(&sequence.to_be_bytes());
    Bytes::from(payload)
}

fn wrap(user: &str, media: MediaPacket) -> Bytes {
    Bytes::from(
        PacketWrapper {
            packet_type: PACKET_MEDIA,
            user_id: user.as_bytes().to_vec(),
            data: Bytes::from(media.encode_to_vec()),
            session_id: 0,
        }
        .encode_to_vec(),
    )
}

/// Audio or video received: its kind and capture time (µs since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received {
    pub media_type: i32,
    pub captured_us: u64,
}

/// What `message` is, when it is audio or video; anything else (heartbeats, its server's own
/// messages, what does not parse) is `None`.
pub fn received(message: Bytes) -> Option<Received> {
    let wrapper = PacketWrapper::decode(message).ok()?;
    if wrapper.packet_type != PACKET_MEDIA {
        return None;
    }
    let media = MediaPacket::decode(wrapper.data).ok()?;
    matches!(media.media_type, MEDIA_VIDEO | MEDIA_AUDIO).then(|| Received {
        media_type: media.media_type,
        captured_us: (media.timestamp * 1000.0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_round_trips_and_the_rest_is_not_media() {
        let frame = video("alice", 7, true, 2083, 1_700_000_000_123_456);
        assert!(frame.len() > 2083);
        let got = received(frame).expect("video");
        assert_eq!(got.media_type, MEDIA_VIDEO);
        assert!(got.captured_us.abs_diff(1_700_000_000_123_456) < 2);
        let got = received(audio("bob", 1, 80, 5_000)).expect("audio");
        assert_eq!((got.media_type, got.captured_us), (MEDIA_AUDIO, 5_000));
        assert_eq!(received(heartbeat("bob", 1)), None);
        assert_eq!(received(Bytes::from_static(b"\xff\xff\xff")), None);
        let other = PacketWrapper {
            packet_type: 8,
            ..PacketWrapper::default()
        };
        assert_eq!(received(Bytes::from(other.encode_to_vec())), None);
    }
}
