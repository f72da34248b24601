//! Issuing a join grant once someone may join: a seat and a relay (placement), the signed
//! token, and the end-to-end encryption credential. JoinMeeting calls it for those who get
//! in at once, CheckAdmission for those a host let in from the waiting room.

use videocall_control_api::v1::{JoinGrant, MeetingRole, RelayEndpoints};
use videocall_token::{Claims, E2eeCredential, Grants, Role};

use super::{key_status, store_status, ControlPlane};
use crate::placement::{choose_relay_avoiding, Decision};
use crate::store::{now_ms, SeatRequest};

/// Who gets a grant, for which meeting.
pub struct GrantRequest<'a> {
    /// The meeting.
    pub meeting_id: &'a str,
    /// The token's subject.
    pub identity: String,
    /// Shown to the others.
    pub display_name: String,
    /// The role in the meeting.
    pub role: Role,
    /// No account.
    pub guest: bool,
    /// No publishing.
    pub receive_only: bool,
    /// The client's MLS signing key (empty: no credential).
    pub e2ee_signature_key: &'a [u8],
    /// Relays to keep this client off.
    pub avoid_relay_ids: &'a [String],
    /// The ticket the person was admitted with (empty: none).
    pub admission_ticket: String,
}

/// The API's name for `role`.
pub fn role_to_api(role: Role) -> MeetingRole {
    match role {
        Role::Host => MeetingRole::Host,
        Role::Cohost => MeetingRole::Cohost,
        Role::Participant => MeetingRole::Participant,
        Role::Guest => MeetingRole::Guest,
    }
}

/// Takes a seat, places the participant and signs its grant.
pub async fn issue(
    cp: &ControlPlane,
    request: GrantRequest<'_>,
) -> Result<JoinGrant, tonic::Status> {
    let now = now_ms();
    let window_ms =
        i64::try_from(cp.config.connect_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    let mut decision = None;
    let placed = cp
        .store
        .reserve_seat(
            &SeatRequest {
                meeting_id: request.meeting_id,
                identity: &request.identity,
                now_ms: now,
                connect_by_ms: now.saturating_add(window_ms),
                fresh_since_ms: cp.fresh_since_ms(),
            },
            |meeting, fresh, hosts| {
                let share = cp.config.meeting_share_per_relay;
                let chosen =
                    choose_relay_avoiding(meeting, fresh, hosts, share, request.avoid_relay_ids);
                decision = Some(Decision::of(meeting, hosts, share, chosen.as_deref()));
                chosen
            },
        )
        .await;
    if let Some(decision) = decision {
        cp.metrics.placed(decision);
    }
    let (meeting, relay) = placed.map_err(store_status)?;
    let role = request.role;
    let grants = Grants {
        publish: !request.receive_only,
        subscribe: true,
        admin: role == Role::Host,
        role: Some(role),
    };
    let mut claims = Claims::new(
        &request.identity,
        &request.display_name,
        &meeting.id,
        grants,
        cp.config.token_ttl(),
    );
    claims.max_participants = Some(meeting.max_participants);
    claims.e2ee = meeting.e2ee_required;
    let keys = cp.keys.current().await.map_err(key_status)?;
    let token = keys
        .issuer
        .issue(&claims)
        .map_err(|e| tonic::Status::internal(format!("signing the token: {e}")))?;
    let (e2ee_credential, e2ee_verification_keys) = if request.e2ee_signature_key.is_empty() {
        (String::new(), None)
    } else {
        let credential = E2eeCredential::new(
            &request.identity,
            &request.display_name,
            &meeting.id,
            request.guest,
            request.e2ee_signature_key,
            cp.config.token_ttl(),
        );
        let signed = keys
            .issuer
            .issue_credential(&credential)
            .map_err(|e| tonic::Status::internal(format!("signing the credential: {e}")))?;
        (signed, Some(super::keys_to_api(&keys)))
    };
    cp.metrics.grants.inc();
    tracing::info!(
        meeting = %meeting.id,
        identity = %request.identity,
        relay = %relay.relay_id,
        avoided = ?request.avoid_relay_ids,
        "join granted"
    );
    Ok(JoinGrant {
        token,
        kid: keys.issuer.kid().to_owned(),
        expires_at_ms: i64::try_from(claims.exp)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
        relay: Some(RelayEndpoints {
            relay_id: relay.relay_id.clone(),
            webtransport_url: relay.webtransport_url.clone(),
            websocket_url: relay.websocket_url.clone(),
            certificate_sha256: relay.certificate_sha256.clone(),
        }),
        meeting_id: meeting.id.clone(),
        identity: request.identity,
        display_name: request.display_name,
        publish: grants.publish,
        subscribe: grants.subscribe,
        admin: grants.admin,
        e2ee_required: meeting.e2ee_required,
        e2ee_credential,
        e2ee_verification_keys,
        waiting: None,
        admission_ticket: request.admission_ticket,
        role: role_to_api(role) as i32,
    })
}
