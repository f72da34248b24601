//! A joined participant's session, independent of the transport: admission, every
//! inbound message, the media fan-out, heartbeats and leaving.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::meeting::{Meeting, Refusal};
use crate::metrics::DropReason;
use crate::outbound::Outbound;
use crate::participant::{CloseReason, Participant};
use crate::state::RelayState;
use crate::track::{Delivery, PublishedTrack};
use crate::transport::TransportKind;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{
    self, envelope::Body, Codec, ErrorCode, LeaveReason, MediaKind, ParticipantJoined,
    ParticipantLeft, ParticipantUpdated,
};
use videocall_protocol::{decode_envelope, encode_length_prefixed, ProtocolError};
use videocall_token::TokenError;

/// Window over which drops are summed into one congestion notice.
const CONGESTION_WINDOW_MS: u64 = 1000;
/// Bad frames logged per session before the rest are only counted.
const BAD_FRAMES_LOGGED: u32 = 5;

/// A participant admitted to a meeting.
pub struct Session {
    state: Arc<RelayState>,
    /// The meeting joined.
    pub meeting: Arc<Meeting>,
    /// The participant.
    pub me: Arc<Participant>,
    bad_frames: AtomicU32,
    told_not_publisher: AtomicBool,
}

/// Checks the first frame of a connection and, if it is a valid `Join`, admits the sender.
pub fn admit(
    state: &Arc<RelayState>,
    frame: Bytes,
    transport: TransportKind,
    outbound: Outbound,
    closing: CancellationToken,
) -> Result<Session, Refusal> {
    let result = admit_inner(state, frame, transport, outbound, closing);
    if let Err(refusal) = &result {
        state.metrics.refuse_join(refusal.code);
        tracing::info!(code = refusal.code.as_str_name(), reason = %refusal.message, %transport, "join refused");
    }
    result
}

fn admit_inner(
    state: &Arc<RelayState>,
    frame: Bytes,
    transport: TransportKind,
    outbound: Outbound,
    closing: CancellationToken,
) -> Result<Session, Refusal> {
    if state.is_draining() {
        return Err(Refusal::new(
            ErrorCode::Draining,
            "this relay is draining; join through another relay",
        ));
    }
    if !state.take_join_permit() {
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            "too many joins on this relay right now; retry in a moment",
        ));
    }
    let limits = &state.config.limits;
    let env = decode_envelope(frame, limits.max_frame_size).map_err(protocol_refusal)?;
    let Some(Body::Join(join)) = env.body else {
        return Err(Refusal::new(
            ErrorCode::NotJoined,
            "the first message of a session must be Join",
        ));
    };
    videocall_protocol::ids::validate_meeting_id(&join.meeting_id)
        .map_err(|message| Refusal::new(ErrorCode::Malformed, message))?;
    let claims = state
        .verifier
        .load()
        .verify(&join.token, &join.meeting_id)
        .map_err(token_refusal)?;
    if state.ended_before(&join.meeting_id, claims.iat) {
        return Err(Refusal::new(
            ErrorCode::MeetingEnded,
            "this meeting has ended; ask for a new join grant",
        ));
    }
    if !claims.grants.publish && !claims.grants.subscribe {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "token grants neither publish nor subscribe",
        ));
    }
    let me = Arc::new(Participant::new(
        state.next_participant_id(),
        &claims,
        transport,
        outbound,
        closing,
        state.now_ms(),
    ));
    let admitted = state.meetings.join(
        &join.meeting_id,
        me.clone(),
        limits.max_meetings,
        claims
            .max_participants
            .map_or(limits.max_participants_per_meeting, |n| {
                limits.max_participants_per_meeting.min(n as usize)
            }),
    )?;
    me.send(Body::Joined(wire::Joined {
        participant_id: me.id,
        meeting_id: join.meeting_id.clone(),
        participants: admitted.others.iter().map(|p| p.describe()).collect(),
        max_frame_size: limits.max_frame_size as u32,
        heartbeat_interval_ms: state.config.timing.heartbeat_interval_ms as u32,
        relay_id: state.config.relay_id.clone(),
    }));
    let session = Session {
        state: state.clone(),
        meeting: admitted.meeting,
        me,
        bad_frames: AtomicU32::new(0),
        told_not_publisher: AtomicBool::new(false),
    };
    let announce = encode_length_prefixed(&envelope(Body::ParticipantJoined(ParticipantJoined {
        participant: Some(session.me.describe()),
    })));
    session.meeting.broadcast(session.me.id, &announce);
    for (publisher, track) in admitted.awaiting_keyframes {
        session.request_keyframe(&publisher, &track);
    }
    tracing::info!(
        meeting = %session.meeting.id,
        participant = session.me.id,
        user = %session.me.user,
        %transport,
        client = %join.client,
        "joined"
    );
    Ok(session)
}

