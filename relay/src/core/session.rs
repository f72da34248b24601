//! A joined participant's session, independent of the transport: every inbound message,
//! the media fan-out, heartbeats and leaving. The time of each event is passed in.

use std::collections::HashSet;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::allocation::{allocate, Shown};
use super::audit::HostActionReport;
use super::bandwidth::Estimator;
use super::clock::Now;
use super::handshake::{
    self, COMMIT_BURST, COMMIT_RATE_PER_SEC, HANDSHAKE_BURST, HANDSHAKE_RATE_PER_SEC,
};
use super::host;
use super::join_budget::JoinBudget;
use super::meeting::Meeting;
use super::mesh::MESH_SUBSCRIBER;
use super::moderation::{self, Party};
use super::participant::{Participant, StateChange, MAX_VIEWS};
use super::relay::Relay;
use super::sync::lock;
use super::track::{Delivery, DownTrack, PublishedTrack, MAX_LAYERS};
use crate::reason::{CloseReason, DropReason};
use videocall_protocol::decode_envelope;
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::{mesh_event, Moderate};
use videocall_protocol::sealed;
use videocall_protocol::wire::{
    self, envelope::Body, host_action::Action as HostActionKind, ErrorCode, LeaveReason, MediaKind,
    ParticipantLeft, Track,
};

/// Window over which drops are summed into one congestion notice.
pub const CONGESTION_WINDOW_MS: u64 = 1000;
/// Bad frames logged per session before the rest are only counted.
const BAD_FRAMES_LOGGED: u32 = 5;
/// Tracks one participant may publish at once.
pub const MAX_TRACKS: usize = 16;
/// Longest display name kept, in characters.
const MAX_DISPLAY_NAME: usize = 128;

/// A participant admitted to a meeting.
pub struct Session {
    relay: Arc<Relay>,
    /// The meeting joined.
    pub meeting: Arc<Meeting>,
    /// The participant.
    pub me: Arc<Participant>,
    bad_frames: AtomicU32,
    told_not_publisher: AtomicBool,
    told_unannounced: AtomicBool,
    /// Whether the participant was told about media of a layer its track does not have.
    told_unannounced_layer: AtomicBool,
    told_not_encrypted: AtomicBool,
    /// Every track id this participant ever announced: media of a track it removed is
    /// dropped quietly (packets in flight), media of one it never announced is an error.
    ever_announced: Mutex<HashSet<u32>>,
    /// Key packages and foundings the participant may still send.
    handshake_budget: Mutex<JoinBudget>,
    /// Commits the participant may still send.
    commit_budget: Mutex<JoinBudget>,
    /// What its link carries.
    bandwidth: Mutex<Estimator>,
    /// Its link was a limit at the last estimate: its layers follow the estimate, not only
    /// its tiles.
    limited: AtomicBool,
}

impl Session {
    pub(super) fn new(relay: Arc<Relay>, meeting: Arc<Meeting>, me: Arc<Participant>) -> Self {
        Session {
            relay,
            meeting,
            me,
            bad_frames: AtomicU32::new(0),
            told_not_publisher: AtomicBool::new(false),
            told_unannounced: AtomicBool::new(false),
            told_unannounced_layer: AtomicBool::new(false),
            told_not_encrypted: AtomicBool::new(false),
            ever_announced: Mutex::new(HashSet::new()),
            handshake_budget: Mutex::new(JoinBudget::new(HANDSHAKE_RATE_PER_SEC, HANDSHAKE_BURST)),
            commit_budget: Mutex::new(JoinBudget::new(COMMIT_RATE_PER_SEC, COMMIT_BURST)),
            bandwidth: Mutex::new(Estimator::default()),
            limited: AtomicBool::new(false),
        }
    }

    /// Largest frame accepted from the participant.
    pub fn max_frame_size(&self) -> usize {
        self.relay.config.limits.max_frame_size
    }

    /// Records that something arrived from the participant (a transport-level ping).
    pub fn heard(&self, now: Now) {
        self.me.heard(self.relay.ms(now));
    }

    /// Handles one frame from the participant, received at `now`. Bad frames are answered
    /// with an error and otherwise ignored: the session goes on.
    pub fn handle_frame(&self, frame: Bytes, now: Now) {
        self.heard(now);
        match decode_envelope(frame, self.relay.config.limits.max_frame_size) {
            Ok(env) => {
                if let Some(body) = env.body {
                    self.handle_body(body, now);
                }
            }
            Err(e) => self.reject(e.code(), e.to_string()),
        }
    }

