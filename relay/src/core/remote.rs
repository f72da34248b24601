//! What the other relays of a meeting say, applied to this relay's copy of it: their
//! participants mirrored as remote participants, their media fanned out to local
//! subscribers, their requests (keyframes, direct messages, removals, the meeting's end)
//! carried out for local participants, and presence: a relay silent for the presence timeout
//! is gone, and its participants with it. Pure, like the rest of the core: decoded events and
//! the time come in.

use bytes::Bytes;

use super::clock::Now;
use super::host;
use super::meeting::Meeting;
use super::participant::Participant;
use super::relay::Relay;
use super::session::{
    fan_out, request_keyframe, request_wanted_keyframes, update_demand, update_meeting_demand,
};
use super::sink::unprefixed;
use crate::ids::ParticipantId;
use crate::reason::{CloseReason, DropReason};
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::{
    mesh_event::Body as MeshBody, MeshEvent, Presence, RemoteParticipant, Roster,
};
use videocall_protocol::wire::{
    envelope::Body, ErrorCode, LeaveReason, ParticipantJoined, ParticipantLeft, ParticipantUpdated,
};
use videocall_protocol::{decode_envelope, encode_length_prefixed, LENGTH_PREFIX_BYTES};

/// Applies one event another relay published in `meeting_id`. Events of meetings this relay
/// does not host, and its own, are ignored.
pub fn on_event(relay: &Relay, meeting_id: &str, event: MeshEvent, now: Now) {
    let origin = event.origin;
    if origin.is_empty() || origin == relay.config.relay_id {
        return;
    }
    let (Some(body), Some(meeting)) = (event.body, relay.meetings.get(meeting_id)) else {
        return;
    };
    let now_ms = relay.ms(now);
    if meeting.heard_from(&origin, now_ms) {
        // A new relay has not said which layers it wants: the bus carries them all.
        refresh_mesh_layers(&meeting);
    }
    tracing::trace!(relay = %relay.config.relay_id, %origin, meeting = %meeting_id, event = ?body, "mesh event");
    match body {
        MeshBody::Joined(remote) => mirror(relay, &meeting, &origin, &remote, now),
        MeshBody::Updated(described) => match meeting.participant(described.id) {
            Some(known) if known.home.as_deref() == Some(origin.as_str()) => {
                let remote = RemoteParticipant {
                    participant: Some(described),
                    subscribes: known.grants.subscribe,
                    joined_at_unix_ms: known.joined_at_unix_ms,
                };
                mirror(relay, &meeting, &origin, &remote, now);
            }
            _ => ask_roster(relay, &meeting, &origin, now_ms),
        },
        MeshBody::Left(left) => {
            let reason = LeaveReason::try_from(left.reason).unwrap_or(LeaveReason::Disconnected);
            forget(relay, &meeting, &origin, left.participant_id, reason);
        }
        MeshBody::Data(data) => {
            let recipients = data.to.clone();
            let frame = encode_length_prefixed(&envelope(Body::Data(data)));
            if recipients.is_empty() {
                meeting.broadcast(0, &frame);
            } else {
                for id in recipients {
                    if let Some(p) = local(&meeting, id) {
                        p.send_frame(frame.clone());
                    }
                }
            }
        }
        MeshBody::Deliver(deliver) => {
            if let Some(p) = local(&meeting, deliver.participant_id) {
                deliver_to(relay, &meeting, &origin, &p, deliver.frame, now);
            }
        }
        MeshBody::Remove(remove) => {
            if let Some(p) = local(&meeting, remove.participant_id) {
                tracing::info!(meeting = %meeting.id, removed = p.id, by_relay = %origin, "participant removed by an admin on another relay");
                p.close(CloseReason::error(
                    LeaveReason::Kicked,
                    ErrorCode::Forbidden,
                    remove.reason,
                ));
            }
        }
        MeshBody::Moderate(moderate) => {
            // The host's relay checked its role.
            if let Some(action) = moderate.action.and_then(|a| a.action) {
                host::act(relay, &meeting, moderate.by_participant_id, &action, now);
            }
        }
        MeshBody::Ended(ended) => {
            let closed = relay.end_meeting_from_elsewhere(meeting_id, ended.ended_at);
            tracing::info!(meeting = %meeting_id, by_relay = %origin, closed, "meeting ended");
        }
        MeshBody::Hello(_) => {
            let participants = meeting
                .local_participants()
                .iter()
                .map(|p| p.describe_for_mesh())
                .collect();
            let rules = Some(relay.rules_of(&meeting.id));
            meeting.mesh().publish(
                &meeting.id,
                MeshBody::Roster(Roster {
                    participants,
                    rules,
                }),
            );
        }
        MeshBody::Roster(roster) => {
            if let Some(rules) = &roster.rules {
                relay.change_rules(&meeting.id, |known| known.merge(rules));
            }
            let listed: Vec<ParticipantId> = roster
                .participants
                .iter()
                .filter_map(|r| r.participant.as_ref().map(|p| p.id))
                .collect();
            for remote in &roster.participants {
                mirror(relay, &meeting, &origin, remote, now);
            }
            for gone in meeting.participants_of(&origin) {
                if !listed.contains(&gone.id) {
                    forget(relay, &meeting, &origin, gone.id, LeaveReason::Disconnected);
                }
            }
        }
        MeshBody::Presence(presence) => {
            for known in meeting.participants_of(&origin) {
                if !presence.participant_ids.contains(&known.id) {
                    forget(
                        relay,
                        &meeting,
                        &origin,
                        known.id,
                        LeaveReason::Disconnected,
                    );
                }
            }
            if presence
                .participant_ids
                .iter()
                .any(|id| meeting.participant(*id).is_none())
            {
                ask_roster(relay, &meeting, &origin, now_ms);
            }
        }
    }
}

