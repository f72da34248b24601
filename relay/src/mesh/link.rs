//! [`BusMesh`]: the core's [`Mesh`] port over a bus. It never waits: events and media go into
//! two bounded queues that one task empties onto the bus (events first), and opening or
//! closing a meeting is a command to the task that holds the subscriptions. A full media
//! queue drops media (counted by the core as `bus_queue_full`); a full event queue drops the
//! event (counted as `event_queue_full`), and presence mends what it missed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tokio::sync::mpsc;

use super::media_header::MediaHeader;
use crate::core::{HandshakeOrdering, MediaSink, Mesh, Offer, Outgoing};
use crate::ids::ParticipantId;
use crate::metrics::{BusDrop, BusMetrics};
use crate::subjects::MeetingSubjects;
use videocall_protocol::mesh::{mesh_event, MeshEvent};
use videocall_protocol::wire::Handshake;

/// Handshakes waiting to be appended to the bus's log, per relay.
pub const HANDSHAKE_QUEUE: usize = 1024;

/// A handshake on its way to the bus's ordered log.
#[derive(Debug)]
pub struct HandshakeOut {
    /// Its meeting.
    pub meeting: String,
    /// It, with its sender set.
    pub handshake: Handshake,
}

/// One message on its way to the bus.
#[derive(Debug)]
pub struct Outbound {
    /// Where it goes.
    pub subject: Arc<str>,
    /// What goes.
    pub payload: Bytes,
}

/// What the subscription task is told.
#[derive(Debug)]
pub enum Command {
    /// Subscribe to this meeting's subjects.
    Open(String),
    /// Follow this (open) meeting's handshake log too.
    FollowHandshakes(String),
    /// Unsubscribe from them.
    Close(String),
}

/// The receiving ends of a [`BusMesh`]'s queues, for the tasks that serve them.
pub struct MeshQueues {
    /// Open and close commands.
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Events to publish.
    pub events: mpsc::Receiver<Outbound>,
    /// Media to publish.
    pub media: mpsc::Receiver<Outbound>,
    /// Handshakes to append to the log.
    pub handshakes: mpsc::Receiver<HandshakeOut>,
}

/// The mesh port of a relay that shares its meetings over a bus.
pub struct BusMesh {
    origin: String,
    prefix: String,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::Sender<Outbound>,
    media: mpsc::Sender<Outbound>,
    handshakes: mpsc::Sender<HandshakeOut>,
    metrics: BusMetrics,
    events_dropped: AtomicU64,
}

/// Event drops logged before the rest are only counted.
const EVENT_DROPS_LOGGED: u64 = 5;

impl BusMesh {
    /// A port for relay `origin`, with subjects under `prefix` and queues of the given
    /// lengths (messages), and the queues' receiving ends.
    pub fn new(
        origin: &str,
        prefix: &str,
        event_queue: usize,
        media_queue: usize,
        metrics: BusMetrics,
    ) -> (BusMesh, MeshQueues) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(event_queue.max(1));
        let (media, media_rx) = mpsc::channel(media_queue.max(1));
        let (handshakes, handshakes_rx) = mpsc::channel(HANDSHAKE_QUEUE);
        (
            BusMesh {
                origin: origin.to_owned(),
                prefix: prefix.to_owned(),
                commands,
                events,
                media,
                handshakes,
                metrics,
                events_dropped: AtomicU64::new(0),
            },
            MeshQueues {
                commands: commands_rx,
                events: events_rx,
                media: media_rx,
                handshakes: handshakes_rx,
            },
        )
    }

    /// The subjects of `meeting`.
    pub fn subjects(&self, meeting: &str) -> MeetingSubjects {
        MeetingSubjects::new(&self.prefix, meeting)
    }
}

impl Mesh for BusMesh {
    fn open(&self, meeting: &str) {
        // Fails only when the relay is stopping.
        let _ = self.commands.send(Command::Open(meeting.to_owned()));
    }

    fn follow_handshakes(&self, meeting: &str) {
        let _ = self
            .commands
            .send(Command::FollowHandshakes(meeting.to_owned()));
    }

    fn close(&self, meeting: &str) {
        let _ = self.commands.send(Command::Close(meeting.to_owned()));
    }

    fn publish(&self, meeting: &str, body: mesh_event::Body) {
        let event = MeshEvent {
            origin: self.origin.clone(),
            body: Some(body),
        };
        let out = Outbound {
            subject: self.subjects(meeting).events.into(),
            payload: Bytes::from(event.encode_to_vec()),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(out) {
            self.metrics.drop_message(BusDrop::EventQueueFull);
            if self.events_dropped.fetch_add(1, Ordering::Relaxed) < EVENT_DROPS_LOGGED {
                tracing::warn!(
                    meeting,
                    "bus event queue full: event dropped (presence repairs the roster)"
                );
            }
        }
    }

    fn append_handshake(&self, meeting: &str, handshake: &Handshake) -> HandshakeOrdering {
        let out = HandshakeOut {
            meeting: meeting.to_owned(),
            handshake: handshake.clone(),
        };
        match self.handshakes.try_send(out) {
            Ok(()) => HandshakeOrdering::Queued,
            Err(_) => HandshakeOrdering::Full,
        }
    }

    fn media_sink(
        &self,
        meeting: &str,
        publisher: ParticipantId,
        track: u32,
        audio: bool,
    ) -> Box<dyn MediaSink> {
        Box::new(BusMediaSink {
            subject: self.subjects(meeting).media.into(),
            publisher,
            track,
            audio,
            queue: self.media.clone(),
        })
    }
}

/// Carries one local track to the bus: header in front of the frame, into the media queue.
struct BusMediaSink {
    subject: Arc<str>,
    publisher: ParticipantId,
    track: u32,
    audio: bool,
    queue: mpsc::Sender<Outbound>,
}

impl MediaSink for BusMediaSink {
    fn offer(&self, out: Outgoing) -> Offer {
        let header = MediaHeader {
            publisher: self.publisher,
            track: self.track,
            keyframe: out.keyframe,
            audio: self.audio,
        };
        let message = Outbound {
            subject: self.subject.clone(),
            payload: header.encode(&out.frame),
        };
        match self.queue.try_send(message) {
            Ok(()) => Offer::Accepted { depth: 0 },
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }
}
