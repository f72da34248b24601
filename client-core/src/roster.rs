//! Who is in the meeting, as the relay told it: the welcome's list, then every joined,
//! updated and left, in the order they came.

use videocall_protocol::wire::{envelope::Body, Participant};

/// What a message did to the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterChange {
    /// Someone came (or came again).
    Joined(u64),
    /// Someone's state changed (tracks, muted, speaking).
    Updated(u64),
    /// Someone left.
    Left(u64),
}

/// The other participants, in the order they came.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    participants: Vec<Participant>,
}

impl Roster {
    /// The roster of a welcome's list.
    pub fn new(participants: &[Participant]) -> Self {
        Roster {
            participants: participants.to_vec(),
        }
    }

    /// Applies `body` if it is about who is there; what changed.
    pub fn apply(&mut self, body: &Body) -> Option<RosterChange> {
        match body {
            Body::ParticipantJoined(joined) => {
                let participant = joined.participant.as_ref()?;
                self.participants.retain(|p| p.id != participant.id);
                self.participants.push(participant.clone());
                Some(RosterChange::Joined(participant.id))
            }
            Body::ParticipantUpdated(updated) => {
                let participant = updated.participant.as_ref()?;
                match self
                    .participants
                    .iter_mut()
                    .find(|p| p.id == participant.id)
                {
                    Some(known) => *known = participant.clone(),
                    None => self.participants.push(participant.clone()),
                }
                Some(RosterChange::Updated(participant.id))
            }
            Body::ParticipantLeft(left) => {
                self.participants.retain(|p| p.id != left.participant_id);
                Some(RosterChange::Left(left.participant_id))
            }
            _ => None,
        }
    }

    /// Everyone there, in the order they came.
    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    /// The participant `id`, if there.
    pub fn get(&self, id: u64) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_protocol::wire::{ParticipantJoined, ParticipantLeft, ParticipantUpdated};

    fn person(id: u64, name: &str) -> Participant {
        Participant {
            id,
            display_name: name.into(),
            ..Default::default()
        }
    }

    fn joined(p: Participant) -> Body {
        Body::ParticipantJoined(ParticipantJoined {
            participant: Some(p),
        })
    }

    #[test]
    fn joins_updates_and_leaves_in_order() {
        let mut roster = Roster::new(&[person(1, "ann")]);
        assert_eq!(
            roster.apply(&joined(person(2, "bob"))),
            Some(RosterChange::Joined(2))
        );
        let mut muted = person(1, "ann");
        muted.audio_muted = true;
        assert_eq!(
            roster.apply(&Body::ParticipantUpdated(ParticipantUpdated {
                participant: Some(muted)
            })),
            Some(RosterChange::Updated(1))
        );
        let ids: Vec<u64> = roster.participants().iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 2]);
        assert!(roster.get(1).is_some_and(|p| p.audio_muted));
        assert_eq!(
            roster.apply(&Body::ParticipantLeft(ParticipantLeft {
                participant_id: 1,
                ..Default::default()
            })),
            Some(RosterChange::Left(1))
        );
        assert!(roster.get(1).is_none());
    }

    #[test]
    fn a_second_join_of_one_id_replaces_the_first() {
        let mut roster = Roster::new(&[person(1, "ann"), person(2, "bob")]);
        roster.apply(&joined(person(1, "ann again")));
        let names: Vec<&str> = roster
            .participants()
            .iter()
            .map(|p| p.display_name.as_str())
            .collect();
        assert_eq!(names, ["bob", "ann again"]);
    }

    #[test]
    fn a_message_without_its_participant_changes_nothing() {
        let mut roster = Roster::default();
        let empty = Body::ParticipantJoined(ParticipantJoined { participant: None });
        assert_eq!(roster.apply(&empty), None);
        assert!(roster.participants().is_empty());
    }
}
