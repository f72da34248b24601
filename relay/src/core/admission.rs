//! Admission: the checks a connection's first frame must pass before its sender joins a
//! meeting, cheapest first; the join budgets (the identity's, then the relay's) are charged
//! only after the token holds. (A client address that caused too many refusals is turned
//! away before this, by the driver.)
//! Pure: the frame and the time come in, a [`Session`] or a [`Refusal`] goes out.

use std::sync::Arc;

use bytes::Bytes;

use super::clock::Now;
use super::meeting::Capacity;
use super::moderation::role_to_wire;
use super::participant::Participant;
use super::relay::Relay;
use super::session::{update_demand, Session};
use super::sink::Outlet;
use crate::ids::TransportKind;
use crate::reason::{CloseReason, Refusal};
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::mesh_event;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason, ParticipantJoined};
use videocall_protocol::{decode_envelope, encode_length_prefixed, ProtocolError};
use videocall_token::TokenError;

/// Checks the first frame of a connection and, if it is a valid `Join`, admits the sender:
/// it is in the meeting, has its `Joined`, and the others have been told.
pub fn admit(
    relay: &Arc<Relay>,
    frame: Bytes,
    transport: TransportKind,
    outlet: Box<dyn Outlet>,
    now: Now,
) -> Result<Session, Refusal> {
    if relay.is_draining() {
        return Err(Refusal::new(
            ErrorCode::Draining,
            "this relay is draining; join through another relay",
        ));
    }
    let limits = &relay.config.limits;
    let env = decode_envelope(frame, limits.max_frame_size).map_err(protocol_refusal)?;
    let Some(Body::Join(join)) = env.body else {
        return Err(Refusal::new(
            ErrorCode::NotJoined,
            "the first message of a session must be Join",
        ));
    };
    videocall_protocol::ids::validate_meeting_id(&join.meeting_id)
        .map_err(|message| Refusal::new(ErrorCode::Malformed, message))?;
    let claims = relay
        .verifier
        .load()
        .verify(&join.token, &join.meeting_id)
        .map_err(token_refusal)?;
    if relay.ended_before(&join.meeting_id, claims.iat) {
        return Err(Refusal::new(
            ErrorCode::MeetingEnded,
            "this meeting has ended; ask for a new join grant",
        ));
    }
    relay.rules_admit(&join.meeting_id, &claims.sub, claims.grants.role())?;
    if !claims.grants.publish && !claims.grants.subscribe {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "token grants neither publish nor subscribe",
        ));
    }
    // The join budgets are spent only by joins that could succeed: garbage, forged or
    // expired tokens are refused above without touching them, so a flood of them cannot
    // crowd out real people. One identity's own budget comes first, so that one person's
    // (or one leaked token's) rejoin loop cannot spend everyone's.
    if !relay.take_identity_permit(&claims.sub, now) {
        relay.metrics.rate_limited("identity");
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "too many joins as {:?} right now; retry in a moment",
                claims.sub
            ),
        ));
    }
    if !relay.take_join_permit(now) {
        relay.metrics.rate_limited("relay");
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            "too many joins on this relay right now; retry in a moment",
        ));
    }
    let me = Arc::new(Participant::new(
        relay.next_participant_id(),
        &claims,
        transport,
        outlet,
        relay.ms(now),
        (now.unix_ms()) as i64,
    ));
    let capacity = Capacity {
        max_meetings: limits.max_meetings,
        max_local: limits.max_participants_per_meeting,
        max_total: claims.max_participants.map_or(usize::MAX, |n| n as usize),
    };
    let welcome = |meeting: &super::meeting::Meeting, others: &[Arc<Participant>]| {
        Body::Joined(wire::Joined {
            participant_id: me.id,
            meeting_id: join.meeting_id.clone(),
            participants: others.iter().map(|p| p.describe()).collect(),
            max_frame_size: limits.max_frame_size as u32,
            heartbeat_interval_ms: relay.config.timing.heartbeat_interval_ms as u32,
            relay_id: relay.config.relay_id.clone(),
            handshake_head: meeting.handshake_head(),
            role: role_to_wire(me.role()) as i32,
            locked: relay.is_locked(&join.meeting_id),
        })
    };
    let admitted = relay
        .meetings
        .join(&join.meeting_id, me.clone(), capacity, welcome)?;
    let session = Session::new(relay.clone(), admitted.meeting, me);
    let announce = encode_length_prefixed(&envelope(Body::ParticipantJoined(ParticipantJoined {
        participant: Some(session.me.describe()),
    })));
    session.meeting.broadcast(session.me.id, &announce);
    session.meeting.mesh().publish(
        &session.meeting.id,
        mesh_event::Body::Joined(session.me.describe_for_mesh()),
    );
    for old in &admitted.replaced {
        relay.metrics.sessions_replaced.inc();
        tracing::info!(
            meeting = %session.meeting.id,
            participant = old.id,
            by = session.me.id,
            user = %old.user,
            "replaced by a newer session of the same identity"
        );
        old.close(CloseReason::error(
            LeaveReason::Replaced,
            ErrorCode::Replaced,
            "this identity joined the meeting again elsewhere; this session was replaced",
        ));
    }
    for (publisher, track) in admitted.awaiting_keyframes {
        update_demand(&publisher, &track);
        session.request_keyframe(&publisher, &track, now);
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
