//! `RelayService`: registration, heartbeats with load, drain, verification keys.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use prost::Message;
use tonic::{Request, Response, Status};
use videocall_control_api::v1::relay_service_server::RelayService;
use videocall_control_api::v1::*;

use super::{key_status, keys_to_api, store_status, ControlPlane};
use crate::auth::{authenticate, require, require_admin, CallerRole, Principal};
use crate::store::{now_ms, HostActionEntry, LiveParticipantRecord, RelayLoad, RelayRecord};
use crate::validate;

/// Most participants one heartbeat may report.
const MAX_REPORTED_PARTICIPANTS: usize = 100_000;

/// A command not reported done this long after it was queued is dropped (ms).
const COMMAND_LIFETIME_MS: i64 = 30_000;

/// The relay service.
pub struct RelayApi(pub Arc<ControlPlane>);

fn require_relay(principal: Option<Principal>) -> Result<Principal, Status> {
    let principal = require(principal)?;
    match principal.role {
        CallerRole::Relay | CallerRole::Admin => Ok(principal),
        CallerRole::User => Err(Status::permission_denied(
            "only relays (ROLE_RELAY API keys) and admins may do this",
        )),
    }
}

fn status_to_api(
    relay: &RelayRecord,
    fresh_since_ms: i64,
    meeting_ids: Vec<String>,
) -> RelayStatus {
    RelayStatus {
        endpoints: Some(RelayEndpoints {
            relay_id: relay.relay_id.clone(),
            webtransport_url: relay.webtransport_url.clone(),
            websocket_url: relay.websocket_url.clone(),
            certificate_sha256: relay.certificate_sha256.clone(),
        }),
        capacity_participants: relay.capacity,
        participants: relay.participants,
        meetings: relay.meetings,
        bitrate_bps: relay.bitrate_bps,
        draining: relay.is_draining(),
        fresh: relay.last_heartbeat_ms >= fresh_since_ms,
        last_heartbeat_ms: relay.last_heartbeat_ms,
        admin_url: relay.admin_url.clone(),
        meeting_ids,
    }
}

fn validate_endpoints(endpoints: Option<&RelayEndpoints>) -> Result<&RelayEndpoints, Status> {
    let e = endpoints.ok_or_else(|| validate::invalid("endpoints", "is required"))?;
    validate::lookup_id("endpoints.relay_id", &e.relay_id)?;
    validate::url(
        "endpoints.webtransport_url",
        &e.webtransport_url,
        &["https"],
        true,
    )?;
    validate::url(
        "endpoints.websocket_url",
        &e.websocket_url,
        &["ws", "wss"],
        true,
    )?;
    if e.certificate_sha256.len() > 4 {
        return Err(validate::invalid(
            "endpoints.certificate_sha256",
            "at most 4 hashes",
        ));
    }
    for (i, hash) in e.certificate_sha256.iter().enumerate() {
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(validate::invalid(
                &format!("endpoints.certificate_sha256[{i}]"),
                "must be 64 hex digits",
            ));
        }
    }
    Ok(e)
}

fn validate_loads(
    loads: &[MeetingLoad],
    relay_id: &str,
) -> Result<Vec<LiveParticipantRecord>, Status> {
    let total: usize = loads.iter().map(|l| l.participants.len()).sum();
    if total > MAX_REPORTED_PARTICIPANTS {
        return Err(validate::invalid(
            "meeting_loads",
            format!("at most {MAX_REPORTED_PARTICIPANTS} participants"),
        ));
    }
    let mut live = Vec::with_capacity(total);
    for (i, load) in loads.iter().enumerate() {
        validate::meeting_id(&format!("meeting_loads[{i}].meeting_id"), &load.meeting_id)?;
        for (j, p) in load.participants.iter().enumerate() {
            let field = format!("meeting_loads[{i}].participants[{j}]");
            validate::text(&format!("{field}.identity"), &p.identity, 128, true)?;
            validate::text(
                &format!("{field}.display_name"),
                &p.display_name,
                128,
                false,
            )?;
            live.push(LiveParticipantRecord {
                participant_id: p.participant_id,
                meeting_id: load.meeting_id.clone(),
                identity: p.identity.clone(),
                display_name: p.display_name.clone(),
                relay_id: relay_id.to_owned(),
                joined_at_ms: p.joined_at_ms,
                role: crate::moderation::role_to_report(
                    crate::moderation::role_from_api(p.role)
                        .unwrap_or(videocall_token::Role::Participant),
                )
                .to_owned(),
            });
        }
    }
    Ok(live)
}

