//! Native videocall client: joins a meeting on a relay over WebTransport or WebSocket,
//! publishes media and receives everyone else's.
//!
//! Used by the tests, the load generator and the streamer. It speaks the same mapping as
//! the browser client (ARCHITECTURE.md, "Wire protocol"): a control stream, one stream
//! per video group of pictures, audio in datagrams. What it says and does with what it hears
//! (the join handshake, the roster, keyframe-request pacing, encryption) is the client core's
//! ([`videocall_client_core`]), the same code the browser runs; this crate adds the
//! transports and tokio.
//!
//! With [`Client::start_encryption`] the session is end-to-end encrypted
//! ([`videocall_e2ee::ClientEncryption`]): media and chat are sealed before they leave and
//! opened as they arrive, the meeting's handshake messages are answered, and nothing is sent
//! or handed on in clear.

pub mod control_plane;
pub mod member_seed;
pub mod rejoin;
mod shared;
pub mod synthetic;
pub mod tls;
mod websocket;
mod webtransport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use videocall_client_core::{JoinRequest, JoinStep, Joining, SessionError, SessionOptions};
use videocall_e2ee::Member;
/// What happens to an encrypted session's group ([`Event::Encryption`]).
pub use videocall_e2ee::{GroupEvent, GroupMember};
use videocall_protocol::wire::{self, envelope::Body, ErrorCode};
use videocall_protocol::ProtocolError;

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebTransport over QUIC.
    WebTransport,
    /// WebSocket over TCP.
    WebSocket,
}

/// How to reach a relay.
#[derive(Debug, Clone)]
pub struct RelayAddress {
    /// `https://host:port/` of the WebTransport listener.
    pub webtransport_url: String,
    /// `ws://host:port/ws` of the WebSocket listener.
    pub websocket_url: String,
    /// Hex SHA-256 of a self-signed certificate to trust; `None` uses the system roots.
    pub certificate_sha256: Option<String>,
}

/// Everything needed to join.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Transport to use.
    pub transport: Transport,
    /// The relay.
    pub relay: RelayAddress,
    /// Meeting to join.
    pub meeting_id: String,
    /// Join token for that meeting.
    pub token: String,
    /// Free-form description for the relay's logs.
    pub client_name: String,
    /// Answer the relay's pings (turn off only to simulate a dead peer).
    pub answer_pings: bool,
    /// Messages buffered for the application before the client stops reading the network.
    pub event_buffer: usize,
    /// Time allowed for connecting and joining.
    pub join_timeout: Duration,
    /// DER certificates of authorities a relay's certificate may be signed by (a CA file for
    /// development relays, [`tls::read_ca_file`]); used over WebTransport where the relay's
    /// address pins no certificate hash. Empty: the system's roots.
    pub ca_certificates: Vec<Vec<u8>>,
}

impl ConnectOptions {
    /// Options with defaults for everything but the essentials.
    pub fn new(transport: Transport, relay: RelayAddress, meeting_id: &str, token: &str) -> Self {
        ConnectOptions {
            transport,
            relay,
            meeting_id: meeting_id.to_owned(),
            token: token.to_owned(),
            client_name: format!("videocall-client/{}", env!("CARGO_PKG_VERSION")),
            answer_pings: true,
            event_buffer: 4096,
            join_timeout: Duration::from_secs(10),
            ca_certificates: Vec::new(),
        }
    }
}

/// Why a connection ended or never started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The relay could not be reached.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The relay refused the join.
    #[error("refused ({code:?}): {message}")]
    Refused {
        /// Wire error code.
        code: ErrorCode,
        /// The relay's explanation.
        message: String,
    },
    /// The session closed.
    #[error("closed (code {code}): {reason}")]
    Closed {
        /// Transport close code (WebSocket close code, or QUIC application code).
        code: u32,
        /// Close reason text.
        reason: String,
    },
    /// Something the relay sent could not be decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Joining took too long.
    #[error("timed out joining")]
    Timeout,
    /// End-to-end encryption is on and the participant is not in the meeting's group yet:
    /// the media or chat message was not sent (nothing leaves in clear).
    #[error("not in the meeting's encrypted group yet: not sent")]
    NotInGroup,
    /// End-to-end encryption failed (or was started twice).
    #[error("end-to-end encryption: {0}")]
    Encryption(String),
    /// The control plane gave no grant.
    #[error("no grant: {message}")]
    GrantRefused {
        /// What it said.
        message: String,
        /// Whether asking again may help (no relay free yet, the control plane restarting).
        retry: bool,
    },
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

impl From<SessionError> for ClientError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Encryption(e) => e.into(),
            other => ClientError::Encryption(other.to_string()),
        }
    }
}