    /// Answers a bad frame with a non-fatal error; counts and (at first) logs it.
    pub fn reject(&self, code: ErrorCode, message: String) {
        self.relay.metrics.bad_frame(code);
        if self.bad_frames.fetch_add(1, Ordering::Relaxed) < BAD_FRAMES_LOGGED {
            tracing::warn!(participant = self.me.id, code = code.as_str_name(), %message, "bad frame from client");
        }
        self.me.send_error(code, message);
    }

    fn handle_body(&self, body: Body, now: Now) {
        match body {
            Body::Media(media) => self.on_media(media, now),
            Body::UpdateState(update) => self.on_update(update, now),
            Body::KeyframeRequest(req) => {
                if let Some(publisher) = self.meeting.participant(req.participant_id) {
                    if let Some(track) = publisher.track(req.track_id) {
                        // Of the layer it gets, or is to get.
                        let layer = track
                            .down_track_of(self.me.id)
                            .and_then(|down| down.target())
                            .unwrap_or(0);
                        request_keyframe(&self.relay, &publisher, &track, layer, now);
                    }
                }
            }
            Body::ViewTracks(views) => self.on_views(views, now),
            Body::Ping(ping) => self.me.send(Body::Pong(wire::Pong {
                nonce: ping.nonce,
                sent_at_us: ping.sent_at_us,
            })),
            Body::Pong(_) => {}
            Body::Data(data) => self.on_data(data, now),
            Body::Leave(_) => self.me.close(CloseReason::left()),
            Body::RemoveParticipant(remove) => self.on_host_action(
                wire::HostAction {
                    action: Some(HostActionKind::Remove(remove)),
                },
                now,
            ),
            Body::HostAction(action) => self.on_host_action(action, now),
            Body::Handshake(handshake) => self.on_handshake(handshake, now),
            Body::Join(_) => self.reject(
                ErrorCode::AlreadyJoined,
                "this session has already joined; open a new session for another meeting".into(),
            ),
            Body::Error(e) => {
                tracing::debug!(participant = self.me.id, code = e.code, message = %e.message, "client reported an error");
            }
            Body::Joined(_)
            | Body::ParticipantJoined(_)
            | Body::ParticipantLeft(_)
            | Body::ParticipantUpdated(_)
            | Body::Congestion(_)
            | Body::HandshakeRefused(_)
            | Body::LayerDemand(_)
            | Body::ActiveSpeakers(_)
            | Body::MeetingUpdated(_)
            | Body::HostNotice(_)
            | Body::Draining(_) => self.reject(
                ErrorCode::UnknownMessage,
                "that message is sent by the relay, not by clients".into(),
            ),
        }
    }

    fn on_update(&self, update: wire::UpdateState, now: Now) {
        // A non-empty list is always the whole list; an empty one only with `announce_tracks`
        // (an update of the mute flags alone leaves the tracks as they are).
        let announces = update.announce_tracks || !update.tracks.is_empty();
        if announces {
            if !update.tracks.is_empty() && !self.me.grants.publish {
                self.reject(
                    ErrorCode::Forbidden,
                    "your token does not grant publish: announce no tracks".into(),
                );
                return;
            }
            if let Err(message) = check_announcement(&update.tracks) {
                self.reject(ErrorCode::Malformed, message);
                return;
            }
        }
        let name = update.display_name.trim();
        let refused = self.me.apply(StateChange {
            audio_muted: update.audio_muted,
            video_muted: update.video_muted,
            speaking: update.speaking,
            display_name: (!name.is_empty()).then(|| name.chars().take(MAX_DISPLAY_NAME).collect()),
            hand_raised: update.hand_raised.map(|up| (up, now.unix_ms() as i64)),
        });
        if refused.audio || refused.video {
            let what = if refused.audio {
                "microphone"
            } else {
                "camera"
            };
            self.reject(
                ErrorCode::Forbidden,
                format!("a host turned your {what} off and does not let you turn it on; raise your hand to ask"),
            );
        }
        if announces {
            lock(&self.ever_announced).extend(update.tracks.iter().map(|t| t.id));
            if let Some(announced) = self.meeting.announce(&self.me, &update.tracks) {
                for track in &announced.added {
                    // Subscribers start waiting for a keyframe; the first may be gone already.
                    update_demand(&self.me, track);
                    request_wanted_keyframes(&self.relay, &self.me, track, now);
                }
            }
        }
        self.announce_update();
    }