/// The host actions a relay reports, checked: what the record keeps.
fn validate_host_actions(actions: &[HostActionRecord]) -> Result<(), Status> {
    if actions.len() > validate::MAX_REPORTED_HOST_ACTIONS {
        return Err(validate::invalid(
            "host_actions",
            format!("at most {} actions", validate::MAX_REPORTED_HOST_ACTIONS),
        ));
    }
    for (i, a) in actions.iter().enumerate() {
        let field = |name: &str| format!("host_actions[{i}].{name}");
        validate::meeting_id(&field("meeting_id"), &a.meeting_id)?;
        validate::text(&field("by_identity"), &a.by_identity, 128, true)?;
        validate::text(&field("by_display_name"), &a.by_display_name, 128, false)?;
        validate::lookup_id(&field("action"), &a.action)?;
        validate::text(&field("target_identity"), &a.target_identity, 128, false)?;
        validate::text(
            &field("target_display_name"),
            &a.target_display_name,
            128,
            false,
        )?;
        validate::text(&field("detail"), &a.detail, 4 * validate::MAX_REASON, false)?;
    }
    Ok(())
}

impl RelayApi {
    /// Keeps what relays report hosts did: the record, and what holds at JoinMeeting (a lock,
    /// a ban, the end).
    async fn take_host_actions(
        &self,
        relay_id: &str,
        actions: &[HostActionRecord],
    ) -> Result<(), Status> {
        let store = &self.0.store;
        let mut entries = Vec::with_capacity(actions.len());
        for a in actions {
            match a.action.as_str() {
                "lock" => {
                    store
                        .set_locked(&a.meeting_id, a.locked)
                        .await
                        .map_err(store_status)?;
                }
                "remove" if a.ban && !a.target_identity.is_empty() => {
                    store
                        .ban(&a.meeting_id, &a.target_identity, a.at_ms)
                        .await
                        .map_err(store_status)?;
                }
                "end" => match store
                    .end_meeting(&a.meeting_id, a.at_ms.min(now_ms()))
                    .await
                {
                    Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(store_status(e)),
                },
                _ => {}
            }
            tracing::info!(relay = relay_id, meeting = %a.meeting_id, by = %a.by_identity, action = %a.action, target = %a.target_identity, "host action in a meeting");
            entries.push(HostActionEntry {
                at_ms: a.at_ms,
                meeting_id: a.meeting_id.clone(),
                by_identity: a.by_identity.clone(),
                by_display_name: a.by_display_name.clone(),
                action: a.action.clone(),
                target_identity: a.target_identity.clone(),
                target_display_name: a.target_display_name.clone(),
                detail: a.detail.clone(),
                via: "meeting".into(),
            });
        }
        store
            .record_host_actions(&entries)
            .await
            .map_err(store_status)
    }
}

