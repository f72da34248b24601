//! `videocall-streamer stream`'s options: the names of the original videocall-cli's
//! (`--user-id`, `--meeting-id`, `--resolution`, `--fps`, `--bitrate-kbps`) plus the control
//! plane, credentials, source and transport. Every flag has an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Where pictures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// A camera (`--video-device`), over V4L2.
    Camera,
    /// The moving test pattern with its burned-in counter and clock.
    TestPattern,
    /// A Y4M file, looped.
    Y4m(PathBuf),
}

impl FromStr for SourceChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "camera" => Ok(SourceChoice::Camera),
            "test-pattern" => Ok(SourceChoice::TestPattern),
            path if path.ends_with(".y4m") => Ok(SourceChoice::Y4m(PathBuf::from(path))),
            other => Err(format!(
                "{other:?}: expected camera, test-pattern or a .y4m file"
            )),
        }
    }
}

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportChoice {
    /// WebTransport, and WebSocket when WebTransport cannot connect.
    Auto,
    /// WebTransport only.
    Webtransport,
    /// WebSocket only.
    Websocket,
}

/// A picture size, `WIDTHxHEIGHT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl FromStr for Resolution {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let (width, height) = value
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("{value:?}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
        let parse = |side: &str| {
            side.trim()
                .parse::<usize>()
                .map_err(|_| format!("{value:?}: expected WIDTHxHEIGHT, e.g. 1280x720"))
        };
        Ok(Resolution {
            width: parse(width)?,
            height: parse(height)?,
        })
    }
}

/// `videocall-streamer stream`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// The control plane's gRPC URL; its grant names the relay.
    #[arg(long, env = "STREAMER_CONTROL_PLANE_URL")]
    pub control_plane_url: String,
    /// Meeting to stream into.
    #[arg(long, env = "STREAMER_MEETING_ID")]
    pub meeting_id: String,
    /// The name to join as: a user (with `--password`) or a guest's display name.
    #[arg(long, env = "STREAMER_USER_ID")]
    pub user_id: String,
    /// Sign in as `--user-id` with this password (else join as a guest, where the meeting
    /// admits guests).
    #[arg(
        long,
        env = "STREAMER_PASSWORD",
        hide_env_values = true,
        conflicts_with = "api_key"
    )]
    pub password: Option<String>,
    /// Authenticate with an API key, `key-id:secret`.
    #[arg(long, env = "STREAMER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// `camera`, `test-pattern`, or a `.y4m` file (8-bit 4:2:0, looped).
    #[arg(long, env = "STREAMER_SOURCE", default_value = "test-pattern")]
    pub source: SourceChoice,
    /// The camera: an index (`0` is `/dev/video0`) or a device path (e.g. a stable
    /// `/dev/v4l/by-id/…` name). `videocall-streamer devices` lists them.
    /// (`--video-device-index`, videocall-cli's name, is the same option.)
    #[arg(
        long = "video-device",
        visible_alias = "video-device-index",
        env = "STREAMER_VIDEO_DEVICE",
        default_value = "0"
    )]
    pub video_device: String,
    /// The camera's pixel format: NV12, YUYV or MJPEG (default: the cheapest to convert
    /// among those that reach the size and rate).
    #[arg(long, env = "STREAMER_FRAME_FORMAT")]
    pub frame_format: Option<crate::camera::PixelFormat>,
    /// Picture size of the camera or the test pattern (a file has its own).
    #[arg(long, env = "STREAMER_RESOLUTION", default_value = "1280x720")]
    pub resolution: Resolution,
    /// Frames per second.
    #[arg(long, env = "STREAMER_FPS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub fps: u32,
    /// Target bitrate, kbit/s (constant bitrate).
    #[arg(long, env = "STREAMER_BITRATE_KBPS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(50..=20_000))]
    pub bitrate_kbps: u32,
    /// A keyframe this many frames after the latest (0: only when a viewer asks).
    #[arg(long, env = "STREAMER_KEYFRAME_INTERVAL", default_value_t = 150)]
    pub keyframe_interval: u32,
    /// Encoder threads (0: one per core).
    #[arg(long, env = "STREAMER_ENCODER_THREADS", default_value_t = 0)]
    pub encoder_threads: u16,
    /// A PEM file of the authority that signed the relays' certificates (development relays
    /// with a CA of their own); a grant's certificate hash (self-signed relays) and the
    /// system's roots need none. Certificates are always verified.
    #[arg(long, env = "STREAMER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Send sound too: the microphone of `--audio-device`, or a test tone where there is
    /// none (Opus, 48 kHz mono).
    #[arg(long, env = "STREAMER_AUDIO")]
    pub audio: bool,
    /// The ALSA capture device (`default`, `plughw:1,0`, ...; `videocall-streamer devices`
    /// lists them), or `test-tone`.
    #[arg(long, env = "STREAMER_AUDIO_DEVICE", default_value = "default")]
    pub audio_device: String,
    /// Opus bitrate, kbit/s.
    #[arg(long, env = "STREAMER_AUDIO_BITRATE_KBPS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(6..=256))]
    pub audio_bitrate_kbps: u32,
    /// Transport to the relay.
    #[arg(long, env = "STREAMER_TRANSPORT", value_enum, default_value = "auto")]
    pub transport: TransportChoice,
    /// `/metrics`, `/healthz` and `/readyz` on this address (off when unset).
    #[arg(long, env = "STREAMER_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Keep trying to rejoin this many seconds after a loss before giving up.
    #[arg(long, env = "STREAMER_GIVE_UP_AFTER_SECS", default_value_t = 300)]
    pub give_up_after_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_sizes_parse_or_say_what_is_wrong() {
        assert_eq!("test-pattern".parse(), Ok(SourceChoice::TestPattern));
        assert_eq!(
            "clip.y4m".parse(),
            Ok(SourceChoice::Y4m(PathBuf::from("clip.y4m")))
        );
        assert_eq!("camera".parse(), Ok(SourceChoice::Camera));
        assert!("webcam".parse::<SourceChoice>().is_err());
        assert_eq!(
            "1280x720".parse(),
            Ok(Resolution {
                width: 1280,
                height: 720
            })
        );
        assert!("1280"
            .parse::<Resolution>()
            .unwrap_err()
            .contains("WIDTHxHEIGHT"));
        assert!("axb".parse::<Resolution>().is_err());
    }
}