    fn on_handshake(&self, handshake: wire::Handshake, now: Now) {
        if !self.me.e2ee {
            self.relay.metrics.handshake("invalid", "rejected");
            self.reject(
                ErrorCode::Forbidden,
                "handshake messages are for end-to-end encrypted meetings, and this one is not"
                    .into(),
            );
            return;
        }
        let kind = match handshake::check(&handshake) {
            Ok(kind) => kind,
            Err(message) => {
                self.relay.metrics.handshake("invalid", "rejected");
                self.reject(ErrorCode::Malformed, message);
                return;
            }
        };
        let (budget, burst, rate) = if kind == wire::HandshakeKind::Commit {
            (&self.commit_budget, COMMIT_BURST, COMMIT_RATE_PER_SEC)
        } else {
            (
                &self.handshake_budget,
                HANDSHAKE_BURST,
                HANDSHAKE_RATE_PER_SEC,
            )
        };
        if !lock(budget).take(self.relay.ms(now)) {
            self.relay.metrics.bad_frame(ErrorCode::RateLimited);
            handshake::refuse(
                &self.relay,
                &self.me,
                &handshake,
                self.meeting.handshake_head(),
                &format!(
                    "rate limited: more than {burst} {} messages at once, or {rate} a second",
                    handshake::kind_label(kind)
                ),
            );
            return;
        }
        handshake::submit(&self.relay, &self.meeting, &self.me, kind, handshake);
    }

    /// A host action: carried out here once the sender's role allows it, and by every other
    /// relay of the meeting when they hear it.
    fn on_host_action(&self, action: wire::HostAction, now: Now) {
        let Some(action) = action.action else {
            self.reject(ErrorCode::Malformed, "a host action names no action".into());
            return;
        };
        let party = |p: &Participant| Party {
            id: p.id,
            role: p.role(),
        };
        let target_participant =
            moderation::target_of(&action).and_then(|id| self.meeting.participant(id));
        let target = target_participant.as_ref().map(|p| party(p));
        if let Err(refusal) = moderation::permit(party(&self.me), &action, target) {
            self.reject(refusal.code, refusal.message);
            return;
        }
        let target_name = target_participant
            .as_ref()
            .map(|p| (p.user.clone(), p.display_name()))
            .unwrap_or_default();
        self.relay.host_actions.push(HostActionReport::new(
            &self.meeting.id,
            (&self.me.user, &self.me.display_name()),
            &action,
            (&target_name.0, &target_name.1),
            i64::try_from(now.unix_ms()).unwrap_or(i64::MAX),
        ));
        tracing::info!(meeting = %self.meeting.id, by = self.me.id, action = moderation::action_label(&action), target = ?target.map(|t| t.id), "host action");
        host::act(&self.relay, &self.meeting, self.me.id, &action, now);
        self.meeting.mesh().publish(
            &self.meeting.id,
            mesh_event::Body::Moderate(Moderate {
                by_participant_id: self.me.id,
                action: Some(wire::HostAction {
                    action: Some(action),
                }),
            }),
        );
    }

