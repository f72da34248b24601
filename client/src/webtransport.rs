//! WebTransport side of the client: control stream, a stream per video group of
//! pictures, audio in datagrams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use videocall_protocol::wire::{self, envelope::Body, MediaKind};
use videocall_protocol::{
    encode_length_prefixed, length_delimited_codec, DEFAULT_MAX_FRAME_SIZE, LENGTH_PREFIX_BYTES,
};
use wtransport::error::ConnectionError;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, SendStream, VarInt};

use crate::{deliver, envelope, ClientError, ConnectOptions, Event, SenderInner};

/// Control messages queued for the control stream writer.
const CONTROL_QUEUE: usize = 1024;
/// Video packets queued per track before `send_media` waits.
const TRACK_QUEUE: usize = 256;
/// The close code of a connection whose client the application dropped.
const CLIENT_GONE: u32 = 0;
/// How long a dropped client's close may take to reach the relay.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A frame for a track writer, with its keyframe flag.
type TrackFrame = (Bytes, bool);
/// Writers of the published tracks, by track id.
type TrackWriters = Arc<Mutex<HashMap<u32, mpsc::Sender<TrackFrame>>>>;

#[derive(Clone)]
pub(crate) struct WtSender {
    connection: Connection,
    control: mpsc::Sender<Bytes>,
    tracks: TrackWriters,
}

fn closed() -> ClientError {
    ClientError::Closed {
        code: 0,
        reason: "connection closed".into(),
    }
}

impl WtSender {
    pub(crate) async fn send_control(&self, body: Body) -> Result<(), ClientError> {
        self.send_raw_control(encode_length_prefixed(&envelope(body)))
            .await
    }

    /// `frame` must carry its length prefix.
    pub(crate) async fn send_raw_control(&self, frame: Bytes) -> Result<(), ClientError> {
        self.control.send(frame).await.map_err(|_| closed())
    }

    pub(crate) async fn send_media(&self, media: wire::Media) -> Result<(), ClientError> {
        let audio = media.kind == MediaKind::Audio as i32;
        let keyframe = media.keyframe;
        let track_id = media.track_id;
        let frame = encode_length_prefixed(&envelope(Body::Media(media)));
        // A datagram too large for the path fails here and goes on the track's stream.
        if audio
            && self
                .connection
                .send_datagram(frame.slice(LENGTH_PREFIX_BYTES..))
                .is_ok()
        {
            return Ok(());
        }
        let lane = {
            let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
            tracks
                .entry(track_id)
                .or_insert_with(|| spawn_track_writer(self.connection.clone(), audio))
                .clone()
        };
        lane.send((frame, keyframe)).await.map_err(|_| closed())
    }
}

