//! `MeetingService`: meetings, join grants, live participants.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use tonic::{Request, Response, Status};
use videocall_control_api::v1::meeting_service_server::MeetingService;
use videocall_control_api::v1::*;
use videocall_token::Role;

use super::access::{may_manage, may_see};
use super::grant::{self, GrantRequest};
use super::{peer_key, store_status, ControlPlane};
use crate::admission::{self, Applicant, Door, Entry, Refusal};
use crate::auth::{
    authenticate, hash_password, random_hex, random_token, require, sha256_hex, verify_password,
    Principal,
};
use crate::store::{
    self, now_ms, MeetingFilter, MeetingRecord, MeetingUpdate, NewMeeting, NewWaiter, StateFilter,
    WaiterState,
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

fn waiting_room_from_api(value: i32, field: &str) -> Result<store::WaitingRoom, Status> {
    match WaitingRoom::try_from(value) {
        Ok(WaitingRoom::Unspecified) => Ok(store::WaitingRoom::Default),
        Ok(WaitingRoom::Off) => Ok(store::WaitingRoom::Off),
        Ok(WaitingRoom::Guests) => Ok(store::WaitingRoom::Guests),
        Ok(WaitingRoom::Everyone) => Ok(store::WaitingRoom::Everyone),
        Err(_) => Err(validate::invalid(field, "unknown waiting room")),
    }
}

fn waiting_room_to_api(value: store::WaitingRoom) -> WaitingRoom {
    match value {
        store::WaitingRoom::Default => WaitingRoom::Unspecified,
        store::WaitingRoom::Off => WaitingRoom::Off,
        store::WaitingRoom::Guests => WaitingRoom::Guests,
        store::WaitingRoom::Everyone => WaitingRoom::Everyone,
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
        let waiting = self
            .0
            .store
            .waiting_counts(
                std::slice::from_ref(&meeting.id),
                self.0.waiters_seen_since_ms(),
            )
            .await
            .map_err(store_status)?
            .first()
            .map_or(0, |(_, n)| *n);
        Ok(meeting_to_api(meeting, live.len(), relays, waiting))
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

fn meeting_to_api(
    meeting: &MeetingRecord,
    participants: usize,
    relay_ids: Vec<String>,
    waiting: u32,
) -> Meeting {
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
        waiting_room: waiting_room_to_api(meeting.waiting_room) as i32,
        locked: meeting.locked,
        waiting,
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
        let waiting_room = waiting_room_from_api(req.waiting_room, "waiting_room")?;
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
            waiting_room,
            locked: req.locked,
        };
        let created = self
            .0
            .store
            .create_meeting(&meeting, now_ms())
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %created.id, owner = %created.owner, "meeting created");
        Ok(Response::new(meeting_to_api(&created, 0, Vec::new(), 0)))
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
        let waiting = self
            .0
            .store
            .waiting_counts(&ids, self.0.waiters_seen_since_ms())
            .await
            .map_err(store_status)?;
        let meetings = records
            .iter()
            .map(|m| {
                let mine: Vec<_> = hosts.iter().filter(|(id, _, _)| id == &m.id).collect();
                let count: i64 = mine.iter().map(|(_, _, n)| n).sum();
                let relays = mine.iter().map(|(_, r, _)| r.clone()).collect();
                let waiting = waiting
                    .iter()
                    .find(|(id, _)| id == &m.id)
                    .map_or(0, |(_, n)| *n);
                meeting_to_api(m, usize::try_from(count).unwrap_or(0), relays, waiting)
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
        let waiting_room = req
            .waiting_room
            .map(|w| waiting_room_from_api(w, "waiting_room"))
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
            waiting_room,
            // A lock is a host action (below): recorded and carried out by the relays.
            locked: None,
        };
        let updated = self
            .0
            .store
            .update_meeting(&req.id, &update)
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %updated.id, by = %caller.name, "meeting updated");
        let updated = match req.locked {
            Some(locked) if locked != updated.locked => {
                super::host_log::lock(&self.0, &updated.id, locked, &caller).await?;
                self.load(&updated.id).await?
            }
            _ => updated,
        };
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
        let record =
            super::host_log::entry(&self.0, &ended.id, &caller, "end", ("", ""), String::new())
                .await?;
        self.0
            .store
            .record_host_actions(&[record])
            .await
            .map_err(store_status)?;
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
        // A guest names itself, unless it comes back with the ticket it was admitted with.
        validate::display_name(
            "display_name",
            &req.display_name,
            caller.is_none() && req.admission_ticket.is_empty(),
        )?;
        if req.password.len() > validate::MAX_PASSWORD * 4 {
            return Err(validate::invalid("password", "too long"));
        }
        validate::avoid_relay_ids("avoid_relay_ids", &req.avoid_relay_ids)?;
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
            // Guests of private meetings get in only through the waiting room (below).
            None if !meeting.guests_allowed => {
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
        // Coming back with an admitted ticket: the same identity, without waiting again.
        let ticket = if req.admission_ticket.is_empty() {
            None
        } else {
            validate::ticket("admission_ticket", &req.admission_ticket)?;
            let waiter = self
                .0
                .store
                .waiter_by_ticket(&meeting.id, &sha256_hex(&req.admission_ticket), now_ms())
                .await
                .map_err(store_status)?
                .filter(|w| w.state == WaiterState::Admitted)
                .filter(|w| caller.as_ref().is_none_or(|c| c.name == w.waiter.identity))
                .ok_or_else(|| {
                    Status::permission_denied(
                        "admission_ticket: not a ticket a host admitted to this meeting",
                    )
                })?;
            Some(waiter)
        };
        let (identity, display_name) = match (&caller, &ticket) {
            (_, Some(admitted)) => (
                admitted.waiter.identity.clone(),
                if req.display_name.trim().is_empty() {
                    admitted.waiter.display_name.clone()
                } else {
                    req.display_name.trim().to_owned()
                },
            ),
            (Some(c), None) => {
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
            (None, None) => (
                format!("guest-{}", random_hex(6)),
                req.display_name.trim().to_owned(),
            ),
        };
        let store = &self.0.store;
        // Named hosts and bans in one statement; a guest new to the meeting (a fresh identity)
        // can be neither.
        let (named_host, banned) = if caller.is_some() || ticket.is_some() {
            store
                .standing_in(&meeting.id, &identity)
                .await
                .map_err(store_status)?
        } else {
            (false, false)
        };
        // Hosts: the owner, admins and the users the meeting names; a guest is always one.
        let role = match &caller {
            _ if privileged => Role::Host,
            None => Role::Guest,
            Some(_) if named_host => Role::Host,
            Some(_) => Role::Participant,
        };
        let applicant = Applicant {
            guest: caller.is_none(),
            host: role == Role::Host,
            // Those who manage the meeting are never kept out of it.
            banned: !privileged && banned,
            seated: meeting.locked
                && store
                    .has_seat(&meeting.id, &identity)
                    .await
                    .map_err(store_status)?,
            admitted: ticket.is_some(),
        };
        let door = Door {
            access: meeting.access,
            waiting_room: meeting.waiting_room,
            locked: meeting.locked,
        };
        match admission::decide(door, applicant) {
            Entry::Join => {}
            Entry::Refused(refusal) => {
                tracing::info!(meeting = %meeting.id, %identity, ?refusal, "join refused");
                return Err(match refusal {
                    Refusal::Locked => Status::failed_precondition(refusal.message()),
                    Refusal::GuestsWaitOnly => Status::unauthenticated(refusal.message()),
                    Refusal::Banned => Status::permission_denied(refusal.message()),
                });
            }
            Entry::Wait => {
                let secret = random_token(24);
                let waiter = NewWaiter {
                    id: format!("w-{}", random_hex(6)),
                    ticket_hash: sha256_hex(&secret),
                    meeting_id: meeting.id.clone(),
                    identity: identity.clone(),
                    display_name: display_name.clone(),
                    guest: caller.is_none(),
                    receive_only: req.receive_only,
                    e2ee_signature_key: STANDARD.encode(&req.e2ee_signature_key),
                };
                let now = now_ms();
                store
                    .add_waiter(
                        &waiter,
                        now,
                        self.0.waiters_seen_since_ms(),
                        self.0.config.max_waiting_per_meeting,
                    )
                    .await
                    .map_err(|e| match e {
                        store::StoreError::Full(_) => Status::resource_exhausted(
                            "the meeting's waiting room is full; try again later",
                        ),
                        other => store_status(other),
                    })?;
                let ahead = store
                    .waiters_ahead(&meeting.id, now, &waiter.id, self.0.waiters_seen_since_ms())
                    .await
                    .map_err(store_status)?;
                tracing::info!(meeting = %meeting.id, %identity, waiter = %waiter.id, "waiting to be let in");
                return Ok(Response::new(JoinGrant {
                    meeting_id: meeting.id.clone(),
                    identity,
                    display_name,
                    role: grant::role_to_api(role) as i32,
                    waiting: Some(WaitingTicket {
                        ticket: secret,
                        position: ahead.saturating_add(1),
                    }),
                    ..Default::default()
                }));
            }
        }
        let grant = grant::issue(
            &self.0,
            GrantRequest {
                meeting_id: &meeting.id,
                identity,
                display_name,
                role,
                guest: caller.is_none(),
                receive_only: req.receive_only,
                e2ee_signature_key: &req.e2ee_signature_key,
                avoid_relay_ids: &req.avoid_relay_ids,
                admission_ticket: if ticket.is_some() {
                    req.admission_ticket.clone()
                } else {
                    String::new()
                },
            },
        )
        .await?;
        Ok(Response::new(grant))
    }

    async fn check_admission(
        &self,
        request: Request<CheckAdmissionRequest>,
    ) -> Result<Response<Admission>, Status> {
        let req = request.into_inner();
        validate::meeting_id("meeting_id", &req.meeting_id)?;
        validate::ticket("ticket", &req.ticket)?;
        validate::avoid_relay_ids("avoid_relay_ids", &req.avoid_relay_ids)?;
        let store = &self.0.store;
        let waiter = store
            .waiter_by_ticket(&req.meeting_id, &sha256_hex(&req.ticket), now_ms())
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found("no such ticket for this meeting"))?;
        match waiter.state {
            WaiterState::Waiting => {
                let ahead = store
                    .waiters_ahead(
                        &req.meeting_id,
                        waiter.asked_at_ms,
                        &waiter.waiter.id,
                        self.0.waiters_seen_since_ms(),
                    )
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(Admission {
                    state: AdmissionState::Waiting as i32,
                    position: ahead.saturating_add(1),
                    ..Default::default()
                }))
            }
            WaiterState::Rejected => Ok(Response::new(Admission {
                state: AdmissionState::Rejected as i32,
                reason: waiter.reason,
                ..Default::default()
            })),
            WaiterState::Admitted => {
                let meeting = self.load(&req.meeting_id).await?;
                if meeting.ended_at_ms.is_some() {
                    return Err(Status::failed_precondition(format!(
                        "meeting {} has ended",
                        meeting.id
                    )));
                }
                let identity = waiter.waiter.identity.clone();
                let applicant = Applicant {
                    guest: waiter.waiter.guest,
                    banned: store
                        .is_banned(&meeting.id, &identity)
                        .await
                        .map_err(store_status)?,
                    seated: meeting.locked
                        && store
                            .has_seat(&meeting.id, &identity)
                            .await
                            .map_err(store_status)?,
                    admitted: true,
                    host: false,
                };
                let door = Door {
                    access: meeting.access,
                    waiting_room: meeting.waiting_room,
                    locked: meeting.locked,
                };
                if let Entry::Refused(refusal) = admission::decide(door, applicant) {
                    return Err(match refusal {
                        Refusal::Locked => Status::failed_precondition(refusal.message()),
                        _ => Status::permission_denied(refusal.message()),
                    });
                }
                let key = STANDARD
                    .decode(&waiter.waiter.e2ee_signature_key)
                    .unwrap_or_default();
                let grant = grant::issue(
                    &self.0,
                    GrantRequest {
                        meeting_id: &meeting.id,
                        identity,
                        display_name: waiter.waiter.display_name.clone(),
                        role: if waiter.waiter.guest {
                            Role::Guest
                        } else {
                            Role::Participant
                        },
                        guest: waiter.waiter.guest,
                        receive_only: waiter.waiter.receive_only,
                        e2ee_signature_key: &key,
                        avoid_relay_ids: &req.avoid_relay_ids,
                        admission_ticket: req.ticket.clone(),
                    },
                )
                .await?;
                Ok(Response::new(Admission {
                    state: AdmissionState::Admitted as i32,
                    grant: Some(grant),
                    ..Default::default()
                }))
            }
        }
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
                    role: grant::role_to_api(crate::moderation::role_from_report(&p.role)) as i32,
                })
                .collect(),
        }))
    }
}