    fn on_media(&self, mut media: wire::Media, now: Now) {
        let metrics = &self.relay.metrics;
        if !self.me.grants.publish {
            metrics.bad_frame(ErrorCode::Forbidden);
            if !self.told_not_publisher.swap(true, Ordering::Relaxed) {
                self.me
                    .send_error(ErrorCode::Forbidden, "your token does not grant publish");
            }
            return;
        }
        if MediaKind::try_from(media.kind).unwrap_or(MediaKind::Unspecified)
            == MediaKind::Unspecified
        {
            self.reject(
                ErrorCode::Malformed,
                "media needs a kind: audio, video or screen".into(),
            );
            return;
        }
        if self.me.e2ee && !sealed::is_sealed_media(&media) {
            self.not_encrypted("media frame");
            return;
        }
        let Some(track) = self.me.track(media.track_id) else {
            self.unannounced(media.track_id);
            return;
        };
        if self.me.held_by_host(track.kind) {
            // A client that kept sending after a host turned it off (ours stop at once).
            metrics.drop_packet(DropReason::HeldByHost);
            return;
        }
        let counters = metrics.media_in(track.kind);
        counters.packets.inc();
        counters.bytes.inc_by(media.payload.len() as u64);

        let announced = if track.layers.is_empty() {
            media.layer == 0
        } else {
            track.layers.iter().any(|l| l.id == media.layer)
        };
        if !announced {
            // Counted each time; told once (an error per packet would fill its control queue).
            if self.told_unannounced_layer.swap(true, Ordering::Relaxed) {
                metrics.bad_frame(ErrorCode::Malformed);
            } else {
                self.reject(
                    ErrorCode::Malformed,
                    format!(
                        "layer {} of track {} is not announced: announce the track's layers first",
                        media.layer, track.id
                    ),
                );
            }
            return;
        }
        media.participant_id = self.me.id;
        media.kind = track.kind as i32;
        if track.is_audio() {
            self.meeting
                .heard_speaker(self.me.id, media.audio_level, self.relay.ms(now));
        }
        let (keyframe, layer) = (media.keyframe, media.layer);
        // Encoded once; every subscriber gets a reference to the same buffer.
        let frame = encode_length_prefixed(&envelope(Body::Media(media)));
        fan_out(&self.relay, &self.me, &track, &frame, keyframe, layer, now);
    }

    /// How the participant shows others' tracks: each view sets the layer it gets of that
    /// track (a keyframe of it asked for when it is a layer it is not getting yet) and is
    /// kept for tracks published later.
    fn on_views(&self, views: wire::ViewTracks, now: Now) {
        if views.views.len() > MAX_VIEWS {
            self.reject(
                ErrorCode::Malformed,
                format!(
                    "{} views in one message; at most {MAX_VIEWS}",
                    views.views.len()
                ),
            );
            return;
        }
        let limited = self.limited.load(Ordering::Relaxed);
        for view in views.views {
            let tile = (view.width, view.height);
            if !self.me.set_view(view.participant_id, view.track_id, tile) {
                self.reject(
                    ErrorCode::Malformed,
                    format!("more than {MAX_VIEWS} tracks viewed; views of gone tracks are forgotten with their publishers"),
                );
                return;
            }
            if limited {
                // Shared out below, with the rest of its bandwidth.
                continue;
            }
            // The view is stored before the track is looked for, and a new track is published
            // before its views are read again (`Meeting::announce`): one sees the other.
            fence(Ordering::SeqCst);
            let Some(publisher) = self.meeting.participant(view.participant_id) else {
                continue;
            };
            let Some(track) = publisher.track(view.track_id) else {
                continue;
            };
            let Some(down) = track.down_track_of(self.me.id) else {
                continue;
            };
            let target = track.layer_for(Some(tile));
            set_target(&self.relay, &publisher, &track, &down, target, now);
        }
        if limited {
            let estimate = lock(&self.bandwidth).estimate_bps();
            self.share_bandwidth(estimate, now);
        }
    }

    /// Bandwidth estimation: samples the participant's link (through its transport) and, when
    /// the estimate is a limit or just stopped being one, shares it among the video tracks it
    /// shows ([`allocate`]: audio first, then speakers).
    pub fn estimate_bandwidth(&self, now: Now) {
        let Some(mut sample) = self.me.outlet().link_sample() else {
            return;
        };
        sample.at_ms = self.relay.ms(now);
        let (congestion, estimate) = {
            let mut estimator = lock(&self.bandwidth);
            let congestion = estimator.sample(sample);
            (congestion, estimator.estimate_bps())
        };
        let metrics = &self.relay.metrics;
        if let Some(cause) = congestion {
            metrics.congestion(cause);
            tracing::debug!(
                participant = self.me.id,
                ?cause,
                ?sample,
                ?estimate,
                "congested"
            );
        }
        if let Some(bps) = estimate {
            metrics.estimated_bandwidth.observe(bps as f64);
        }
        let was_limited = self.limited.swap(estimate.is_some(), Ordering::Relaxed);
        if estimate.is_some() != was_limited {
            tracing::debug!(
                participant = self.me.id,
                estimate_bps = estimate,
                ?congestion,
                "link limit changed"
            );
        }
        if estimate.is_some() || was_limited {
            self.share_bandwidth(estimate, now);
        }
    }

