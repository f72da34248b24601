//! Switching camera, microphone and speaker during the meeting: the new device is opened, its
//! track takes the old one's place in the local stream (the self-view follows), and the sender
//! starts again on it under the same track id (the others' decoders start at its first
//! keyframe). A device that cannot be opened leaves the old one sending, and says why.

use wasm_bindgen::JsCast;
use web_sys::{MediaStream, MediaStreamTrack};

use super::local_media::first_track as first;
use super::Session;
use crate::js;
use crate::media::capture;

impl Session {
    /// Sends from camera `id` from now on.
    pub(super) async fn switch_camera(&mut self, id: &str) {
        let opened = match capture::camera_only(id, self.params.video_size).await {
            Ok(opened) => opened,
            Err(why) => return self.tell(&format!("That camera could not be opened: {why}")),
        };
        let Some(track) = first(&opened.get_video_tracks()) else {
            return self.tell("That camera gave no video.");
        };
        if let Some(old) = self.camera.take() {
            old.stop();
        }
        replace(
            &self.params.local,
            &self.params.local.get_video_tracks(),
            &track,
        );
        track.set_enabled(!self.camera_off);
        self.start_media().await;
        self.send_state();
    }

    /// Sends from microphone `id` from now on.
    pub(super) async fn switch_microphone(&mut self, id: &str) {
        let opened = match capture::microphone_only(id).await {
            Ok(opened) => opened,
            Err(why) => return self.tell(&format!("That microphone could not be opened: {why}")),
        };
        let Some(track) = first(&opened.get_audio_tracks()) else {
            return self.tell("That microphone gave no sound.");
        };
        if let Some(old) = self.microphone.take() {
            old.stop();
        }
        replace(
            &self.params.local,
            &self.params.local.get_audio_tracks(),
            &track,
        );
        self.start_media().await;
        self.send_state();
    }

    /// Plays the others through audio output `id` (where the browser can choose one).
    pub(super) async fn switch_speaker(&mut self, id: &str) {
        let context: wasm_bindgen::JsValue = self.params.audio.clone().into();
        let chosen = match js::call(&context, "setSinkId", &[id.into()]) {
            Ok(promise) => match promise.dyn_into::<js_sys::Promise>() {
                Ok(promise) => js::wait(promise).await.map(|_| ()),
                Err(_) => Ok(()),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = chosen {
            self.tell(&format!(
                "This browser could not play through that output: {}",
                js::error_text(&error)
            ));
        }
    }
}

/// Stops and removes `old` from `stream`, and adds `new`.
fn replace(stream: &MediaStream, old: &js_sys::Array, new: &MediaStreamTrack) {
    for track in old.iter() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
            stream.remove_track(&track);
        }
    }
    stream.add_track(new);
}
