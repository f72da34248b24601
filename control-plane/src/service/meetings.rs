//! `MeetingService`: meetings, join grants, live participants.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tonic::{Request, Response, Status};
use videocall_control_api::v1::meeting_service_server::MeetingService;
use videocall_control_api::v1::*;
use videocall_token::{Claims, E2eeCredential, Grants, Role};

use super::{key_status, peer_key, store_status, ControlPlane};
use crate::auth::{authenticate, hash_password, random_hex, require, verify_password, Principal};
use crate::placement::{choose_relay_avoiding, Decision};
use crate::store::{
    self, now_ms, MeetingFilter, MeetingRecord, MeetingUpdate, NewMeeting, SeatRequest, StateFilter,
};
use crate::validate;

/// Largest page of ListMeetings.
const MAX_PAGE: u32 = 500;
/// Page size when none is asked for.
const DEFAULT_PAGE: u32 = 50;

/// The meeting service.
pub struct MeetingApi(pub Arc<ControlPlane>);

fn access_from_api(value: i32, field: &str) -> Result<store::Access, Status> {
    match Access::try_from(value) {
        Ok(Access::Public) | Ok(Access::Unspecified) => Ok(store::Access::Public),
        Ok(Access::Private) => Ok(store::Access::Private),
        Ok(Access::Password) => Ok(store::Access::Password),
        Err(_) => Err(validate::invalid(field, "unknown access")),
    }
}

fn access_to_api(access: store::Access) -> Access {
    match access {
        store::Access::Public => Access::Public,
        store::Access::Private => Access::Private,
        store::Access::Password => Access::Password,
    }
}

/// A list of usernames (an allow-list, hosts), checked, sorted and without repeats.
fn usernames(field: &str, users: &[String]) -> Result<Vec<String>, Status> {
    if users.len() > validate::MAX_ALLOWED_USERS {
        return Err(validate::invalid(
            field,
            format!("at most {} users", validate::MAX_ALLOWED_USERS),
        ));
    }
    let mut users = users.to_vec();
    for (i, user) in users.iter().enumerate() {
        validate::username(&format!("{field}[{i}]"), user)?;
    }
    users.sort();
    users.dedup();
    Ok(users)
}

/// May `caller` see (and try to join) `meeting`?
fn may_see(caller: &Principal, meeting: &MeetingRecord) -> bool {
    caller.is_admin()
        || caller.name == meeting.owner
        || meeting.access != store::Access::Private
        || meeting.allowed_users.contains(&caller.name)
}

fn may_manage(caller: &Principal, meeting: &MeetingRecord) -> bool {
    caller.is_person() && (caller.is_admin() || caller.name == meeting.owner)
}

impl MeetingApi {
    fn max_participants(&self, field: &str, value: u32) -> Result<u32, Status> {
        let limit = self.0.config.max_participants_limit;
        match value {
            0 => Ok(self.0.config.default_max_participants.min(limit)),
            n if n <= limit => Ok(n),
            _ => Err(validate::invalid(field, format!("must be 1 to {limit}"))),
        }
    }

    async fn to_api(&self, meeting: &MeetingRecord) -> Result<Meeting, Status> {
        let live = self
            .0
            .store
            .live_participants(&meeting.id, self.0.fresh_since_ms())
            .await
            .map_err(store_status)?;
        let mut relays: Vec<String> = live.iter().map(|p| p.relay_id.clone()).collect();
        relays.sort();
        relays.dedup();
        Ok(meeting_to_api(meeting, live.len(), relays))
    }

    async fn load(&self, id: &str) -> Result<MeetingRecord, Status> {
        self.0
            .store
            .meeting(id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("meeting {id} not found")))
    }

    async fn load_managed(&self, caller: &Principal, id: &str) -> Result<MeetingRecord, Status> {
        let meeting = self.load(id).await?;
        if !may_manage(caller, &meeting) {
            return Err(Status::permission_denied(
                "only the meeting's owner or an admin may change it",
            ));
        }
        Ok(meeting)
    }
}

