//! The relay as the delivery service of a meeting's end-to-end encryption (MLS, RFC 9420): it
//! puts the meeting's handshake messages in one order and hands every participant all of them,
//! never reading one. Key packages are taken as they come; a commit or a founding only when it
//! follows the meeting's last commit or founding (`after`), so of two commits built on the same
//! group state the first wins and the second is refused: the loser's client applies the winner
//! and tries again, nobody waits on anybody.
//!
//! The order is the bus's ordered log when the relay shares meetings (every relay of the
//! meeting follows it and delivers to its own participants), else the meeting's own
//! [`MemoryLog`]. Pure, like the rest of the core.

use bytes::Bytes;

use super::meeting::Meeting;
use super::mesh::HandshakeOrdering;
use super::participant::Participant;
use super::relay::Relay;
use crate::ids::ParticipantId;
use videocall_bus::Appended;
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, Handshake, HandshakeKind, HandshakeRefused};

/// Key packages and foundings one participant may send in a burst.
pub const HANDSHAKE_BURST: u32 = 20;
/// Key packages and foundings per second one participant may send after its burst.
pub const HANDSHAKE_RATE_PER_SEC: u32 = 5;
/// Commits one participant may send in a burst: the committer commits once per join and
/// leave of everyone, so its budget is the meeting's churn.
pub const COMMIT_BURST: u32 = 200;
/// Commits per second one participant may send after its burst.
pub const COMMIT_RATE_PER_SEC: u32 = 50;
/// The subject of commits and foundings in a meeting's own log.
pub const LOCAL_COMMITS: &str = "c";
/// The subject of key packages in a meeting's own log.
pub const LOCAL_KEY_PACKAGES: &str = "k";

/// The metrics label of `kind`.
pub fn kind_label(kind: HandshakeKind) -> &'static str {
    match kind {
        HandshakeKind::KeyPackage => "key_package",
        HandshakeKind::Commit => "commit",
        HandshakeKind::Found => "found",
        HandshakeKind::Unspecified => "invalid",
    }
}

/// Checks a handshake message from a client: its kind, and that it carries what that kind
/// needs. Returns the kind, or why it is refused.
pub fn check(handshake: &Handshake) -> Result<HandshakeKind, String> {
    let kind = HandshakeKind::try_from(handshake.kind).unwrap_or(HandshakeKind::Unspecified);
    match kind {
        HandshakeKind::Unspecified => {
            Err("a handshake needs a kind: key package, commit or found".into())
        }
        HandshakeKind::KeyPackage | HandshakeKind::Commit if handshake.message.is_empty() => {
            Err(format!("a {} needs its MLS message", kind_label(kind)))
        }
        HandshakeKind::KeyPackage if !handshake.welcome.is_empty() => {
            Err("a key package carries no Welcome".into())
        }
        HandshakeKind::Found if !handshake.message.is_empty() || !handshake.welcome.is_empty() => {
            Err("a founding carries no MLS message".into())
        }
        _ => Ok(kind),
    }
}

/// Puts `sender`'s checked `handshake` of `kind` into `meeting`'s order.
pub(super) fn submit(
    relay: &Relay,
    meeting: &Meeting,
    sender: &Participant,
    kind: HandshakeKind,
    mut handshake: Handshake,
) {
    handshake.from_participant_id = sender.id;
    handshake.sequence = 0;
    match meeting.mesh().append_handshake(&meeting.id, &handshake) {
        HandshakeOrdering::Queued => {}
        HandshakeOrdering::Full => refuse(
            relay,
            sender,
            &handshake,
            meeting.handshake_head(),
            "the relays' queue to the meeting's order is full; send it again",
        ),
        HandshakeOrdering::Local => {
            let (subject, expect) = match kind {
                HandshakeKind::KeyPackage => (LOCAL_KEY_PACKAGES, None),
                _ => (LOCAL_COMMITS, Some(handshake.after)),
            };
            // Nobody follows a relay's own log (it delivers at once, below): it keeps only
            // the order.
            match meeting.append_local_handshake(subject, expect, Bytes::new()) {
                Appended::At(sequence) => {
                    relay.metrics.handshake(kind_label(kind), "taken");
                    deliver_to(relay, meeting, sequence, handshake);
                }
                Appended::Conflict { last } => refuse(
                    relay,
                    sender,
                    &handshake,
                    last,
                    "another commit follows that one already",
                ),
            }
        }
    }
}

