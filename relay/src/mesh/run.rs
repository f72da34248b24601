//! The tasks behind a [`super::BusMesh`]: one publishes the queues onto the bus in order
//! (events before media), one holds a subscription per hosted meeting and feeds what arrives
//! to the core, one beats presence and copies the bus connection's counters into the metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::link::{Command, HandshakeOut, MeshQueues, Outbound};
use super::media_header::MediaHeader;
use crate::core::{
    deliver_handshake, handshake_refused, mesh_tick, on_mesh_event, on_mesh_media, Now,
};
use crate::metrics::{BusDrop, BusSnapshot};
use crate::state::RelayState;
use crate::subjects::MeetingSubjects;
use videocall_bus::{Appended, Bus, BusError, BusMessage, LogEntry};
use videocall_protocol::mesh::{mesh_event, Hello, MeshEvent};
use videocall_protocol::wire::{Handshake, HandshakeKind};

/// Wait before subscribing again after a failure.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// Longest wait before following a meeting's handshakes again after failures.
const MAX_FOLLOW_DELAY: Duration = Duration::from_secs(30);
/// Publish failures logged before the rest are only counted.
const FAILURES_LOGGED: u64 = 5;

/// Starts the mesh's tasks; they stop with the relay.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    state: Arc<RelayState>,
    bus: Arc<dyn Bus>,
    queues: MeshQueues,
    prefix: String,
) {
    tasks.spawn(publish(
        state.clone(),
        bus.clone(),
        queues.events,
        queues.media,
    ));
    tasks.spawn(order_handshakes(
        state.clone(),
        bus.clone(),
        queues.handshakes,
        prefix.clone(),
    ));
    tasks.spawn(subscriptions(
        state.clone(),
        bus.clone(),
        queues.commands,
        prefix,
    ));
    tasks.spawn(beat(state, bus));
}

async fn publish(
    state: Arc<RelayState>,
    bus: Arc<dyn Bus>,
    mut events: mpsc::Receiver<Outbound>,
    mut media: mpsc::Receiver<Outbound>,
) {
    let metrics = &state.metrics().bus;
    let mut failures = 0u64;
    loop {
        let out = tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => break,
            Some(out) = events.recv() => out,
            Some(out) = media.recv() => out,
            else => break,
        };
        let size = out.payload.len();
        if let Err(error) = bus.publish(out.subject.to_string(), out.payload).await {
            let reason = match error {
                BusError::TooLarge { .. } => BusDrop::TooLarge,
                _ => BusDrop::PublishFailed,
            };
            metrics.drop_message(reason);
            failures += 1;
            if failures <= FAILURES_LOGGED {
                tracing::warn!(subject = %out.subject, size, %error, "bus message dropped");
            }
        }
    }
}

async fn subscriptions(
    state: Arc<RelayState>,
    bus: Arc<dyn Bus>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    prefix: String,
) {
    let mut hearing: HashMap<String, CancellationToken> = HashMap::new();
    loop {
        let command = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            command = commands.recv() => match command {
                Some(command) => command,
                None => break,
            },
        };
        match command {
            Command::Open(meeting) => {
                let stop = state.shutdown.child_token();
                if let Some(old) = hearing.insert(meeting.clone(), stop.clone()) {
                    old.cancel();
                }
                let subjects = MeetingSubjects::new(&prefix, &meeting);
                tokio::spawn(hear(state.clone(), bus.clone(), meeting, subjects, stop));
            }
            Command::FollowHandshakes(meeting) => {
                // Opened before (the core asks under the same lock, after the open).
                if let Some(stop) = hearing.get(&meeting) {
                    let subjects = MeetingSubjects::new(&prefix, &meeting);
                    tokio::spawn(follow_handshakes(
                        state.clone(),
                        bus.clone(),
                        meeting,
                        subjects,
                        stop.clone(),
                    ));
                }
            }
            Command::Close(meeting) => {
                if let Some(stop) = hearing.remove(&meeting) {
                    stop.cancel();
                }
            }
        }
    }
    for stop in hearing.into_values() {
        stop.cancel();
    }
}

/// Holds the one subscription of `meeting` until `stop`, feeding the core what arrives.
async fn hear(
    state: Arc<RelayState>,
    bus: Arc<dyn Bus>,
    meeting: String,
    subjects: MeetingSubjects,
    stop: CancellationToken,
) {
    let metrics = &state.metrics().bus;
    let mut subscription = loop {
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            attempt = bus.subscribe(subjects.all.clone()) => attempt,
        };
        match attempt {
            Ok(subscription) => break subscription,
            Err(error) => {
                tracing::warn!(%meeting, %error, "subscribing to the meeting's bus subjects failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
                }
            }
        }
    };
    metrics.subscriptions.inc();
    // Subscribed: now the others' answers reach this relay.
    state
        .core
        .mesh
        .publish(&meeting, mesh_event::Body::Hello(Hello {}));
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            message = subscription.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        take(&state, &meeting, &subjects, message);
    }
    metrics.subscriptions.dec();
}