/// What became of one media packet from the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteMedia {
    /// Offered to the local subscribers of the track.
    Forwarded,
    /// Not forwarded, for this reason (counted).
    Dropped(DropReason),
}

/// Fans one media packet of remote `publisher`'s `track` out to the local subscribers.
/// `frame` is the length-prefixed envelope as the publisher's relay encoded it.
pub fn on_media(
    relay: &Relay,
    meeting_id: &str,
    publisher: ParticipantId,
    track: u32,
    keyframe: bool,
    frame: &Bytes,
    now: Now,
) -> RemoteMedia {
    let dropped = |reason| {
        relay.metrics.drop_packet(reason);
        RemoteMedia::Dropped(reason)
    };
    let Some(meeting) = relay.meetings.get(meeting_id) else {
        return dropped(DropReason::UnknownPublisher);
    };
    let Some(publisher) = meeting.participant(publisher).filter(|p| p.is_remote()) else {
        return dropped(DropReason::UnknownPublisher);
    };
    let Some(track) = publisher.track(track) else {
        return dropped(DropReason::UnannouncedTrack);
    };
    // Subscribers get these bytes as they are: they must be what the header says.
    let (layer, audio_level) = match envelope_in(relay, frame) {
        Some(Body::Media(m)) if m.participant_id == publisher.id && m.track_id == track.id => {
            (m.layer, m.audio_level)
        }
        _ => return dropped(DropReason::MalformedRemote),
    };
    if track.is_audio() {
        meeting.heard_speaker(publisher.id, audio_level, relay.ms(now));
    }
    fan_out(relay, &publisher, &track, frame, keyframe, layer, now);
    RemoteMedia::Forwarded
}

/// The presence beat: tells the other relays of every meeting who is here, and forgets the
/// relays (and their participants) silent for the presence timeout. While this relay cannot
/// hear the bus (`hearing` false), nobody is judged silent.
pub fn tick(relay: &Relay, now: Now, hearing: bool) {
    let now_ms = relay.ms(now);
    let timeout = relay.config.timing.mesh_presence_timeout_ms;
    for meeting in relay.meetings.all() {
        let participant_ids = meeting.local_participants().iter().map(|p| p.id).collect();
        meeting.mesh().publish(
            &meeting.id,
            MeshBody::Presence(Presence { participant_ids }),
        );
        if !hearing {
            meeting.touch_relays(now_ms);
            continue;
        }
        let silent = meeting.forget_silent_relays(now_ms, timeout);
        for silent in &silent {
            let gone = meeting.participants_of(silent);
            tracing::warn!(meeting = %meeting.id, relay = %silent, participants = gone.len(), "relay silent: its participants are gone");
            for p in gone {
                forget(relay, &meeting, silent, p.id, LeaveReason::Timeout);
            }
        }
        if !silent.is_empty() {
            refresh_mesh_layers(&meeting);
        }
    }
}

/// Recomputes what the bus carries of each simulcast track of the meeting's local publishers
/// (the set of other relays changed), telling the publishers what changed.
fn refresh_mesh_layers(meeting: &Meeting) {
    let relays = meeting.remote_relays();
    for publisher in meeting.local_participants() {
        for track in publisher.tracks() {
            track.refresh_mesh_layers(&relays);
            update_demand(&publisher, &track);
        }
    }
}