    /// Sets the layer of every video track the participant gets from `estimate_bps` (`None`:
    /// its tiles alone decide), asking for keyframes of layers it moves to.
    fn share_bandwidth(&self, estimate_bps: Option<u64>, now: Now) {
        let speakers = self.meeting.active_speakers();
        let mut audio_tracks = 0;
        let mut video = Vec::new();
        for publisher in self.meeting.participants() {
            if publisher.id == self.me.id {
                continue;
            }
            for track in publisher.tracks() {
                let Some(down) = track.down_track_of(self.me.id) else {
                    continue;
                };
                if track.is_audio() {
                    audio_tracks += 1;
                } else {
                    video.push((publisher.clone(), track, down));
                }
            }
        }
        let shown: Vec<Shown> = video
            .iter()
            .map(|(publisher, track, _)| Shown {
                layers: track.layers(),
                wanted: track.layer_for(self.me.view_of(publisher.id, track.id)),
                speaker: speakers.contains(&publisher.id),
            })
            .collect();
        let targets = allocate(estimate_bps, audio_tracks, &shown);
        for ((publisher, track, down), target) in video.iter().zip(targets) {
            if down.target() == target {
                continue;
            }
            tracing::debug!(
                participant = self.me.id,
                publisher = publisher.id,
                track = track.id,
                ?target,
                estimate_bps,
                "layer for the link"
            );
            set_target(&self.relay, publisher, track, down, target, now);
        }
    }

    /// Media of a track that is not published: dropped and counted, never published. A
    /// track removed a moment ago still has packets in flight on other streams; a track
    /// never announced is the client's mistake, and it is told once.
    fn unannounced(&self, track_id: u32) {
        self.relay.metrics.drop_packet(DropReason::UnannouncedTrack);
        let ever = lock(&self.ever_announced).contains(&track_id);
        if !ever && !self.told_unannounced.swap(true, Ordering::Relaxed) {
            tracing::info!(
                participant = self.me.id,
                track = track_id,
                "media for a track that was never announced"
            );
            self.me.send_error(
                ErrorCode::Malformed,
                format!(
                    "track {track_id} is not announced: send UpdateState with it before its media"
                ),
            );
        }
    }

    /// Something an end-to-end encrypted participant sent in clear: dropped, counted, and the
    /// participant told (once in a while: it is a bug of its client).
    fn not_encrypted(&self, what: &str) {
        self.relay.metrics.drop_packet(DropReason::NotEncrypted);
        self.relay.metrics.bad_frame(ErrorCode::NotEncrypted);
        if !self.told_not_encrypted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                participant = self.me.id,
                meeting = %self.meeting.id,
                what,
                "clear media or chat from an end-to-end encrypted participant"
            );
            self.me.send_error(
                ErrorCode::NotEncrypted,
                format!(
                    "the meeting is end-to-end encrypted: a {what} sent in clear was dropped \
                     (and every one after it will be)"
                ),
            );
        }
    }

    fn on_data(&self, mut data: wire::DataMessage, now: Now) {
        if self.me.e2ee && !sealed::is_sealed_chat(&data) {
            self.not_encrypted("chat message");
            return;
        }
        data.from_participant_id = self.me.id;
        if data.sent_at_ms == 0 {
            data.sent_at_ms = now.unix_ms();
        }
        let recipients = std::mem::take(&mut data.to);
        let frame = encode_length_prefixed(&envelope(Body::Data(data.clone())));
        if recipients.is_empty() {
            self.meeting.broadcast(self.me.id, &frame);
            self.meeting
                .mesh()
                .publish(&self.meeting.id, mesh_event::Body::Data(data));
        } else {
            // A remote recipient's outlet carries the frame to its relay.
            for id in recipients {
                if let Some(p) = self.meeting.participant(id) {
                    p.send_frame(frame.clone());
                }
            }
        }
    }

    /// Asks `publisher` for a keyframe of the layer of `track` this participant is to get,
    /// at most once per configured interval.
    pub fn request_keyframe(&self, publisher: &Participant, track: &PublishedTrack, now: Now) {
        let layer = track
            .down_track_of(self.me.id)
            .and_then(|down| down.target());
        if let Some(layer) = layer {
            request_keyframe(&self.relay, publisher, track, layer, now);
        }
    }

    fn announce_update(&self) {
        host::announce_update(&self.meeting, &self.me);
    }

    /// Heartbeat: pings the participant, or ends the session if it has been silent too long.
    pub fn tick(&self, now: Now) {
        let now_ms = self.relay.ms(now);
        let timeout = self.relay.config.timing.peer_timeout();
        if self.me.silent_for_ms(now_ms) >= timeout.as_millis() as u64 {
            self.me.close(CloseReason::error(
                LeaveReason::Timeout,
                ErrorCode::Timeout,
                format!("nothing received for {} ms", timeout.as_millis()),
            ));
            return;
        }
        self.me.send(Body::Ping(wire::Ping {
            nonce: now_ms,
            sent_at_us: now.unix_us,
        }));
    }

    /// Removes the participant from its meeting, tells the others, and queues the final
    /// error for the participant itself. Returns why the session ended.
    pub fn finish(&self) -> CloseReason {
        let reason = self.me.close_reason();
        if reason.error.as_ref().map(|(c, _)| *c) == Some(ErrorCode::SlowConsumer) {
            self.relay.metrics.slow_consumers.inc();
        }
        if self
            .relay
            .meetings
            .leave(&self.meeting, self.me.id)
            .is_some()
        {
            let left = ParticipantLeft {
                participant_id: self.me.id,
                reason: reason.leave as i32,
            };
            let frame = encode_length_prefixed(&envelope(Body::ParticipantLeft(left)));
            self.meeting.broadcast(self.me.id, &frame);
            update_meeting_demand(&self.meeting);
            self.meeting
                .mesh()
                .publish(&self.meeting.id, mesh_event::Body::Left(left));
            tracing::info!(
                meeting = %self.meeting.id,
                participant = self.me.id,
                reason = reason.leave.as_str_name(),
                "left"
            );
        }
        // Ends writers that are still waiting on queues (the error, if any, was queued when
        // the reason was given).
        self.me.close(reason.clone());
        reason
    }
}

