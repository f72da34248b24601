//! Hosts in the session: this participant's microphone, camera and hand as it and hosts change
//! them, what a host did to it (`HostNotice`), the meeting's lock (`MeetingUpdated`), and the
//! host actions it takes (`HostAction`, checked and carried out by the relay).

use dioxus::prelude::*;
use videocall_protocol::wire::{
    envelope::Body, host_action::Action, HostAction, HostNotice, MediaKind, MeetingUpdated,
    UpdateState,
};
use wasm_bindgen::JsCast;
use web_sys::MediaStreamTrack;

use super::view::NoticeView;
use super::Session;
use crate::hosting;

impl Session {
    /// Turns the microphone off or on. Turning it on is refused (and said) while a host holds
    /// it off: the relay would drop the audio anyway.
    pub(super) fn set_muted(&mut self, muted: bool) {
        if !muted && self.signals.me.peek().audio_locked {
            self.tell(
                "A host muted your microphone: you can turn it on again when a host asks you to.",
            );
            return;
        }
        self.apply_muted(muted);
        self.signals.me.with_mut(|me| me.muted = muted);
        self.send_state();
    }

    /// The microphone sender follows `muted`.
    fn apply_muted(&mut self, muted: bool) {
        self.muted = muted;
        if let Some(microphone) = &self.microphone {
            microphone.set_muted(muted);
        }
    }

    /// Turns the camera off or on (refused, as the microphone, while a host holds it off).
    pub(super) fn set_camera_off(&mut self, off: bool) {
        if !off && self.signals.me.peek().video_locked {
            self.tell("A host stopped your video: you can start it again when a host asks you to.");
            return;
        }
        self.apply_camera_off(off);
        self.signals.me.with_mut(|me| me.camera_off = off);
        self.send_state();
    }

    /// The camera sender and the camera's track follow `off`.
    fn apply_camera_off(&mut self, off: bool) {
        self.camera_off = off;
        if let Some(camera) = &self.camera {
            camera.set_paused(off);
        }
        for track in self.params.local.get_video_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_enabled(!off);
            }
        }
    }

    /// Raises or lowers this participant's hand.
    pub(super) fn raise_hand(&mut self, raised: bool) {
        self.signals.me.with_mut(|me| me.hand_raised = raised);
        self.send_hand(raised);
    }

    /// Tells the relay the hand (which keeps the time it was raised, for the order hosts see).
    pub(super) fn send_hand(&self, raised: bool) {
        self.send(Body::UpdateState(UpdateState {
            audio_muted: self.muted,
            video_muted: self.camera_off,
            speaking: self.speaking && !self.muted,
            hand_raised: Some(raised),
            ..Default::default()
        }));
    }

    /// A host action of this participant's: the relay checks its role, carries it out and
    /// says what changed (or refuses it with an error, shown).
    pub(super) fn host_action(&self, action: Action) {
        self.send(Body::HostAction(HostAction {
            action: Some(action),
        }));
    }

    /// A host acted on this participant: its state follows, and it is told.
    pub(super) fn host_notice(&mut self, notice: HostNotice) {
        let Some(action) = notice.action.and_then(|a| a.action) else {
            return;
        };
        let by = match notice.by_participant_id {
            0 => "A host".to_owned(),
            id => self
                .signals
                .peers
                .peek()
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "A host".into()),
        };
        let mut me = self.signals.me.peek().clone();
        let Some(told) = hosting::apply_notice(&mut me, &by, &action) else {
            return;
        };
        self.signals.me.set(me);
        if told.mute_audio {
            self.apply_muted(true);
        }
        if told.stop_video {
            self.stop_screen();
            self.apply_camera_off(true);
        }
        if told.mute_audio || told.stop_video {
            self.send_state();
        }
        self.signals.notice.set(Some(NoticeView {
            text: told.text,
            asked_to_unmute: told.asked_to_unmute,
        }));
    }

    /// The meeting was locked or unlocked.
    pub(super) fn meeting_updated(&mut self, updated: MeetingUpdated) {
        self.signals.locked.set(updated.locked);
    }

    /// Shows `text` to the person until dismissed.
    pub(super) fn tell(&mut self, text: &str) {
        self.signals.notice.set(Some(NoticeView {
            text: text.to_owned(),
            asked_to_unmute: None,
        }));
    }

    /// A host asked to turn `kind` on again, and the person agreed.
    pub(super) fn accept_unmute(&mut self, kind: MediaKind) {
        self.signals.notice.set(None);
        match kind {
            MediaKind::Audio => self.set_muted(false),
            _ => self.set_camera_off(false),
        }
    }
}