/// A handshake message of `meeting_id` that the order took at `sequence`: to every
/// participant of the meeting on this relay, its sender included.
pub fn deliver(relay: &Relay, meeting_id: &str, sequence: u64, handshake: Handshake) {
    if let Some(meeting) = relay.meetings.get(meeting_id) {
        deliver_to(relay, &meeting, sequence, handshake);
    }
}

fn deliver_to(relay: &Relay, meeting: &Meeting, sequence: u64, mut handshake: Handshake) {
    let kind = HandshakeKind::try_from(handshake.kind).unwrap_or(HandshakeKind::Unspecified);
    if kind == HandshakeKind::Unspecified {
        return;
    }
    if kind != HandshakeKind::KeyPackage {
        meeting.saw_handshake_head(sequence);
    }
    handshake.sequence = sequence;
    let frame = encode_length_prefixed(&envelope(Body::Handshake(handshake)));
    // Participant ids are never 0: everyone gets it.
    meeting.broadcast(0, &frame);
    relay.metrics.handshake(kind_label(kind), "delivered");
}

/// The order refused `sender`'s handshake (`head`: the meeting's last commit or founding).
pub fn refused(
    relay: &Relay,
    meeting_id: &str,
    sender: ParticipantId,
    handshake: &Handshake,
    head: u64,
    reason: &str,
) {
    let Some(meeting) = relay.meetings.get(meeting_id) else {
        return;
    };
    meeting.saw_handshake_head(head);
    if let Some(participant) = meeting.participant(sender) {
        if !participant.is_remote() {
            refuse(relay, &participant, handshake, head, reason);
        }
    }
}

/// Refuses `sender`'s `handshake` (over its rate, the order's queue full, another commit
/// first): it is told with `HandshakeRefused`, so its client decides again.
pub(super) fn refuse(
    relay: &Relay,
    sender: &Participant,
    handshake: &Handshake,
    head: u64,
    reason: &str,
) {
    let kind = HandshakeKind::try_from(handshake.kind).unwrap_or(HandshakeKind::Unspecified);
    relay.metrics.handshake(kind_label(kind), "refused");
    tracing::debug!(
        participant = sender.id,
        kind = kind_label(kind),
        after = handshake.after,
        head,
        reason,
        "handshake refused"
    );
    sender.send(Body::HandshakeRefused(HandshakeRefused {
        kind: handshake.kind,
        after: handshake.after,
        head,
        reason: reason.to_owned(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(kind: HandshakeKind, message: &[u8], welcome: &[u8]) -> Handshake {
        Handshake {
            kind: kind as i32,
            message: Bytes::copy_from_slice(message),
            welcome: Bytes::copy_from_slice(welcome),
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_carries_what_it_needs() {
        assert_eq!(
            check(&handshake(HandshakeKind::KeyPackage, b"kp", b"")),
            Ok(HandshakeKind::KeyPackage)
        );
        assert_eq!(
            check(&handshake(HandshakeKind::Commit, b"c", b"w")),
            Ok(HandshakeKind::Commit)
        );
        assert_eq!(
            check(&handshake(HandshakeKind::Found, b"", b"")),
            Ok(HandshakeKind::Found)
        );
        for bad in [
            handshake(HandshakeKind::Unspecified, b"x", b""),
            handshake(HandshakeKind::KeyPackage, b"", b""),
            handshake(HandshakeKind::KeyPackage, b"kp", b"w"),
            handshake(HandshakeKind::Commit, b"", b"w"),
            handshake(HandshakeKind::Found, b"x", b""),
            Handshake {
                kind: 99,
                ..Default::default()
            },
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