/// One task per published track: a new stream at every keyframe, so a stalled group
/// of pictures never holds up audio or another track.
fn spawn_track_writer(connection: Connection, audio: bool) -> mpsc::Sender<TrackFrame> {
    let (tx, mut rx) = mpsc::channel::<TrackFrame>(TRACK_QUEUE);
    tokio::spawn(async move {
        let mut stream: Option<SendStream> = None;
        while let Some((frame, keyframe)) = rx.recv().await {
            if keyframe && !audio {
                if let Some(mut old) = stream.take() {
                    let _ = old.quic_stream_mut().finish();
                }
            }
            let writer = match &mut stream {
                Some(s) => s,
                None => match connection.open_uni().await {
                    Ok(opening) => match opening.await {
                        Ok(s) => stream.insert(s),
                        Err(_) => return,
                    },
                    Err(_) => return,
                },
            };
            if writer.quic_stream_mut().write_chunk(frame).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// The client's UDP socket: any address, IPv6 and IPv4 where the system allows both (as
/// wtransport binds by default), with kernel buffers large enough for a meeting's worth of
/// video arriving between two reads.
fn bind_udp() -> Result<std::net::UdpSocket, ClientError> {
    let any_v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    let any_v4 = std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0));
    let buffer = videocall_udp_socket::DEFAULT_BUFFER_BYTES;
    videocall_udp_socket::bind(any_v6, buffer)
        .or_else(|_| videocall_udp_socket::bind(any_v4, buffer))
        .map(|bound| bound.socket)
        .map_err(|e| ClientError::Connect(format!("UDP socket: {e}")))
}

/// Connects to the relay and sends `join` first.
pub(crate) async fn connect(
    options: &ConnectOptions,
    join: Body,
) -> Result<(SenderInner, mpsc::Receiver<Event>), ClientError> {
    let builder = ClientConfig::builder().with_bind_socket(bind_udp()?);
    let mut config = match &options.relay.certificate_sha256 {
        Some(hex_hash) => {
            let bytes = hex::decode(hex_hash.trim())
                .map_err(|e| ClientError::Connect(format!("certificate hash: {e}")))?;
            let digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| ClientError::Connect("certificate hash must be 32 bytes".into()))?;
            builder
                .with_server_certificate_hashes([Sha256Digest::new(digest)])
                .build()
        }
        None if !options.ca_certificates.is_empty() => {
            let mut roots = wtransport::tls::rustls::RootCertStore::empty();
            for der in &options.ca_certificates {
                roots
                    .add(der.clone().into())
                    .map_err(|e| ClientError::Connect(format!("CA certificate: {e}")))?;
            }
            builder
                .with_custom_tls(wtransport::tls::client::build_default_tls_config(
                    Arc::new(roots),
                    None,
                ))
                .build()
        }
        None => builder.with_native_certs().build(),
    };
    config.set_dns_resolver(LocalhostResolver);
    let mut transport = wtransport::quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(wtransport::quinn::VarInt::from_u32(1024));
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    config
        .quic_config_mut()
        .transport_config(Arc::new(transport));
    let endpoint = Endpoint::client(config).map_err(|e| ClientError::Connect(e.to_string()))?;
    let connection = endpoint
        .connect(options.relay.webtransport_url.as_str())
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let (mut send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;

    let (control_tx, mut control_rx) = mpsc::channel::<Bytes>(CONTROL_QUEUE);
    let (events_tx, events) = mpsc::channel(options.event_buffer.max(1));
    let answer_pings = options.answer_pings;

    tokio::spawn(async move {
        while let Some(frame) = control_rx.recv().await {
            if send.quic_stream_mut().write_chunk(frame).await.is_err() {
                break;
            }
        }
        let _ = send.quic_stream_mut().finish();
    });

    // Control stream reader; it also reports the close once the connection ends.
    {
        let events_tx = events_tx.clone();
        let pong_tx = control_tx.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(recv, length_delimited_codec(DEFAULT_MAX_FRAME_SIZE));
            while let Some(Ok(frame)) = frames.next().await {
                let pong = |body: Body| {
                    let _ = pong_tx.try_send(encode_length_prefixed(&envelope(body)));
                };
                if !deliver(frame.freeze(), &events_tx, pong, answer_pings).await {
                    return;
                }
            }
            let (code, reason) = close_info(connection.closed().await);
            let _ = events_tx.send(Event::Closed { code, reason }).await;
        });
    }

    // Media streams from the relay.
    {
        let events_tx = events_tx.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            while let Ok(stream) = connection.accept_uni().await {
                let events_tx = events_tx.clone();
                tokio::spawn(async move {
                    let mut frames =
                        FramedRead::new(stream, length_delimited_codec(DEFAULT_MAX_FRAME_SIZE));
                    while let Some(Ok(frame)) = frames.next().await {
                        if !deliver(frame.freeze(), &events_tx, |_| {}, false).await {
                            return;
                        }
                    }
                });
            }
        });
    }

    // Datagrams (audio).
    {
        let events_tx = events_tx.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            while let Ok(datagram) = connection.receive_datagram().await {
                if !deliver(datagram.payload(), &events_tx, |_| {}, false).await {
                    return;
                }
            }
        });
    }

    // The endpoint must outlive the connection. The connection ends when the application
    // drops the client (the events' receiver) too: the tasks above hold it open, and pings
    // answered here would keep the relay waiting for a participant who is gone.
    {
        let connection = connection.clone();
        let events_tx = events_tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection.closed() => {}
                _ = events_tx.closed() => {
                    connection.close(VarInt::from_u32(CLIENT_GONE), b"client dropped");
                    // Its close reaches the relay before the endpoint goes.
                    let _ = tokio::time::timeout(CLOSE_WAIT, endpoint.wait_idle()).await;
                }
            }
            drop(endpoint);
        });
    }

    let sender = WtSender {
        connection,
        control: control_tx,
        tracks: Arc::new(Mutex::new(HashMap::new())),
    };
    sender.send_control(join).await?;
    Ok((SenderInner::WebTransport(sender), events))
}

fn close_info(error: ConnectionError) -> (u32, String) {
    match error {
        ConnectionError::ApplicationClosed(close) => (
            close.code().into_inner() as u32,
            String::from_utf8_lossy(close.reason()).into_owned(),
        ),
        other => (0, other.to_string()),
    }
}

/// Resolves `*.localhost` to loopback as browsers do (RFC 6761 §6.3), so `relay-1.localhost`
/// reaches a gateway on this machine with a server name that names relay 1; other names go to
/// the system resolver.
#[derive(Debug, Default)]
pub struct LocalhostResolver;

impl wtransport::config::DnsResolver for LocalhostResolver {
    fn resolve(&self, host: &str) -> std::pin::Pin<Box<dyn wtransport::config::DnsLookupFuture>> {
        let host = host.to_owned();
        Box::pin(async move {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (name, port.parse::<u16>().ok()),
                None => (host.as_str(), None),
            };
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let (Some(port), true) = (port, name == "localhost" || name.ends_with(".localhost"))
            {
                return Ok(Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))));
            }
            Ok(tokio::net::lookup_host(host).await?.next())
        })
    }
}