/// Offers one encoded media frame of `publisher`'s `track` (of simulcast `layer`) to every
/// down track. A drop makes video wait for a keyframe (and asks for one) and is summed into a
/// congestion notice for the publisher; a subscriber waiting to move to another layer asks
/// for that layer's keyframe. For a remote publisher requests and notices travel to its relay.
pub(super) fn fan_out(
    relay: &Relay,
    publisher: &Participant,
    track: &PublishedTrack,
    frame: &Bytes,
    keyframe: bool,
    layer: u32,
    now: Now,
) {
    let metrics = &relay.metrics;
    let downs = track.down_tracks();
    let video = !track.is_audio();
    let mut tally = metrics.fan_out_tally(layer);
    for down in downs.iter() {
        // The bus carries only the layers another relay's subscribers get.
        if down.subscriber == MESH_SUBSCRIBER && video && !track.mesh_wants(layer) {
            continue;
        }
        match down.offer(frame, now.at, keyframe, layer, &mut tally) {
            Delivery::Queued => {
                if video {
                    tally.layer_packet();
                }
            }
            Delivery::Moved => {
                metrics.layer_switches.inc();
                tally.layer_packet();
            }
            Delivery::Skipped { ask_keyframe } => {
                if let Some(wanted) = ask_keyframe {
                    request_keyframe(relay, publisher, track, wanted, now);
                }
            }
            Delivery::Dropped(DropReason::SubscriberGone) => {
                metrics.drop_packet(DropReason::SubscriberGone);
            }
            Delivery::Dropped(reason) => {
                metrics.drop_packet(reason);
                if !track.is_audio() {
                    let wanted = down.target().unwrap_or(layer);
                    request_keyframe(relay, publisher, track, wanted, now);
                }
                if let Some(dropped) = track.record_drop(relay.ms(now), CONGESTION_WINDOW_MS) {
                    publisher.send(Body::Congestion(wire::CongestionNotice {
                        track_id: track.id,
                        dropped_packets: dropped,
                        window_ms: CONGESTION_WINDOW_MS as u32,
                    }));
                }
            }
        }
    }
    // Subscribers move between layers only at keyframes: what is wanted may have changed.
    if keyframe {
        update_demand(publisher, track);
    }
}