#[tonic::async_trait]
impl RelayService for RelayApi {
    async fn register_relay(
        &self,
        request: Request<RegisterRelayRequest>,
    ) -> Result<Response<RegisterRelayResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        let endpoints = validate_endpoints(req.endpoints.as_ref())?;
        validate::url("admin_url", &req.admin_url, &["http", "https"], false)?;
        if req.capacity_participants == 0 {
            return Err(validate::invalid(
                "capacity_participants",
                "must be at least 1",
            ));
        }
        require_relay(caller)?;
        let record = RelayRecord {
            relay_id: endpoints.relay_id.clone(),
            webtransport_url: endpoints.webtransport_url.clone(),
            websocket_url: endpoints.websocket_url.clone(),
            certificate_sha256: endpoints.certificate_sha256.clone(),
            admin_url: req.admin_url.clone(),
            capacity: req.capacity_participants,
            participants: 0,
            meetings: 0,
            bitrate_bps: 0,
            draining: false,
            drain_requested: false,
            last_heartbeat_ms: now_ms(),
        };
        self.0
            .store
            .register_relay(&record, now_ms())
            .await
            .map_err(store_status)?;
        tracing::info!(relay = %record.relay_id, webtransport = %record.webtransport_url, "relay registered");
        let keys = self.0.keys.current().await.map_err(key_status)?;
        Ok(Response::new(RegisterRelayResponse {
            heartbeat_interval_ms: self.0.config.heartbeat_interval_ms,
            keys: Some(keys_to_api(&keys)),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::lookup_id("relay_id", &req.relay_id)?;
        let live = validate_loads(&req.meeting_loads, &req.relay_id)?;
        validate_host_actions(&req.host_actions)?;
        if req.done_command_ids.len() > validate::MAX_DONE_COMMANDS {
            return Err(validate::invalid(
                "done_command_ids",
                format!("at most {}", validate::MAX_DONE_COMMANDS),
            ));
        }
        for id in &req.done_command_ids {
            validate::lookup_id("done_command_ids", id)?;
        }
        require_relay(caller)?;
        let load = RelayLoad {
            participants: req.participants,
            meetings: req.meetings,
            bitrate_bps: req.bitrate_bps,
            draining: req.draining,
            participants_live: live,
        };
        let now = now_ms();
        let drain = self
            .0
            .store
            .heartbeat(&req.relay_id, &load, now)
            .await
            .map_err(store_status)?;
        // Meetings ended within a token lifetime: tokens issued before the end are refused.
        let ttl_ms = i64::try_from(self.0.config.token_ttl().as_millis()).unwrap_or(i64::MAX / 2);
        let ended = self
            .0
            .store
            .meetings_ended_since(now.saturating_sub(ttl_ms).saturating_sub(60_000))
            .await
            .map_err(store_status)?;
        self.take_host_actions(&req.relay_id, &req.host_actions)
            .await?;
        let commands = self
            .0
            .store
            .relay_commands(
                &req.relay_id,
                &req.done_command_ids,
                now.saturating_sub(COMMAND_LIFETIME_MS),
            )
            .await
            .map_err(store_status)?
            .into_iter()
            .filter_map(|(id, action)| {
                let bytes = STANDARD.decode(action).ok()?;
                let action = ModerateMeetingRequest::decode(bytes.as_slice()).ok()?;
                Some(RelayCommand {
                    id,
                    action: Some(action),
                })
            })
            .collect();
        let keys = self.0.keys.current().await.map_err(key_status)?;
        Ok(Response::new(HeartbeatResponse {
            commands,
            drain,
            ended_meetings: ended
                .into_iter()
                .map(|(meeting_id, ended_at_ms)| EndedMeeting {
                    meeting_id,
                    ended_at_secs: ended_at_ms.div_euclid(1000),
                })
                .collect(),
            keys_version: keys.version.clone(),
        }))
    }

    async fn drain_relay(
        &self,
        request: Request<DrainRelayRequest>,
    ) -> Result<Response<RelayStatus>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::lookup_id("relay_id", &req.relay_id)?;
        let admin = require_admin(caller)?;
        let relay = self
            .0
            .store
            .request_drain(&req.relay_id)
            .await
            .map_err(store_status)?;
        tracing::info!(relay = %relay.relay_id, by = %admin.name, "relay drain requested");
        let meetings = self
            .0
            .store
            .meetings_on(&relay.relay_id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(status_to_api(
            &relay,
            self.0.fresh_since_ms(),
            meetings,
        )))
    }

    async fn list_relays(
        &self,
        request: Request<ListRelaysRequest>,
    ) -> Result<Response<ListRelaysResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        require_relay(caller)?;
        let fresh = self.0.fresh_since_ms();
        let mut relays = Vec::new();
        for relay in self.0.store.relays().await.map_err(store_status)? {
            let meetings = self
                .0
                .store
                .meetings_on(&relay.relay_id)
                .await
                .map_err(store_status)?;
            relays.push(status_to_api(&relay, fresh, meetings));
        }
        Ok(Response::new(ListRelaysResponse { relays }))
    }

    async fn get_verification_keys(
        &self,
        request: Request<GetVerificationKeysRequest>,
    ) -> Result<Response<VerificationKeys>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        require_relay(caller)?;
        let keys = self.0.keys.current().await.map_err(key_status)?;
        Ok(Response::new(keys_to_api(&keys)))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<RotateSigningKeyRequest>,
    ) -> Result<Response<VerificationKeys>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let admin = require_admin(caller)?;
        let keys = self.0.keys.rotate().await.map_err(key_status)?;
        tracing::info!(kid = %keys.issuer.kid(), by = %admin.name, "signing key rotated");
        Ok(Response::new(keys_to_api(&keys)))
    }
}