impl From<videocall_e2ee::E2eeError> for ClientError {
    fn from(e: videocall_e2ee::E2eeError) -> Self {
        match e {
            videocall_e2ee::E2eeError::NoGroup => ClientError::NotInGroup,
            other => ClientError::Encryption(other.to_string()),
        }
    }
}

/// What the relay sends.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message (media, participant events, errors, chat, ...).
    Message(Body),
    /// Something happened to the meeting's encrypted group (after
    /// [`Client::start_encryption`]): an epoch entered, the group left, input refused.
    Encryption(GroupEvent),
    /// The session ended.
    Closed {
        /// Transport close code.
        code: u32,
        /// Close reason.
        reason: String,
    },
}

impl Event {
    /// Whether a publisher should send a keyframe now: the relay asks for one, or the
    /// encrypted group entered a new epoch (whoever is new could not open the frames before).
    pub fn asks_for_keyframe(&self) -> bool {
        matches!(
            self,
            Event::Message(Body::KeyframeRequest(_)) | Event::Encryption(GroupEvent::Epoch { .. })
        )
    }
}

/// A joined session. Dropping it ends the connection at once (the relay sees the participant
/// disconnect; [`Sender::leave`] first says it left): its [`Sender`]s then fail.
pub struct Client {
    /// The relay's welcome: own id and who was already there (who is there now:
    /// [`Self::participants`]).
    pub joined: wire::Joined,
    sender: Sender,
    events: mpsc::Receiver<Event>,
    poll: tokio::time::Interval,
}

/// Sends on a session; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    inner: SenderInner,
    session: Arc<shared::SharedSession>,
}

#[derive(Clone)]
pub(crate) enum SenderInner {
    WebTransport(webtransport::WtSender),
    WebSocket(websocket::WsSender),
}

impl Sender {
    /// Sends a control message (a chat or data message sealed when encryption is on).
    pub async fn send(&self, mut body: Body) -> Result<(), ClientError> {
        self.session.seal(&mut body)?;
        self.send_as_is(body).await
    }

    async fn send_as_is(&self, body: Body) -> Result<(), ClientError> {
        match &self.inner {
            SenderInner::WebTransport(s) => s.send_control(body).await,
            SenderInner::WebSocket(s) => s.send(body).await,
        }
    }

    /// Publishes a media packet (audio as a datagram on WebTransport, video on its
    /// group-of-pictures stream), sealed when encryption is on.
    pub async fn send_media(&self, mut media: wire::Media) -> Result<(), ClientError> {
        self.session.seal_media(&mut media)?;
        match &self.inner {
            SenderInner::WebTransport(s) => s.send_media(media).await,
            SenderInner::WebSocket(s) => s.send(Body::Media(media)).await,
        }
    }

    /// Announces the tracks this participant publishes: always the whole list (a track left
    /// out is unpublished, an empty list unpublishes everything). The relay forwards media
    /// only of announced tracks, so announce a track before sending its media.
    pub async fn announce(&self, tracks: Vec<wire::Track>) -> Result<(), ClientError> {
        self.send(Body::UpdateState(wire::UpdateState {
            tracks,
            announce_tracks: true,
            ..Default::default()
        }))
        .await
    }

    /// Sends raw bytes as one frame, bypassing encoding (for protocol tests).
    pub async fn send_raw(&self, frame: Bytes) -> Result<(), ClientError> {
        match &self.inner {
            SenderInner::WebTransport(s) => s.send_raw_control(frame).await,
            SenderInner::WebSocket(s) => s.send_raw(frame).await,
        }
    }

    /// Leaves the meeting and closes the connection.
    pub async fn leave(&self) {
        let _ = self
            .send_as_is(Body::Leave(wire::Leave {
                reason: "bye".into(),
            }))
            .await;
    }
}

impl Client {
    /// Connects and joins.
    pub async fn connect(options: ConnectOptions) -> Result<Client, ClientError> {
        let clock = shared::Clock::start();
        let timeout_ms = options.join_timeout.as_millis() as u64;
        let (joining, join) = Joining::start(
            JoinRequest {
                token: options.token.clone(),
                meeting_id: options.meeting_id.clone(),
                client: options.client_name.clone(),
            },
            clock.now_ms(),
            timeout_ms,
        );
        let connecting = async {
            match options.transport {
                Transport::WebTransport => webtransport::connect(&options, join).await,
                Transport::WebSocket => websocket::connect(&options, join).await,
            }
        };
        let (inner, mut events) = tokio::time::timeout(options.join_timeout, connecting)
            .await
            .map_err(|_| ClientError::Timeout)??;
        let joined = loop {
            let remaining = Duration::from_millis(joining.remaining_ms(clock.now_ms()));
            match tokio::time::timeout(remaining, events.recv()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(None) => {
                    return Err(ClientError::Connect(
                        "connection ended before Joined".into(),
                    ))
                }
                Ok(Some(Event::Message(body))) => match joining.receive(body) {
                    JoinStep::Joined(joined) => break joined,
                    JoinStep::Refused { code, message } => {
                        return Err(ClientError::Refused { code, message })
                    }
                    // Media of others may overtake Joined on WebTransport; nothing to keep
                    // before joining (and encryption starts after).
                    JoinStep::Waiting => continue,
                },
                Ok(Some(Event::Closed { code, reason })) => {
                    return Err(ClientError::Closed { code, reason })
                }
                Ok(Some(Event::Encryption(_))) => continue,
            }
        };
        // The transports answer the relay's pings as they read (an application slow to take
        // events must not look dead); QUIC and WebSocket keep the connection alive.
        let session = videocall_client_core::Session::new(
            joined.clone(),
            SessionOptions {
                answer_pings: options.answer_pings,
                ping_interval_ms: None,
                ..SessionOptions::default()
            },
            clock.now_ms(),
        );
        let sender = Sender {
            inner,
            session: Arc::new(shared::SharedSession::new(session, clock)),
        };
        let mut poll = tokio::time::interval(shared::POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Client {
            joined,
            sender,
            events,
            poll,
        })
    }