fn meeting_to_api(meeting: &MeetingRecord, participants: usize, relay_ids: Vec<String>) -> Meeting {
    let state = if meeting.ended_at_ms.is_some() {
        MeetingState::Ended
    } else if participants > 0 {
        MeetingState::Live
    } else {
        MeetingState::Open
    };
    Meeting {
        id: meeting.id.clone(),
        title: meeting.title.clone(),
        owner: meeting.owner.clone(),
        access: access_to_api(meeting.access) as i32,
        allowed_users: meeting.allowed_users.clone(),
        hosts: meeting.hosts.clone(),
        guests_allowed: meeting.guests_allowed,
        max_participants: meeting.max_participants,
        e2ee_required: meeting.e2ee_required,
        state: state as i32,
        participants: u32::try_from(participants).unwrap_or(u32::MAX),
        relay_ids,
        created_at_ms: meeting.created_at_ms,
        ended_at_ms: meeting.ended_at_ms.unwrap_or(0),
    }
}

#[tonic::async_trait]
impl MeetingService for MeetingApi {
    async fn create_meeting(
        &self,
        request: Request<CreateMeetingRequest>,
    ) -> Result<Response<Meeting>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        let id = if req.id.is_empty() {
            format!("m-{}", random_hex(6))
        } else {
            validate::meeting_id("id", &req.id)?;
            req.id
        };
        validate::text("title", &req.title, validate::MAX_TITLE, false)?;
        let access = access_from_api(req.access, "access")?;
        let allowed = usernames("allowed_users", &req.allowed_users)?;
        let hosts = usernames("hosts", &req.hosts)?;
        let password_hash = if access == store::Access::Password {
            validate::password("password", &req.password)?;
            Some(req.password)
        } else if !req.password.is_empty() {
            return Err(validate::invalid(
                "password",
                "only for ACCESS_PASSWORD meetings",
            ));
        } else {
            None
        };
        let max_participants = self.max_participants("max_participants", req.max_participants)?;
        let caller = require(caller)?;
        if !caller.is_person() {
            return Err(Status::permission_denied("relays may not create meetings"));
        }
        let password_hash = match password_hash {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let meeting = NewMeeting {
            id,
            title: req.title.trim().to_owned(),
            owner: caller.name.clone(),
            access,
            password_hash,
            guests_allowed: req.guests_allowed,
            max_participants,
            e2ee_required: req.e2ee_required,
            allowed_users: allowed,
            hosts,
        };
        let created = self
            .0
            .store
            .create_meeting(&meeting, now_ms())
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %created.id, owner = %created.owner, "meeting created");
        Ok(Response::new(meeting_to_api(&created, 0, Vec::new())))
    }

    async fn get_meeting(
        &self,
        request: Request<GetMeetingRequest>,
    ) -> Result<Response<Meeting>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::meeting_id("id", &req.id)?;
        let meeting = self.load(&req.id).await?;
        match &caller {
            // Guests may look at meetings that admit guests (the lobby shows the title).
            None if meeting.guests_allowed && meeting.access != store::Access::Private => {}
            None => return Err(require(None).unwrap_err()),
            Some(caller) if !may_see(caller, &meeting) => {
                return Err(Status::permission_denied("this meeting is private"))
            }
            Some(_) => {}
        }
        Ok(Response::new(self.to_api(&meeting).await?))
    }

    async fn list_meetings(
        &self,
        request: Request<ListMeetingsRequest>,
    ) -> Result<Response<ListMeetingsResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        if req.page_size > MAX_PAGE {
            return Err(validate::invalid(
                "page_size",
                format!("must be at most {MAX_PAGE}"),
            ));
        }
        let limit = if req.page_size == 0 {
            DEFAULT_PAGE
        } else {
            req.page_size
        };
        let after_id = if req.page_token.is_empty() {
            None
        } else {
            let bytes = URL_SAFE_NO_PAD
                .decode(&req.page_token)
                .map_err(|_| validate::invalid("page_token", "not a token from a previous page"))?;
            let id = String::from_utf8(bytes)
                .map_err(|_| validate::invalid("page_token", "not a token from a previous page"))?;
            validate::meeting_id("page_token", &id)?;
            Some(id)
        };
        let owner = if req.owner.is_empty() {
            None
        } else {
            validate::username("owner", &req.owner)?;
            Some(req.owner)
        };
        let state = match MeetingState::try_from(req.state) {
            Ok(MeetingState::Unspecified) => None,
            Ok(MeetingState::Open) => Some(StateFilter::Open),
            Ok(MeetingState::Live) => Some(StateFilter::Live),
            Ok(MeetingState::Ended) => Some(StateFilter::Ended),
            Err(_) => return Err(validate::invalid("state", "unknown state")),
        };
        let caller = require(caller)?;
        let filter = MeetingFilter {
            owner,
            state,
            visible_to: (!caller.is_admin() && caller.role != crate::auth::CallerRole::Relay)
                .then(|| caller.name.clone()),
            after_id,
            // One more than asked tells whether another page follows.
            limit: limit + 1,
            fresh_since_ms: self.0.fresh_since_ms(),
        };
        let mut records = self
            .0
            .store
            .list_meetings(&filter)
            .await
            .map_err(store_status)?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let ids: Vec<String> = records.iter().map(|m| m.id.clone()).collect();
        let hosts = self
            .0
            .store
            .meeting_hosts(&ids, self.0.fresh_since_ms())
            .await
            .map_err(store_status)?;
        let meetings = records
            .iter()
            .map(|m| {
                let mine: Vec<_> = hosts.iter().filter(|(id, _, _)| id == &m.id).collect();
                let count: i64 = mine.iter().map(|(_, _, n)| n).sum();
                let relays = mine.iter().map(|(_, r, _)| r.clone()).collect();
                meeting_to_api(m, usize::try_from(count).unwrap_or(0), relays)
            })
            .collect();
        let next_page_token = match (more, records.last()) {
            (true, Some(last)) => URL_SAFE_NO_PAD.encode(last.id.as_bytes()),
            _ => String::new(),
        };
        Ok(Response::new(ListMeetingsResponse {
            meetings,
            next_page_token,
        }))
    }

    async fn update_meeting(
        &self,
        request: Request<UpdateMeetingRequest>,
    ) -> Result<Response<Meeting>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::meeting_id("id", &req.id)?;
        if let Some(title) = &req.title {
            validate::text("title", title, validate::MAX_TITLE, false)?;
        }
        let access = req
            .access
            .map(|a| access_from_api(a, "access"))
            .transpose()?;
        let allowed = req
            .allowed_users
            .as_ref()
            .map(|list| usernames("allowed_users", &list.users))
            .transpose()?;
        let hosts = req
            .hosts
            .as_ref()
            .map(|list| usernames("hosts", &list.users))
            .transpose()?;
        if let Some(password) = &req.password {
            validate::password("password", password)?;
        }
        let max_participants = req
            .max_participants
            .map(|n| self.max_participants("max_participants", n))
            .transpose()?;
        let caller = require(caller)?;
        let current = self.load_managed(&caller, &req.id).await?;
        if current.ended_at_ms.is_some() {
            return Err(Status::failed_precondition(format!(
                "meeting {} has ended",
                req.id
            )));
        }
        let password_access = access.unwrap_or(current.access) == store::Access::Password;
        if password_access && req.password.is_none() && current.password_hash.is_none() {
            return Err(validate::invalid(
                "password",
                "is required for ACCESS_PASSWORD meetings",
            ));
        }
        let password_hash = match req.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let update = MeetingUpdate {
            title: req.title.map(|t| t.trim().to_owned()),
            access,
            allowed_users: allowed,
            hosts,
            password_hash,
            guests_allowed: req.guests_allowed,
            max_participants,
            e2ee_required: req.e2ee_required,
        };
        let updated = self
            .0
            .store
            .update_meeting(&req.id, &update)
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %updated.id, by = %caller.name, "meeting updated");
        Ok(Response::new(self.to_api(&updated).await?))
    }

    async fn end_meeting(
        &self,
        request: Request<EndMeetingRequest>,
    ) -> Result<Response<Meeting>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::meeting_id("id", &req.id)?;
        let caller = require(caller)?;
        self.load_managed(&caller, &req.id).await?;
        let ended = self
            .0
            .store
            .end_meeting(&req.id, now_ms())
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %ended.id, by = %caller.name, "meeting ended");
        Ok(Response::new(self.to_api(&ended).await?))
    }

    async fn delete_meeting(
        &self,
        request: Request<DeleteMeetingRequest>,
    ) -> Result<Response<DeleteMeetingResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::meeting_id("id", &req.id)?;
        let caller = require(caller)?;
        self.load_managed(&caller, &req.id).await?;
        // Ending first tells relays to disconnect whoever is still in it; relays also refuse
        // tokens of a meeting that no longer exists once they expire.
        self.0
            .store
            .end_meeting(&req.id, now_ms())
            .await
            .map_err(store_status)?;
        self.0
            .store
            .delete_meeting(&req.id)
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %req.id, by = %caller.name, "meeting deleted");
        Ok(Response::new(DeleteMeetingResponse {}))
    }

    async fn join_meeting(
        &self,
        request: Request<JoinMeetingRequest>,
    ) -> Result<Response<JoinGrant>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let peer = format!("peer:{}", peer_key(&request));
        let req = request.into_inner();
        validate::meeting_id("meeting_id", &req.meeting_id)?;
        validate::display_name("display_name", &req.display_name, caller.is_none())?;
        if req.password.len() > validate::MAX_PASSWORD * 4 {
            return Err(validate::invalid("password", "too long"));
        }
        if req.avoid_relay_ids.len() > validate::MAX_AVOID_RELAYS {
            return Err(validate::invalid(
                "avoid_relay_ids",
                format!("at most {} relays", validate::MAX_AVOID_RELAYS),
            ));
        }
        for id in &req.avoid_relay_ids {
            validate::lookup_id("avoid_relay_ids", id)?;
        }
        validate::e2ee_signature_key("e2ee_signature_key", &req.e2ee_signature_key)?;
        if caller.as_ref().is_some_and(|c| !c.is_person()) {
            return Err(Status::permission_denied("relays do not join meetings"));
        }
        let meeting = self
            .0
            .store
            .meeting_for_join(&req.meeting_id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("meeting {} not found", req.meeting_id)))?;
        let privileged = caller.as_ref().is_some_and(|c| may_manage(c, &meeting));
        match &caller {
            None if !meeting.guests_allowed || meeting.access == store::Access::Private => {
                return Err(Status::unauthenticated(
                    "this meeting does not admit guests: sign in first",
                ))
            }
            Some(c) if !may_see(c, &meeting) => {
                return Err(Status::permission_denied(
                    "this meeting is private and you are not on its allow-list",
                ))
            }
            _ => {}
        }
        if meeting.access == store::Access::Password && !privileged {
            let limiter = &self.0.login_limiter;
            let key = format!("meeting:{}:{peer}", meeting.id);
            if !limiter.allowed(&key) {
                return Err(Status::resource_exhausted(
                    "too many wrong meeting passwords; wait a minute and try again",
                ));
            }
            if req.password.is_empty()
                || !verify_password(req.password.clone(), meeting.password_hash.clone()).await
            {
                limiter.failed(&key);
                return Err(Status::permission_denied("wrong meeting password"));
            }
        }
        if meeting.ended_at_ms.is_some() {
            return Err(Status::failed_precondition(format!(
                "meeting {} has ended",
                meeting.id
            )));
        }
        if meeting.e2ee_required && req.e2ee_signature_key.is_empty() {
            return Err(Status::failed_precondition(format!(
                "meeting {} is end-to-end encrypted: join with a client that encrypts \
                 (it sends e2ee_signature_key)",
                meeting.id
            )));
        }
        let (identity, display_name) = match &caller {
            Some(c) => {
                let name = if req.display_name.trim().is_empty() {
                    match self.0.store.user(&c.name).await.map_err(store_status)? {
                        Some(user) => user.display_name,
                        None => c.name.clone(),
                    }
                } else {
                    req.display_name.trim().to_owned()
                };
                (c.name.clone(), name)
            }
            None => (
                format!("guest-{}", random_hex(6)),
                req.display_name.trim().to_owned(),
            ),
        };
        let now = now_ms();
        let window_ms = i64::try_from(self.0.config.connect_window_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX / 2);
        let mut decision = None;
        let placed = self
            .0
            .store
            .reserve_seat(
                &SeatRequest {
                    meeting_id: &meeting.id,
                    identity: &identity,
                    now_ms: now,
                    connect_by_ms: now.saturating_add(window_ms),
                    fresh_since_ms: self.0.fresh_since_ms(),
                },
                |meeting, fresh, hosts| {
                    let share = self.0.config.meeting_share_per_relay;
                    let chosen =
                        choose_relay_avoiding(meeting, fresh, hosts, share, &req.avoid_relay_ids);
                    decision = Some(Decision::of(meeting, hosts, share, chosen.as_deref()));
                    chosen
                },
            )
            .await;
        if let Some(decision) = decision {
            self.0.metrics.placed(decision);
        }
        let (meeting, relay) = placed.map_err(store_status)?;
        // The owner, admins and the users the meeting names host; a guest is always one.
        let role = match &caller {
            _ if privileged => Role::Host,
            None => Role::Guest,
            Some(c) => {
                let named = c.is_person()
                    && self
                        .0
                        .store
                        .is_host(&meeting.id, &c.name)
                        .await
                        .map_err(store_status)?;
                if named {
                    Role::Host
                } else {
                    Role::Participant
                }
            }
        };
        let grants = Grants {
            publish: !req.receive_only,
            subscribe: true,
            admin: role == Role::Host,
            role: Some(role),
        };
        let mut claims = Claims::new(
            &identity,
            &display_name,
            &meeting.id,
            grants,
            self.0.config.token_ttl(),
        );
        claims.max_participants = Some(meeting.max_participants);
        claims.e2ee = meeting.e2ee_required;
        let keys = self.0.keys.current().await.map_err(key_status)?;
        let token = keys
            .issuer
            .issue(&claims)
            .map_err(|e| Status::internal(format!("signing the token: {e}")))?;
        let (e2ee_credential, e2ee_verification_keys) = if req.e2ee_signature_key.is_empty() {
            (String::new(), None)
        } else {
            let credential = E2eeCredential::new(
                &identity,
                &display_name,
                &meeting.id,
                caller.is_none(),
                &req.e2ee_signature_key,
                self.0.config.token_ttl(),
            );
            let signed = keys
                .issuer
                .issue_credential(&credential)
                .map_err(|e| Status::internal(format!("signing the credential: {e}")))?;
            (signed, Some(super::keys_to_api(&keys)))
        };
        self.0.metrics.grants.inc();
        tracing::info!(
            meeting = %meeting.id,
            %identity,
            relay = %relay.relay_id,
            avoided = ?req.avoid_relay_ids,
            "join granted"
        );
        Ok(Response::new(JoinGrant {
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
            identity,
            display_name,
            publish: grants.publish,
            subscribe: grants.subscribe,
            admin: grants.admin,
            e2ee_required: meeting.e2ee_required,
            e2ee_credential,
            e2ee_verification_keys,
        }))
    }

    async fn list_participants(
        &self,
        request: Request<ListParticipantsRequest>,
    ) -> Result<Response<ListParticipantsResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::meeting_id("meeting_id", &req.meeting_id)?;
        let caller = require(caller)?;
        let meeting = self.load(&req.meeting_id).await?;
        if !may_see(&caller, &meeting) {
            return Err(Status::permission_denied("this meeting is private"));
        }
        let live = self
            .0
            .store
            .live_participants(&meeting.id, self.0.fresh_since_ms())
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListParticipantsResponse {
            participants: live
                .into_iter()
                .map(|p| LiveParticipant {
                    participant_id: p.participant_id,
                    identity: p.identity,
                    display_name: p.display_name,
                    relay_id: p.relay_id,
                    joined_at_ms: p.joined_at_ms,
                })
                .collect(),
        }))
    }
}
