//! `stream`: joins the meeting through the control plane (retrying while it cannot be
//! reached), announces an H.264 video track (and an Opus audio track under `--audio`) and
//! sends what the capture and audio threads encode.
//! When the relay goes away, the client rejoins through a new grant that avoids it, and the
//! first frame after is a keyframe. A stop leaves the meeting before closing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use videocall_client::control_plane::{login, ControlPlaneGrants};
use videocall_client::rejoin::{worth_retrying, Configure, RejoinEvent, Rejoining};
use videocall_client::tls::{read_ca_file, CaFileError};
use videocall_client::{ClientError, ConnectOptions, GroupEvent, Transport};
use videocall_protocol::wire::{envelope::Body, Codec, Media, MediaKind, Track};

use crate::audio::capture::AudioPacket;
use crate::audio::opus::OpusEncoder;
use crate::audio::AudioSource;
use crate::capture::{self, CaptureControl, CapturedFrame};
use crate::config::{SourceChoice, StreamArgs, TransportChoice};
use crate::encode::{EncodeSettings, H264Encoder};
use crate::metrics::Metrics;
use crate::source::{FrameSource, SourceError, TestPattern, Y4mFile};

/// The streamer's video track.
pub const VIDEO_TRACK: u32 = 1;
/// Its audio track (`--audio`).
pub const AUDIO_TRACK: u32 = 2;
/// Encoded frames waiting for the network (about a quarter of a second at 30 fps).
const SEND_QUEUE_FRAMES: usize = 8;
/// Opus packets waiting for the network (200 ms).
const SEND_QUEUE_AUDIO: usize = 10;

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The source cannot be used.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The capture thread failed.
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    /// The audio thread failed, or its encoder cannot be set up.
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    /// The `--ca-file` cannot be used.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// The encoder cannot be set up.
    #[error(transparent)]
    Encoder(#[from] crate::encode::EncodeError),
    /// Joining failed for a reason trying again does not mend (refused, meeting ended...).
    #[error("cannot join {meeting}: {error}")]
    Join {
        /// The meeting.
        meeting: String,
        /// Why.
        error: ClientError,
    },
    /// The session ended and no relay took the streamer back.
    #[error("the meeting session ended: {0}")]
    Ended(String),
}

fn open_source(args: &StreamArgs) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match &args.source {
        #[cfg(all(target_os = "linux", feature = "v4l2"))]
        SourceChoice::Camera => Box::new(crate::source::CameraSource::open(
            &args.video_device,
            crate::camera::Wanted {
                width: u32::try_from(args.resolution.width).unwrap_or(u32::MAX),
                height: u32::try_from(args.resolution.height).unwrap_or(u32::MAX),
                fps: args.fps,
                format: args.frame_format,
            },
        )?),
        #[cfg(not(all(target_os = "linux", feature = "v4l2")))]
        SourceChoice::Camera => return Err(crate::camera::CameraError::Unsupported.into()),
        SourceChoice::TestPattern => Box::new(TestPattern::new(
            args.resolution.width,
            args.resolution.height,
        )?),
        SourceChoice::Y4m(path) => Box::new(Y4mFile::open(path)?),
    })
}

/// The options of every connection: the streamer's name, and the authorities of `--ca-file`.
fn configure(ca_certificates: Vec<Vec<u8>>) -> Configure {
    Arc::new(move |options: &mut ConnectOptions| {
        options.client_name = format!("videocall-streamer/{}", env!("CARGO_PKG_VERSION"));
        options.ca_certificates = ca_certificates.clone();
    })
}

