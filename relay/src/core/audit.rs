//! The record of host actions taken on this relay (who, what, to whom, when), kept until
//! the control plane has it: the control-plane link takes it with each heartbeat and puts
//! back what it could not deliver. Bounded: a relay cut off from the control plane keeps the
//! newest [`MAX_KEPT`].

use std::collections::VecDeque;
use std::sync::Mutex;

use videocall_protocol::wire::{host_action::Action, MediaKind};

use super::moderation::{action_label, role_from_wire};

/// Most reports kept while the control plane is away.
pub const MAX_KEPT: usize = 1000;

/// One host action, as the control plane records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostActionReport {
    /// When (Unix ms).
    pub at_ms: i64,
    /// The meeting.
    pub meeting_id: String,
    /// The host's identity and name.
    pub by_identity: String,
    /// The host's name.
    pub by_display_name: String,
    /// The action's label (`mute`, `remove`, …).
    pub action: &'static str,
    /// Whom it was about (empty: the meeting).
    pub target_identity: String,
    /// Their name.
    pub target_display_name: String,
    /// The details in words.
    pub detail: String,
    /// A removal that bans.
    pub ban: bool,
    /// A lock's new state.
    pub locked: bool,
}

impl HostActionReport {
    /// A report of `action` by `by` (identity, name) on `target` (identity, name; empty for the
    /// meeting) in `meeting_id` at `at_ms`.
    pub fn new(
        meeting_id: &str,
        by: (&str, &str),
        action: &Action,
        target: (&str, &str),
        at_ms: i64,
    ) -> Self {
        HostActionReport {
            at_ms,
            meeting_id: meeting_id.to_owned(),
            by_identity: by.0.to_owned(),
            by_display_name: by.1.to_owned(),
            action: action_label(action),
            target_identity: target.0.to_owned(),
            target_display_name: target.1.to_owned(),
            detail: detail(action),
            ban: matches!(action, Action::Remove(r) if r.ban),
            locked: matches!(action, Action::Lock(l) if l.locked),
        }
    }
}

fn media(kind: i32) -> &'static str {
    match MediaKind::try_from(kind) {
        Ok(MediaKind::Video | MediaKind::Screen) => "video",
        _ => "audio",
    }
}

/// `action`'s details in words, as the control plane's record shows them.
pub fn detail(action: &Action) -> String {
    let unmute = |disallow: bool| if disallow { ", may not unmute" } else { "" };
    match action {
        Action::Mute(m) => format!("{}{}", media(m.kind), unmute(m.disallow_unmute)),
        Action::MuteAll(m) => format!("audio{}", unmute(m.disallow_unmute)),
        Action::Remove(r) => {
            let ban = if r.ban { "banned" } else { "may come back" };
            let reason: String = r.reason.trim().chars().take(200).collect();
            if reason.is_empty() {
                ban.to_owned()
            } else {
                format!("{ban}: {reason}")
            }
        }
        Action::Lock(l) => if l.locked { "locked" } else { "unlocked" }.to_owned(),
        Action::SetRole(s) => match role_from_wire(s.role) {
            Some(videocall_token::Role::Host) => "host",
            Some(videocall_token::Role::Cohost) => "cohost",
            Some(videocall_token::Role::Guest) => "guest",
            _ => "participant",
        }
        .to_owned(),
        Action::AskToUnmute(a) => media(a.kind).to_owned(),
        Action::End(_) | Action::LowerHand(_) => String::new(),
    }
}

/// Reports waiting for the control plane.
#[derive(Debug, Default)]
pub struct HostActionLog {
    queue: Mutex<VecDeque<HostActionReport>>,
}

impl HostActionLog {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<HostActionReport>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `report` (dropping the oldest past [`MAX_KEPT`]).
    pub fn push(&self, report: HostActionReport) {
        let mut queue = self.queue();
        if queue.len() >= MAX_KEPT {
            queue.pop_front();
        }
        queue.push_back(report);
    }

    /// Takes every report kept, oldest first.
    pub fn take(&self) -> Vec<HostActionReport> {
        self.queue().drain(..).collect()
    }

    /// Puts back `reports` (taken, not delivered) before those kept since.
    pub fn put_back(&self, reports: Vec<HostActionReport>) {
        let mut queue = self.queue();
        for report in reports.into_iter().rev() {
            queue.push_front(report);
        }
        while queue.len() > MAX_KEPT {
            queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_protocol::wire::{LockMeeting, MuteParticipant, RemoveParticipant};

    fn report(n: i64) -> HostActionReport {
        HostActionReport::new(
            "m",
            ("alice", "Alice"),
            &Action::Lock(LockMeeting { locked: true }),
            ("", ""),
            n,
        )
    }

    #[test]
    fn reports_say_what_was_done() {
        let mute = HostActionReport::new(
            "m",
            ("alice", "Alice"),
            &Action::Mute(MuteParticipant {
                participant_id: 2,
                kind: MediaKind::Video as i32,
                disallow_unmute: true,
            }),
            ("bob", "Bob"),
            5,
        );
        assert_eq!(mute.action, "mute");
        assert_eq!(mute.detail, "video, may not unmute");
        let remove = HostActionReport::new(
            "m",
            ("alice", "Alice"),
            &Action::Remove(RemoveParticipant {
                participant_id: 2,
                reason: "spam".into(),
                ban: true,
            }),
            ("bob", "Bob"),
            5,
        );
        assert!(remove.ban && !remove.locked);
        assert_eq!(remove.detail, "banned: spam");
        assert!(report(1).locked);
    }

    #[test]
    fn undelivered_reports_go_back_in_order_and_the_newest_are_kept() {
        let log = HostActionLog::default();
        log.push(report(1));
        log.push(report(2));
        let taken = log.take();
        log.push(report(3));
        log.put_back(taken);
        let order: Vec<i64> = log.take().iter().map(|r| r.at_ms).collect();
        assert_eq!(order, [1, 2, 3]);
        for n in 0..(MAX_KEPT as i64 + 10) {
            log.push(report(n));
        }
        let kept = log.take();
        assert_eq!(kept.len(), MAX_KEPT);
        assert_eq!(kept[0].at_ms, 10, "the oldest went first");
    }
}