fn protocol_refusal(e: ProtocolError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

fn token_refusal(e: TokenError) -> Refusal {
    let code = match e {
        TokenError::Missing => ErrorCode::TokenMissing,
        TokenError::Expired => ErrorCode::TokenExpired,
        TokenError::WrongMeeting { .. } => ErrorCode::TokenWrongMeeting,
        TokenError::UnknownKey(_) => ErrorCode::TokenUnknownKey,
        TokenError::Malformed(_) | TokenError::BadSignature | TokenError::InvalidKey(_) => {
            ErrorCode::TokenInvalid
        }
    };
    Refusal::new(code, e.to_string())
}

impl Session {
    /// Largest frame accepted from the participant.
    pub fn max_frame_size(&self) -> usize {
        self.state.config.limits.max_frame_size
    }

    /// Handles one frame from the participant. Bad frames are answered with an error
    /// and otherwise ignored: the session goes on.
    pub fn handle_frame(&self, frame: Bytes) {
        let received_at = Instant::now();
        self.me.heard(self.state.now_ms());
        match decode_envelope(frame, self.state.config.limits.max_frame_size) {
            Ok(env) => {
                if let Some(body) = env.body {
                    self.handle_body(body, received_at);
                }
            }
            Err(e) => self.reject(e.code(), e.to_string()),
        }
    }

    /// Answers a bad frame with a non-fatal error.
    pub fn reject(&self, code: ErrorCode, message: String) {
        self.state.metrics.bad_frame(code);
        if self.bad_frames.fetch_add(1, Ordering::Relaxed) < BAD_FRAMES_LOGGED {
            tracing::warn!(participant = self.me.id, code = code.as_str_name(), %message, "bad frame from client");
        }
        self.me.send_error(code, message);
    }

    fn handle_body(&self, body: Body, received_at: Instant) {
        match body {
            Body::Media(media) => self.on_media(media, received_at),
            Body::UpdateState(update) => {
                self.me.update(update);
                self.announce_update();
            }
            Body::KeyframeRequest(req) => {
                if let Some(publisher) = self.meeting.participant(req.participant_id) {
                    if let Some(track) = publisher.track(req.track_id) {
                        self.request_keyframe(&publisher, &track);
                    }
                }
            }
            Body::Ping(ping) => self.me.send(Body::Pong(wire::Pong {
                nonce: ping.nonce,
                sent_at_us: ping.sent_at_us,
            })),
            Body::Pong(_) => {}
            Body::Data(data) => self.on_data(data),
            Body::Leave(_) => self.me.close(CloseReason::left()),
            Body::RemoveParticipant(remove) => self.on_remove(remove),
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
            | Body::Draining(_) => self.reject(
                ErrorCode::UnknownMessage,
                "that message is sent by the relay, not by clients".into(),
            ),
        }
    }

    fn on_remove(&self, remove: wire::RemoveParticipant) {
        if !self.me.grants.admin {
            self.reject(
                ErrorCode::Forbidden,
                "only a meeting admin (token grant `admin`) may remove participants".into(),
            );
            return;
        }
        let Some(target) = self.meeting.participant(remove.participant_id) else {
            self.reject(
                ErrorCode::Malformed,
                format!("no participant {} in this meeting", remove.participant_id),
            );
            return;
        };
        tracing::info!(meeting = %self.meeting.id, by = self.me.id, removed = target.id, "participant removed by an admin");
        let reason = if remove.reason.is_empty() {
            "removed by a meeting admin".to_owned()
        } else {
            remove.reason.chars().take(200).collect()
        };
        target.close(CloseReason::error(
            LeaveReason::Kicked,
            ErrorCode::Forbidden,
            reason,
        ));
    }

    fn on_media(&self, mut media: wire::Media, received_at: Instant) {
        if !self.me.grants.publish {
            self.state.metrics.bad_frame(ErrorCode::Forbidden);
            if !self.told_not_publisher.swap(true, Ordering::Relaxed) {
                self.me
                    .send_error(ErrorCode::Forbidden, "your token does not grant publish");
            }
            return;
        }
        let kind = MediaKind::try_from(media.kind).unwrap_or(MediaKind::Unspecified);
        if kind == MediaKind::Unspecified {
            self.reject(
                ErrorCode::Malformed,
                "media needs a kind: audio, video or screen".into(),
            );
            return;
        }
        let codec = Codec::try_from(media.codec).unwrap_or(Codec::Unspecified);
        let Some((track, created)) =
            self.meeting
                .published_track(&self.me, media.track_id, kind, codec)
        else {
            return;
        };
        if created {
            self.announce_update();
        }
        let counters = self.state.metrics.media_in(track.kind);
        counters.packets.inc();
        counters.bytes.inc_by(media.payload.len() as u64);

        media.participant_id = self.me.id;
        media.kind = track.kind as i32;
        let keyframe = media.keyframe;
        // Encoded once; every subscriber gets a reference to the same buffer.
        let frame = encode_length_prefixed(&envelope(Body::Media(media)));
        let metrics = &self.state.metrics;
        let downs = track.down_tracks();
        for down in downs.iter() {
            if let Delivery::Dropped(reason) = down.offer(&frame, received_at, keyframe, metrics) {
                metrics.drop_packet(reason);
                if reason == DropReason::SubscriberGone {
                    continue;
                }
                if !track.is_audio() {
                    self.request_keyframe(&self.me, &track);
                }
                if let Some(dropped) = track.record_drop(self.state.now_ms(), CONGESTION_WINDOW_MS)
                {
                    self.me.send(Body::Congestion(wire::CongestionNotice {
                        track_id: track.id,
                        dropped_packets: dropped,
                        window_ms: CONGESTION_WINDOW_MS as u32,
                    }));
                }
            }
        }
    }

    fn on_data(&self, mut data: wire::DataMessage) {
        data.from_participant_id = self.me.id;
        if data.sent_at_ms == 0 {
            data.sent_at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
        }
        let recipients = std::mem::take(&mut data.to);
        let frame = encode_length_prefixed(&envelope(Body::Data(data)));
        if recipients.is_empty() {
            self.meeting.broadcast(self.me.id, &frame);
        } else {
            for id in recipients {
                if let Some(p) = self.meeting.participant(id) {
                    p.send_frame(frame.clone());
                }
            }
        }
    }

    /// Asks `publisher` for a keyframe of `track`, at most once per configured interval.
    pub fn request_keyframe(&self, publisher: &Participant, track: &PublishedTrack) {
        let interval = self.state.config.timing.keyframe_request_interval_ms;
        if track.claim_keyframe_request(self.state.now_ms(), interval) {
            self.state.metrics.keyframe_requests.inc();
            publisher.send(Body::KeyframeRequest(wire::KeyframeRequest {
                participant_id: publisher.id,
                track_id: track.id,
            }));
        }
    }

    fn announce_update(&self) {
        let frame =
            encode_length_prefixed(&envelope(Body::ParticipantUpdated(ParticipantUpdated {
                participant: Some(self.me.describe()),
            })));
        self.meeting.broadcast(self.me.id, &frame);
    }

    /// Heartbeat: pings the participant, or ends the session if it has been silent too long.
    pub fn tick(&self) {
        let now = self.state.now_ms();
        let timeout = self.state.config.timing.peer_timeout();
        if self.me.silent_for_ms(now) >= timeout.as_millis() as u64 {
            self.me.close(CloseReason::error(
                LeaveReason::Timeout,
                ErrorCode::Timeout,
                format!("nothing received for {} ms", timeout.as_millis()),
            ));
            return;
        }
        let sent_at_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.me.send(Body::Ping(wire::Ping {
            nonce: now,
            sent_at_us,
        }));
    }

    /// Removes the participant from its meeting and tells the others. Returns why it ended.
    pub fn finish(&self) -> CloseReason {
        let reason = self.me.close_reason();
        if reason.error.as_ref().map(|(c, _)| *c) == Some(ErrorCode::SlowConsumer) {
            self.state.metrics.slow_consumers.inc();
        }
        if self.state.meetings.leave(&self.meeting, self.me.id) {
            let frame = encode_length_prefixed(&envelope(Body::ParticipantLeft(ParticipantLeft {
                participant_id: self.me.id,
                reason: reason.leave as i32,
            })));
            self.meeting.broadcast(self.me.id, &frame);
            tracing::info!(
                meeting = %self.meeting.id,
                participant = self.me.id,
                reason = reason.leave.as_str_name(),
                "left"
            );
        }
        // Ends lanes and writers that are still waiting on queues.
        self.me.closing().cancel();
        reason
    }
}
