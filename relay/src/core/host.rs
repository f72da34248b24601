//! Host actions carried out on this relay's part of a meeting: a muted microphone or stopped
//! camera held back here, a removal, a ban, a lock, the end, a new role, a lowered hand. The
//! relay of the host who acted checked its role (`moderation::permit`) and carries the action
//! out first; every other relay of the meeting does the same on hearing it over the bus. Each
//! changes only the participants it hosts, and says so to the meeting (`ParticipantUpdated`,
//! `MeetingUpdated`) and to whoever was acted on (`HostNotice`).

use super::clock::Now;
use super::meeting::Meeting;
use super::moderation::{role_from_wire, Muted};
use super::participant::Participant;
use super::relay::Relay;
use crate::ids::ParticipantId;
use crate::reason::CloseReason;
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::mesh_event;
use videocall_protocol::wire::{
    envelope::Body, host_action::Action, ErrorCode, HostAction, HostNotice, LeaveReason,
    MeetingUpdated, ParticipantUpdated,
};

/// Longest removal reason kept, in characters.
const MAX_REASON_CHARS: usize = 200;

/// Carries `action`, taken by participant `by`, out on this relay's part of `meeting`.
pub fn act(relay: &Relay, meeting: &Meeting, by: ParticipantId, action: &Action, now: Now) {
    relay
        .metrics
        .host_action(super::moderation::action_label(action));
    // A change to one participant hosted here: made, told to the meeting and to it.
    let change = |target: &Participant, make: &dyn Fn(&Participant)| {
        make(target);
        announce_update(meeting, target);
        notify(target, by, action);
    };
    let local = |id: ParticipantId| meeting.participant(id).filter(|p| !p.is_remote());
    match action {
        Action::Mute(mute) => {
            if let (Some(target), Some(what)) =
                (local(mute.participant_id), Muted::from_wire(mute.kind))
            {
                change(&target, &|t| t.host_mute(what, mute.disallow_unmute));
            }
        }
        Action::MuteAll(all) => {
            for target in meeting.local_participants() {
                if target.id != by && !target.role().moderates() {
                    change(&target, &|t| t.host_mute(Muted::Audio, all.disallow_unmute));
                }
            }
        }
        Action::Remove(remove) => {
            let Some(target) = meeting.participant(remove.participant_id) else {
                return;
            };
            if remove.ban {
                relay.change_rules(&meeting.id, |rules| rules.ban(&target.user));
            }
            if !target.is_remote() {
                let reason = if remove.reason.trim().is_empty() {
                    "removed by a host".to_owned()
                } else {
                    remove.reason.chars().take(MAX_REASON_CHARS).collect()
                };
                tracing::info!(meeting = %meeting.id, by, removed = target.id, ban = remove.ban, "participant removed by a host");
                target.close(CloseReason::error(
                    LeaveReason::Kicked,
                    ErrorCode::Forbidden,
                    reason,
                ));
            }
        }
        Action::Lock(lock) => {
            if lock.locked {
                let present: Vec<String> = meeting
                    .participants()
                    .iter()
                    .map(|p| p.user.clone())
                    .collect();
                relay.change_rules(&meeting.id, |rules| rules.lock(present));
            } else {
                relay.change_rules(&meeting.id, |rules| rules.unlock());
            }
            tracing::info!(meeting = %meeting.id, by, locked = lock.locked, "meeting lock changed by a host");
            let frame = encode_length_prefixed(&envelope(Body::MeetingUpdated(MeetingUpdated {
                locked: lock.locked,
            })));
            meeting.broadcast(0, &frame);
        }
        Action::End(_) => {
            let closed = relay.end_meeting_from_elsewhere(&meeting.id, now.unix_ms() / 1000);
            tracing::info!(meeting = %meeting.id, by, closed, "meeting ended for all by a host");
        }
        Action::SetRole(set) => {
            if let (Some(target), Some(role)) =
                (local(set.participant_id), role_from_wire(set.role))
            {
                change(&target, &|t| t.set_role(role));
            }
        }
        Action::LowerHand(lower) => {
            if let Some(target) = local(lower.participant_id) {
                change(&target, &|t| t.lower_hand());
            }
        }
        Action::AskToUnmute(ask) => {
            if let (Some(target), Some(what)) =
                (local(ask.participant_id), Muted::from_wire(ask.kind))
            {
                change(&target, &|t| t.allow_unmute(what));
            }
        }
    }
}

/// Carries out `action` from the control plane (a host acting through its API, who checked
/// the host's role) on `meeting_id` as a host on this relay would: here first, then on every
/// other relay of the meeting over the bus. Whoever is acted on hears it from "a host"
/// (participant 0). Returns false when the meeting, or the participant the action names, is
/// not here (anymore).
pub fn act_for_control_plane(relay: &Relay, meeting_id: &str, action: Action, now: Now) -> bool {
    let Some(meeting) = relay.meetings.get(meeting_id) else {
        return false;
    };
    if let Some(id) = super::moderation::target_of(&action) {
        if meeting.participant(id).is_none() {
            return false;
        }
    }
    tracing::info!(meeting = %meeting.id, action = super::moderation::action_label(&action), "host action from the control plane");
    act(relay, &meeting, 0, &action, now);
    meeting.mesh().publish(
        &meeting.id,
        mesh_event::Body::Moderate(videocall_protocol::mesh::Moderate {
            by_participant_id: 0,
            action: Some(HostAction {
                action: Some(action),
            }),
        }),
    );
    true
}

/// Tells the meeting (the participants here, and the other relays) that `participant`, hosted
/// here, changed.
pub(super) fn announce_update(meeting: &Meeting, participant: &Participant) {
    let described = participant.describe();
    let frame = encode_length_prefixed(&envelope(Body::ParticipantUpdated(ParticipantUpdated {
        participant: Some(described.clone()),
    })));
    meeting.broadcast(participant.id, &frame);
    meeting
        .mesh()
        .publish(&meeting.id, mesh_event::Body::Updated(described));
}

/// Tells `target` what host `by` did to it.
fn notify(target: &Participant, by: ParticipantId, action: &Action) {
    target.send(Body::HostNotice(HostNotice {
        by_participant_id: by,
        action: Some(HostAction {
            action: Some(action.clone()),
        }),
    }));
}