/// Joins, trying WebTransport then WebSocket under `auto`, again and again with backoff while
/// the failure may pass (control plane or relay unreachable, no relay free).
async fn join(
    args: &StreamArgs,
    configure: &Configure,
    stop: &CancellationToken,
) -> Result<Option<Rejoining<ControlPlaneGrants>>, StreamError> {
    let transports: &[Transport] = match args.transport {
        TransportChoice::Auto => &[Transport::WebTransport, Transport::WebSocket],
        TransportChoice::Webtransport => &[Transport::WebTransport],
        TransportChoice::Websocket => &[Transport::WebSocket],
    };
    let give_up = Duration::from_secs(args.give_up_after_secs.max(1));
    let mut pause = Duration::from_millis(500);
    loop {
        let mut last = None;
        match authorization(args).await {
            Ok(authorization) => {
                let mut grants = ControlPlaneGrants::new(
                    &args.control_plane_url,
                    &args.meeting_id,
                    &args.user_id,
                );
                if let Some(authorization) = &authorization {
                    grants = grants.with_authorization(authorization);
                }
                for &transport in transports {
                    match Rejoining::join(grants.clone(), transport, configure.clone(), give_up)
                        .await
                    {
                        Ok(client) => return Ok(Some(client)),
                        Err(error) => {
                            tracing::warn!(?transport, %error, "joining failed");
                            last = Some(error);
                        }
                    }
                }
            }
            Err(error) => last = Some(error),
        }
        if let Some(error) = last.filter(|e| !worth_retrying(e)) {
            return Err(StreamError::Join {
                meeting: args.meeting_id.clone(),
                error,
            });
        }
        tracing::warn!(retry_in = ?pause, "cannot join yet; trying again");
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

async fn authorization(args: &StreamArgs) -> Result<Option<String>, ClientError> {
    if let Some(key) = &args.api_key {
        let (id, secret) = key
            .split_once(':')
            .ok_or_else(|| ClientError::GrantRefused {
                message: "--api-key must be key-id:secret".into(),
                retry: false,
            })?;
        return Ok(Some(videocall_control_api::api_key_authorization(
            id, secret,
        )));
    }
    match &args.password {
        Some(password) => login(&args.control_plane_url, &args.user_id, password)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// The tracks the streamer publishes: video, and audio when it sends sound.
fn tracks(audio: bool) -> Vec<Track> {
    let mut tracks = vec![Track {
        id: VIDEO_TRACK,
        kind: MediaKind::Video as i32,
        codec: Codec::H264 as i32,
        layers: Vec::new(),
    }];
    if audio {
        tracks.push(Track {
            id: AUDIO_TRACK,
            kind: MediaKind::Audio as i32,
            codec: Codec::Opus as i32,
            layers: Vec::new(),
        });
    }
    tracks
}

async fn announce(client: &Rejoining<ControlPlaneGrants>, audio: bool) -> Result<(), ClientError> {
    client.sender().announce(tracks(audio)).await
}

/// The audio thread, when `--audio` asks for sound.
struct AudioThread {
    packets: mpsc::Receiver<AudioPacket>,
    thread: std::thread::JoinHandle<Result<(), crate::audio::AudioError>>,
}

impl AudioThread {
    /// The source and encoder of `--audio`, opened before any network like the video's (a
    /// missing microphone is said at once, and the test tone goes instead).
    fn open(args: &StreamArgs) -> Result<(Box<dyn AudioSource>, OpusEncoder), StreamError> {
        let encoder = OpusEncoder::new(args.audio_bitrate_kbps.saturating_mul(1000))?;
        let source = crate::audio::open_source(&args.audio_device);
        tracing::info!(source = %source.describe(), kbps = args.audio_bitrate_kbps, "sound");
        Ok((source, encoder))
    }

    fn start(source: Box<dyn AudioSource>, encoder: OpusEncoder, metrics: &Metrics) -> Self {
        let (tx, packets) = mpsc::channel(SEND_QUEUE_AUDIO);
        let thread = crate::audio::capture::spawn(source, encoder, tx, metrics.clone());
        AudioThread { packets, thread }
    }

    /// The next packet; never, without sound (or once the thread has stopped).
    async fn next(audio: &mut Option<AudioThread>) -> Option<AudioPacket> {
        match audio {
            Some(audio) => audio.packets.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Stops the thread (its receiver goes) and waits for it.
    async fn finish(self) -> Result<(), StreamError> {
        drop(self.packets);
        Ok(join_thread(self.thread, "audio").await?)
    }
}

/// Waits for a worker thread without blocking the runtime: its error, if it failed; a panic
/// is logged (the stream was ending anyway).
async fn join_thread<E: Send + 'static>(
    thread: std::thread::JoinHandle<Result<(), E>>,
    name: &str,
) -> Result<(), E> {
    match tokio::task::spawn_blocking(move || thread.join()).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => {
            tracing::error!("the {name} thread panicked");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Streams until `stop` is cancelled, or until something stops it that retrying cannot mend.
pub async fn run(
    args: StreamArgs,
    metrics: Metrics,
    control: CaptureControl,
    stop: CancellationToken,
) -> Result<(), StreamError> {
    // Source and encoder first: a wrong file or size is said at once, before any network.
    let source = open_source(&args)?;
    let (width, height) = source.size();
    // A camera slower at this size than asked for sets the pace.
    let fps = source.frame_rate().unwrap_or(args.fps);
    let encoder = H264Encoder::new(EncodeSettings {
        bitrate_bps: args.bitrate_kbps.saturating_mul(1000),
        fps: fps as f32,
        keyframe_interval: args.keyframe_interval,
        threads: args.encoder_threads,
    })?;
    let sound = if args.audio {
        Some(AudioThread::open(&args)?)
    } else {
        None
    };
    let ca_certificates = match &args.ca_file {
        Some(path) => read_ca_file(path).await?,
        None => Vec::new(),
    };
    let Some(mut client) = join(&args, &configure(ca_certificates), &stop).await? else {
        return Ok(());
    };
    tracing::info!(
        meeting = %args.meeting_id,
        relay = %client.relay_id(),
        participant = client.participant_id(),
        width,
        height,
        fps,
        kbps = args.bitrate_kbps,
        "streaming"
    );
    metrics.connected.set(1);
    if let Err(error) = announce(&client, args.audio).await {
        tracing::warn!(%error, "announcing the tracks failed; the session is going");
    }
    let (frames_tx, mut frames) = mpsc::channel::<CapturedFrame>(SEND_QUEUE_FRAMES);
    let capture = capture::spawn(
        source,
        encoder,
        f64::from(fps),
        frames_tx,
        control.clone(),
        metrics.clone(),
    );
    let mut audio = sound.map(|(source, encoder)| AudioThread::start(source, encoder, &metrics));
    let mut sequence = 0u64;
    let mut audio_sequence = 0u64;
    let outcome = loop {
        let sender = client.sender();
        // One event future across many frames: a rejoin in progress is never cut short.
        let event = {
            let next = client.next_event();
            tokio::pin!(next);
            loop {
                tokio::select! {
                    event = &mut next => break Some(event),
                    _ = stop.cancelled() => break None,
                    frame = frames.recv() => {
                        let Some(frame) = frame else { break None };
                        sequence += 1;
                        let bytes = frame.encoded.data.len() as u64;
                        let media = Media {
                            track_id: VIDEO_TRACK,
                            kind: MediaKind::Video as i32,
                            codec: Codec::H264 as i32,
                            sequence,
                            capture_timestamp_us: frame.captured_us,
                            keyframe: frame.encoded.keyframe,
                            payload: Bytes::from(frame.encoded.data),
                            ..Default::default()
                        };
                        if sender.send_media(media).await.is_ok() {
                            metrics.frames_sent.inc();
                            metrics.bytes_sent.inc_by(bytes);
                        } else {
                            metrics.frames_dropped.with_label_values(&["not_connected"]).inc();
                            control.ask_keyframe();
                        }
                    }
                    packet = AudioThread::next(&mut audio) => {
                        let Some(packet) = packet else { break None };
                        audio_sequence += 1;
                        let media = Media {
                            track_id: AUDIO_TRACK,
                            kind: MediaKind::Audio as i32,
                            codec: Codec::Opus as i32,
                            sequence: audio_sequence,
                            capture_timestamp_us: packet.captured_us,
                            keyframe: true,
                            payload: Bytes::from(packet.payload),
                            ..Default::default()
                        };
                        if sender.send_media(media).await.is_ok() {
                            metrics.audio_packets_sent.inc();
                        } else {
                            metrics.frames_dropped.with_label_values(&["audio_not_connected"]).inc();
                        }
                    }
                }
            }
        };
        match event {
            None => break Ok(()),
            Some(RejoinEvent::Message(Body::KeyframeRequest(_))) => control.ask_keyframe(),
            Some(RejoinEvent::Message(Body::Error(error))) => {
                tracing::warn!(code = ?error.code(), message = %error.message, "the relay says");
            }
            Some(RejoinEvent::Message(_)) => {}
            // The group changed: whoever is new could not open the frames before.
            Some(RejoinEvent::Encryption(event)) => {
                match &event {
                    GroupEvent::Epoch { epoch, members } => {
                        let members: Vec<String> = members
                            .iter()
                            .map(|m| format!("{} [{}]", m.shown_name(), m.code))
                            .collect();
                        tracing::info!(epoch, members = %members.join(", "), "end-to-end encrypted");
                    }
                    GroupEvent::Left { reason } => {
                        tracing::warn!(%reason, "out of the encrypted group; nothing is sent until back in");
                    }
                    GroupEvent::Refused { from, reason } => {
                        tracing::warn!(from, %reason, "refused from another participant");
                    }
                }
                if matches!(event, GroupEvent::Epoch { .. }) {
                    control.ask_keyframe();
                }
            }
            Some(RejoinEvent::Lost { relay_id, reason }) => {
                tracing::warn!(relay = %relay_id, %reason, "the relay was lost; rejoining");
                metrics.relay_losses.inc();
                metrics.connected.set(0);
            }
            Some(RejoinEvent::Rejoined {
                relay_id, after, ..
            }) => {
                tracing::info!(relay = %relay_id, %after, "rejoined");
                metrics.reconnects.inc();
                metrics.connected.set(1);
                if let Err(error) = announce(&client, args.audio).await {
                    tracing::warn!(%error, "announcing the tracks again failed");
                }
                control.ask_keyframe();
            }
            Some(RejoinEvent::Ended { code, reason }) => {
                break Err(StreamError::Ended(format!("{reason} (code {code})")));
            }
        }
    };
    metrics.connected.set(0);
    control.stop();
    if outcome.is_ok() {
        // Leave first, so the others see LEFT rather than a timeout; then close.
        client.leave().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), client.next_event()).await;
    }
    drop(frames);
    join_thread(capture, "capture").await?;
    if let Some(audio) = audio {
        audio.finish().await?;
    }
    outcome
}