    /// Encrypts the session end to end as `member` (whose credential the control plane
    /// signed for this meeting): from now on media and chat are sealed before they leave
    /// (held back, with [`ClientError::NotInGroup`], until the participant is in the
    /// meeting's group), what arrives is opened (what does not open, or came in clear, is
    /// dropped), and [`Self::next_event`] answers the meeting's handshake messages and tells
    /// what happens to the group as [`Event::Encryption`]. Senders taken before encrypt too.
    pub async fn start_encryption(&mut self, member: Member) -> Result<(), ClientError> {
        let out = self.sender.session.start_encryption(member)?;
        for body in out {
            self.sender.send_as_is(body).await?;
        }
        Ok(())
    }

    /// What the session's encryption counted; `None` when it is not encrypted.
    pub fn encryption_counters(&self) -> Option<videocall_e2ee::EncryptionCounters> {
        self.sender
            .session
            .with(|session| session.encryption_counters())
    }

    /// The session's encryption, when it is on: epoch, members, verification codes.
    pub fn with_encryption<T>(
        &self,
        f: impl FnOnce(&mut videocall_e2ee::ClientEncryption) -> T,
    ) -> Option<T> {
        self.sender
            .session
            .with(|session| session.encryption().map(f))
    }

    /// Who else is in the meeting now (the welcome's list, then every join, update and leave
    /// read through [`Self::next_event`]), in the order they came.
    pub fn participants(&self) -> Vec<wire::Participant> {
        self.sender
            .session
            .with(|session| session.participants().to_vec())
    }

    /// Own participant id.
    pub fn participant_id(&self) -> u64 {
        self.joined.participant_id
    }

    /// A handle for sending, usable from other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Next event; `None` once the session has ended and every event was read. With
    /// encryption on, media and chat come opened, handshake messages are answered here (so
    /// keep calling it), and what happens to the group comes as [`Event::Encryption`].
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            let (group_event, encrypts) = self
                .sender
                .session
                .with(|s| (s.next_group_event(), s.encrypts()));
            if let Some(event) = group_event {
                return Some(Event::Encryption(event));
            }
            let (out, event) = tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::Message(body)) => {
                        let received = self.sender.session.receive(body);
                        (received.answers, received.body.map(Event::Message))
                    }
                    other => return other,
                },
                _ = self.poll.tick(), if encrypts => (self.sender.session.poll(), None),
            };
            for body in out {
                // A send that fails ends the session, which the next event tells.
                let _ = self.sender.send_as_is(body).await;
            }
            if let Some(event) = event {
                return Some(event);
            }
        }
    }

    /// Next event if one is ready, as the relay sent it: not opened, and nothing answered
    /// (for callers that run [`videocall_e2ee::ClientEncryption`] themselves, or none).
    pub fn try_next_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
}

/// Microseconds since the Unix epoch (capture timestamps).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Wraps a body in an envelope of this protocol version.
pub(crate) fn envelope(body: Body) -> wire::Envelope {
    videocall_protocol::envelope::envelope(body)
}

/// Handles what every transport does with an incoming frame: decode it, answer pings,
/// and queue it for the application. Returns false when the application is gone.
pub(crate) async fn deliver(
    frame: Bytes,
    events: &mpsc::Sender<Event>,
    pong: impl FnOnce(Body),
    answer_pings: bool,
) -> bool {
    let envelope = match videocall_protocol::decode_envelope(frame, usize::MAX) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(%error, "undecodable frame from relay");
            return true;
        }
    };
    match envelope.body {
        Some(Body::Ping(ping)) => {
            if answer_pings {
                pong(videocall_client_core::pong(&ping));
            }
            true
        }
        Some(body) => events.send(Event::Message(body)).await.is_ok(),
        None => true,
    }
}