/// Appends the local participants' handshakes to the bus's log, one at a time (so one
/// participant's come in the order it sent them). A refusal goes back to its sender; what
/// the log takes reaches every relay of the meeting through its follower.
async fn order_handshakes(
    state: Arc<RelayState>,
    bus: Arc<dyn Bus>,
    mut queue: mpsc::Receiver<HandshakeOut>,
    prefix: String,
) {
    let mut failures = 0u64;
    loop {
        let out = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            out = queue.recv() => match out {
                Some(out) => out,
                None => break,
            },
        };
        let subjects = MeetingSubjects::new(&prefix, &out.meeting);
        let handshake = out.handshake;
        let kind = HandshakeKind::try_from(handshake.kind).unwrap_or(HandshakeKind::Unspecified);
        let (subject, expect) = match kind {
            HandshakeKind::KeyPackage => (subjects.key_packages, None),
            _ => (subjects.commits, Some(handshake.after)),
        };
        let payload = bytes::Bytes::from(handshake.encode_to_vec());
        let refusal = match bus.append(subject, expect, payload).await {
            Ok(Appended::At(_)) => {
                state
                    .metrics()
                    .handshake(crate::core::handshake_kind_label(kind), "taken");
                continue;
            }
            Ok(Appended::Conflict { last }) => {
                (last, "another commit follows that one already".to_owned())
            }
            Err(error) => {
                failures += 1;
                if failures <= FAILURES_LOGGED {
                    tracing::warn!(meeting = %out.meeting, %error, "a handshake could not be put in the meeting's order");
                }
                (0, format!("the relays could not put it in order: {error}"))
            }
        };
        handshake_refused(
            &state.core,
            &out.meeting,
            handshake.from_participant_id,
            &handshake,
            refusal.0,
            &refusal.1,
        );
    }
}

/// Follows `meeting`'s handshakes in the bus's log until `stop`, handing each to the
/// core; follows again after a failure (the last commit comes again: clients skip what they
/// have seen).
async fn follow_handshakes(
    state: Arc<RelayState>,
    bus: Arc<dyn Bus>,
    meeting: String,
    subjects: MeetingSubjects,
    stop: CancellationToken,
) {
    let mut delay = RESUBSCRIBE_DELAY;
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            attempt = bus.follow(subjects.handshakes.clone()) => attempt,
        };
        match attempt {
            Ok(mut entries) => {
                delay = RESUBSCRIBE_DELAY;
                loop {
                    let entry = tokio::select! {
                        _ = stop.cancelled() => return,
                        entry = entries.next() => entry,
                    };
                    let Some(entry) = entry else { break };
                    take_handshake(&state, &meeting, &subjects, entry);
                }
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%meeting, %error, "following the meeting's end-to-end encryption handshakes failed (does NATS run JetStream?); retrying");
                } else {
                    tracing::debug!(%meeting, %error, "following the meeting's handshakes failed again");
                }
                delay = (delay * 2).min(MAX_FOLLOW_DELAY);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One entry of a meeting's handshakes, to the core.
fn take_handshake(state: &RelayState, meeting: &str, subjects: &MeetingSubjects, entry: LogEntry) {
    if entry.subject != subjects.commits && entry.subject != subjects.key_packages {
        return malformed(
            state,
            meeting,
            &format!("unknown subject {}", entry.subject),
        );
    }
    match Handshake::decode(entry.payload) {
        Ok(handshake) => deliver_handshake(&state.core, meeting, entry.sequence, handshake),
        Err(error) => malformed(state, meeting, &error.to_string()),
    }
}

/// One message of a meeting's subjects, to the core.
fn take(state: &RelayState, meeting: &str, subjects: &MeetingSubjects, message: BusMessage) {
    let core = &state.core;
    let now = Now::system();
    if message.subject == subjects.media {
        match MediaHeader::decode(&message.payload) {
            Ok((header, frame)) => {
                on_mesh_media(
                    core,
                    meeting,
                    header.publisher,
                    header.track,
                    header.keyframe,
                    &frame,
                    now,
                );
            }
            Err(error) => malformed(state, meeting, &error.to_string()),
        }
    } else if message.subject == subjects.events {
        match MeshEvent::decode(message.payload) {
            Ok(event) => on_mesh_event(core, meeting, event, now),
            Err(error) => malformed(state, meeting, &error.to_string()),
        }
    } else {
        malformed(
            state,
            meeting,
            &format!("unknown subject {}", message.subject),
        );
    }
}

fn malformed(state: &RelayState, meeting: &str, error: &str) {
    let metrics = &state.metrics().bus;
    metrics.drop_message(BusDrop::Malformed);
    if metrics.drops(BusDrop::Malformed) <= FAILURES_LOGGED {
        tracing::warn!(%meeting, %error, "malformed message from the bus dropped");
    }
}

/// Presence, relay timeouts and the connection's counters, once per presence interval.
async fn beat(state: Arc<RelayState>, bus: Arc<dyn Bus>) {
    let mut interval = tokio::time::interval(state.config().timing.mesh_presence_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let metrics = &state.metrics().bus;
    let counters = bus.counters();
    let mut last = BusSnapshot::default();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let connected = bus.connected();
        metrics.connected.set(i64::from(connected));
        metrics.absorb(&counters, &mut last);
        mesh_tick(&state.core, Now::system(), connected);
    }
}