/// Asks every relay of the meeting who it hosts; they answer with their rosters.
pub fn hello(meeting: &Meeting) {
    meeting
        .mesh()
        .publish(&meeting.id, MeshBody::Hello(Default::default()));
}

fn ask_roster(relay: &Relay, meeting: &Meeting, origin: &str, now_ms: u64) {
    let interval = relay.config.timing.mesh_presence_interval_ms;
    if meeting.claim_roster_request(origin, now_ms, interval) {
        hello(meeting);
    }
}

fn local(meeting: &Meeting, id: ParticipantId) -> Option<std::sync::Arc<Participant>> {
    meeting.participant(id).filter(|p| !p.is_remote())
}

/// Adds or updates remote participant `remote` of relay `origin`, and tells the local
/// participants what changed.
fn mirror(relay: &Relay, meeting: &Meeting, origin: &str, remote: &RemoteParticipant, now: Now) {
    let Some(described) = &remote.participant else {
        return;
    };
    let before = meeting.participant(described.id).map(|p| p.describe());
    let Some(joined) = relay
        .meetings
        .join_remote(&meeting.id, remote, origin, relay.ms(now))
    else {
        return;
    };
    let after = joined.participant.describe();
    if joined.new {
        tracing::debug!(meeting = %meeting.id, participant = after.id, relay = %origin, "remote participant joined");
        let frame = encode_length_prefixed(&envelope(Body::ParticipantJoined(ParticipantJoined {
            participant: Some(after),
        })));
        meeting.broadcast(0, &frame);
    } else if before.as_ref() != Some(&after) {
        let frame =
            encode_length_prefixed(&envelope(Body::ParticipantUpdated(ParticipantUpdated {
                participant: Some(after),
            })));
        meeting.broadcast(0, &frame);
    }
    // Local subscribers of its new video tracks wait for a keyframe of the layers they are
    // to get.
    for track in &joined.announced.added {
        request_wanted_keyframes(relay, &joined.participant, track, now);
    }
    // A remote subscriber may have started the bus's copies of the local tracks.
    update_meeting_demand(meeting);
}

/// Removes remote participant `id` of relay `origin` and tells the local participants.
fn forget(
    relay: &Relay,
    meeting: &std::sync::Arc<Meeting>,
    origin: &str,
    id: ParticipantId,
    reason: LeaveReason,
) {
    match meeting.participant(id) {
        Some(p) if p.home.as_deref() == Some(origin) => {}
        _ => return,
    }
    if relay.meetings.leave(meeting, id).is_some() {
        let frame = encode_length_prefixed(&envelope(Body::ParticipantLeft(ParticipantLeft {
            participant_id: id,
            reason: reason as i32,
        })));
        meeting.broadcast(0, &frame);
        update_meeting_demand(meeting);
    }
}

/// Passes a control frame from another relay to local participant `p`; a keyframe request
/// is coalesced here, at the publisher's relay, with every other request for the track.
/// The body of a length-prefixed envelope from another relay, if its prefix is its length
/// and it decodes: only such frames are passed on to participants as they are.
fn envelope_in(relay: &Relay, frame: &Bytes) -> Option<Body> {
    let prefix: [u8; LENGTH_PREFIX_BYTES] = frame.get(..LENGTH_PREFIX_BYTES)?.try_into().ok()?;
    let declared = usize::try_from(u32::from_be_bytes(prefix)).ok()?;
    if declared != frame.len() - LENGTH_PREFIX_BYTES {
        return None;
    }
    decode_envelope(unprefixed(frame), relay.config.limits.max_frame_size)
        .ok()?
        .body
}

fn deliver_to(
    relay: &Relay,
    meeting: &Meeting,
    origin: &str,
    p: &Participant,
    frame: Bytes,
    now: Now,
) {
    match envelope_in(relay, &frame) {
        Some(Body::KeyframeRequest(request)) => {
            if let Some(track) = p.track(request.track_id) {
                request_keyframe(relay, p, &track, request.layer, now);
            }
        }
        // Which layers relay `origin`'s subscribers get: the bus carries those (with the
        // other relays'), and the publisher hears what everyone wants.
        Some(Body::LayerDemand(demand)) => {
            if let Some(track) = p.track(demand.track_id) {
                track.set_remote_demand(origin, &demand.layers);
                track.refresh_mesh_layers(&meeting.remote_relays());
                update_demand(p, &track);
            }
        }
        Some(_) => p.send_frame(frame),
        None => tracing::debug!(
            participant = p.id,
            "undecodable frame from another relay dropped"
        ),
    }
}
