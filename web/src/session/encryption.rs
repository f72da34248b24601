//! The session's end-to-end encryption in the page, around the client core's (which runs it,
//! see `core_session`): what a grant says about it, and what happens to the group shown.

use dioxus::prelude::*;

use videocall_e2ee::{E2eeError, GroupEvent, MemberSeed, SigningKey};

use super::view::{EncryptionView, MemberView};
use super::Session;
use crate::control::JoinGrant;

/// How many refusals the UI keeps.
const KEPT_REFUSALS: usize = 5;

/// What a grant says about encryption: its seed when the meeting requires it.
pub fn seed_of(key: &SigningKey, grant: &JoinGrant) -> Result<Option<MemberSeed>, E2eeError> {
    if !grant.e2ee_required {
        return Ok(None);
    }
    let keys = grant
        .e2ee_verification_keys
        .as_ref()
        .map(|k| k.keys.as_slice())
        .unwrap_or_default();
    MemberSeed::new(
        key.clone(),
        &grant.e2ee_credential,
        keys.iter().map(|k| (k.kid.as_str(), k.public_key.as_str())),
        &grant.meeting_id,
    )
    .map(Some)
}

/// What `event` does to the view.
pub fn apply(view: &mut EncryptionView, event: GroupEvent) {
    match event {
        GroupEvent::Epoch { epoch, members } => {
            view.epoch = Some(epoch);
            view.members = members
                .into_iter()
                .map(|member| MemberView {
                    name: member.shown_name().to_owned(),
                    code: member.code,
                    guest: member.identity.guest,
                    me: member.me,
                })
                .collect();
        }
        GroupEvent::Left { reason } => {
            view.epoch = None;
            view.members.clear();
            view.waiting_reason = Some(reason);
        }
        GroupEvent::Refused { reason, .. } => {
            if view.refusals.len() >= KEPT_REFUSALS {
                view.refusals.remove(0);
            }
            view.refusals.push(reason);
        }
    }
}

impl Session {
    /// Shows what happened to the encrypted group; a new epoch is one the others have no
    /// frame of yet: the senders start it with a keyframe.
    pub(super) fn group_events(&mut self) {
        while let Some(event) = self.core.next_group_event() {
            if matches!(event, GroupEvent::Epoch { .. }) {
                for sender in [self.camera.as_ref(), self.screen.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    sender.request_keyframe(None);
                }
            }
            if let GroupEvent::Refused { from, reason } = &event {
                web_sys::console::warn_1(
                    &format!("encryption: refused from participant {from}: {reason}").into(),
                );
            }
            self.signals.encryption.with_mut(|view| apply(view, event));
        }
    }
}