/// Moves `down` (a subscriber's copy of `publisher`'s `track`) to `target`: the publisher
/// hears the new demand first (a layer that comes back is asked for before its keyframe),
/// then is asked for a keyframe of a layer the subscriber is not getting yet.
fn set_target(
    relay: &Relay,
    publisher: &Participant,
    track: &PublishedTrack,
    down: &DownTrack,
    target: Option<u32>,
    now: Now,
) {
    let wants_keyframe = down.set_target(target);
    update_demand(publisher, track);
    if let (true, Some(layer)) = (wants_keyframe, target) {
        request_keyframe(relay, publisher, track, layer, now);
    }
}

/// Dynacast: tells `publisher` which layers of its simulcast `track` someone gets or is
/// moving to, when that changed since it was last told. Another relay's publisher is told
/// through its relay (the message travels as a delivery), which adds what its own
/// subscribers and the other relays want, and carries only those layers over the bus.
pub(super) fn update_demand(publisher: &Participant, track: &PublishedTrack) {
    if let Some(layers) = track.claim_demand_change() {
        publisher.send(Body::LayerDemand(wire::LayerDemand {
            track_id: track.id,
            layers,
        }));
    }
}

/// [`update_demand`] for every simulcast track of `meeting`'s publishers, here and on other
/// relays (after someone joined or left: a subscriber or the bus's copy came or went).
pub(super) fn update_meeting_demand(meeting: &Meeting) {
    for publisher in meeting.participants() {
        for track in publisher.tracks() {
            update_demand(&publisher, &track);
        }
    }
}

/// Asks `publisher` for a keyframe of each layer of its video `track` that a subscriber is
/// to get (a new track: they all wait for one).
pub(super) fn request_wanted_keyframes(
    relay: &Relay,
    publisher: &Participant,
    track: &PublishedTrack,
    now: Now,
) {
    if track.is_audio() {
        return;
    }
    let mut wanted: Vec<u32> = track
        .down_tracks()
        .iter()
        .filter_map(|d| d.target())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    for layer in wanted {
        request_keyframe(relay, publisher, track, layer, now);
    }
}

/// Asks `publisher` for a keyframe of `track`'s `layer`, at most once per layer per
/// configured interval. A remote publisher's request travels to its relay, which coalesces
/// again.
pub(super) fn request_keyframe(
    relay: &Relay,
    publisher: &Participant,
    track: &PublishedTrack,
    layer: u32,
    now: Now,
) {
    let interval = relay.config.timing.keyframe_request_interval_ms;
    if track.claim_keyframe_request(layer, relay.ms(now), interval) {
        relay.metrics.keyframe_requests.inc();
        publisher.send(Body::KeyframeRequest(wire::KeyframeRequest {
            participant_id: publisher.id,
            track_id: track.id,
            layer,
        }));
    }
}

/// Checks an announcement: at most [`MAX_TRACKS`], each with a media kind, no id twice.
pub fn check_announcement(tracks: &[Track]) -> Result<(), String> {
    if tracks.len() > MAX_TRACKS {
        return Err(format!(
            "{} tracks announced; at most {MAX_TRACKS} may be published at once",
            tracks.len()
        ));
    }
    let mut seen = HashSet::with_capacity(tracks.len());
    for track in tracks {
        if MediaKind::try_from(track.kind).unwrap_or(MediaKind::Unspecified)
            == MediaKind::Unspecified
        {
            return Err(format!(
                "track {} needs a kind: audio, video or screen",
                track.id
            ));
        }
        if !seen.insert(track.id) {
            return Err(format!("track {} is announced twice", track.id));
        }
        check_layers(track)?;
    }
    Ok(())
}

/// Checks a track's simulcast layers: video or screen only, at most [`MAX_LAYERS`], ids
/// below it, no id twice.
fn check_layers(track: &Track) -> Result<(), String> {
    if track.layers.is_empty() {
        return Ok(());
    }
    if track.kind == MediaKind::Audio as i32 {
        return Err(format!("track {}: audio has no simulcast layers", track.id));
    }
    if track.layers.len() > MAX_LAYERS {
        return Err(format!(
            "track {}: {} layers; at most {MAX_LAYERS}",
            track.id,
            track.layers.len()
        ));
    }
    let mut ids = HashSet::with_capacity(track.layers.len());
    for layer in &track.layers {
        if layer.id as usize >= MAX_LAYERS || !ids.insert(layer.id) {
            return Err(format!(
                "track {}: layer ids are 0 to {} and each once (got {})",
                track.id,
                MAX_LAYERS - 1,
                layer.id
            ));
        }
    }
    Ok(())
}
