//! This participant's own tracks: camera, microphone and screen senders, and the state
//! (mute, camera, tracks) the others are told about.

use std::rc::Rc;

use dioxus::prelude::*;
use videocall_protocol::wire::{envelope::Body, MediaKind, Track, UpdateState};
use web_sys::MediaStreamTrack;

use super::core_session::Soon;
use super::send_lane::SendLane;
use super::{Command, Link, Session, CAMERA_BITRATE, SCREEN_BITRATE};
use crate::js;
use crate::media::audio_send::AudioSender;
use crate::media::video_send::VideoSender;
use crate::media::{MediaOut, SharedStats, AUDIO_TRACK, CAMERA_TRACK, SCREEN_TRACK};
use crate::route::CaptureChoice;

impl Session {
    pub(super) fn send_state(&self) {
        let mut tracks = Vec::new();
        if self.microphone.is_some() {
            tracks.push(track(
                AUDIO_TRACK,
                MediaKind::Audio,
                videocall_protocol::wire::Codec::Opus,
                Vec::new(),
            ));
        }
        if let Some(camera) = &self.camera {
            tracks.push(track(
                CAMERA_TRACK,
                MediaKind::Video,
                camera.codec(),
                camera.layers(),
            ));
        }
        if let Some(screen) = &self.screen {
            tracks.push(track(
                SCREEN_TRACK,
                MediaKind::Screen,
                screen.codec(),
                screen.layers(),
            ));
        }
        self.send(Body::UpdateState(UpdateState {
            audio_muted: self.muted,
            video_muted: self.camera_off,
            speaking: self.speaking && !self.muted,
            tracks,
            display_name: String::new(),
            // The whole list, even when empty: the relay forwards only announced tracks.
            announce_tracks: true,
            // The hand stays as it is.
            hand_raised: None,
        }));
    }
    /// Where the encoders' frames go: sealed where the meeting is encrypted (before the group
    /// has this participant nothing leaves; the first frame after is a keyframe), then sent
    /// in the order they were made.
    pub(super) fn media_out(&self) -> MediaOut {
        let core = self.core.clone();
        let lane = self.send_lane.clone();
        Rc::new(move |mut message| {
            let frame = match message.body.take() {
                Some(Body::Media(media)) => core.seal_media(media).map(move |media| {
                    message.body = Some(Body::Media(media));
                    message
                }),
                other => {
                    message.body = other;
                    Soon::Now(Some(message))
                }
            };
            lane.send(frame);
        })
    }

    /// The lane the local tracks' frames leave by: on the connection of the moment.
    pub(super) fn send_lane(link: Link, stats: SharedStats) -> SendLane {
        SendLane::start(Rc::new(move |message| {
            if let Some(connection) = link.borrow().as_ref() {
                stats
                    .borrow_mut()
                    .sent
                    .add(js::now_ms(), prost::Message::encoded_len(&message));
                connection.send_media(&message);
            }
        }))
    }

    /// Starts the camera and microphone senders once; they outlive reconnects.
    pub(super) async fn start_media(&mut self) {
        let element = self.params.capture == CaptureChoice::Element;
        if self.camera.is_none() {
            if let Some(track) = first_track(&self.params.local.get_video_tracks()) {
                match VideoSender::start(
                    track,
                    CAMERA_TRACK,
                    MediaKind::Video,
                    element,
                    CAMERA_BITRATE,
                    self.params.simulcast,
                    self.media_out(),
                    self.params.stats.clone(),
                )
                .await
                {
                    Ok(sender) => {
                        sender.set_paused(self.camera_off);
                        self.camera = Some(sender);
                    }
                    Err(error) => web_sys::console::warn_1(&format!("camera: {error}").into()),
                }
            }
        }
        if self.microphone.is_none() {
            if let Some(track) = first_track(&self.params.local.get_audio_tracks()) {
                let commands = self.commands_tx.clone();
                let on_speaking = Box::new(move |speaking| {
                    let _ = commands.unbounded_send(Command::Speaking(speaking));
                });
                let context = self.params.audio.clone();
                match AudioSender::start(track, element, context, self.media_out(), on_speaking)
                    .await
                {
                    Ok(sender) => {
                        sender.set_muted(self.muted);
                        self.microphone = Some(sender);
                    }
                    Err(error) => web_sys::console::warn_1(&format!("microphone: {error}").into()),
                }
            }
        }
        if let Some(camera) = &self.camera {
            camera.request_keyframe(None);
            self.signals.connection.with_mut(|view| {
                view.codec = format!("{:?}", camera.codec());
            });
        }
    }

    pub(super) async fn start_screen(&mut self) {
        let stream = match crate::media::capture::display_media().await {
            Ok(stream) => stream,
            Err(error) => {
                web_sys::console::warn_1(&format!("screen share: {error}").into());
                return;
            }
        };
        let Some(track) = first_track(&stream.get_video_tracks()) else {
            return;
        };
        // The browser's own "stop sharing" button ends the track.
        let commands = self.commands_tx.clone();
        let on_ended = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            let _ = commands.unbounded_send(Command::ShareScreen(false));
        });
        track.set_onended(Some(wasm_bindgen::JsCast::unchecked_ref(on_ended.as_ref())));
        on_ended.forget();
        let element = self.params.capture == CaptureChoice::Element;
        match VideoSender::start(
            track,
            SCREEN_TRACK,
            MediaKind::Screen,
            element,
            SCREEN_BITRATE,
            false,
            self.media_out(),
            self.params.stats.clone(),
        )
        .await
        {
            Ok(sender) => {
                self.screen = Some(sender);
                self.signals.sharing.set(Some(stream));
            }
            Err(error) => web_sys::console::warn_1(&format!("screen share: {error}").into()),
        }
    }

    pub(super) fn stop_screen(&mut self) {
        if let Some(screen) = self.screen.take() {
            screen.stop();
        }
        self.signals.sharing.set(None);
    }
}

fn track(
    id: u32,
    kind: MediaKind,
    codec: videocall_protocol::wire::Codec,
    layers: Vec<videocall_protocol::wire::Layer>,
) -> Track {
    Track {
        id,
        kind: kind as i32,
        codec: codec as i32,
        layers,
    }
}

/// The first track of `tracks`.
pub(super) fn first_track(tracks: &js_sys::Array) -> Option<MediaStreamTrack> {
    tracks
        .iter()
        .next()
        .and_then(|t| wasm_bindgen::JsCast::dyn_into(t).ok())
}
