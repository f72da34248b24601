//! The relay's side of the control plane: register, heartbeat load and who is connected
//! (with their roles) and what hosts did here, keep token verification keys current, and act
//! on what the answers say (drain, meetings that ended, host actions from the API). The relay
//! keeps serving when the control plane is away; it retries.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::{
    self as api, moderate_meeting_request, GetVerificationKeysRequest, HeartbeatRequest,
    HostActionRecord, LiveParticipant, MeetingLoad, MeetingRole, RegisterRelayRequest,
    RelayCommand, RelayEndpoints, VerificationKeys,
};
use videocall_protocol::wire::{self, host_action::Action, MediaKind};
use videocall_token::{Role, TokenVerifier};

use crate::core::{act_for_control_plane, HostActionReport, Now};
use crate::info::RelayInfo;
use crate::state::RelayState;

/// Longest wait between retries while the control plane is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Heartbeat interval until the control plane says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Command ids remembered as done (the control plane sends a command again until it hears
/// it was done; one sent again is not carried out twice).
const REMEMBERED_COMMANDS: usize = 1024;

/// Why the control-plane link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The URL is not usable.
    #[error("control-plane URL {0:?}: {1}")]
    Url(String, String),
    /// The API key is not `key-id:secret`.
    #[error("control-plane API key: expected key-id:secret")]
    ApiKey,
}

/// Talks to the control plane for one relay.
pub struct ControlPlaneLink {
    client: RelayServiceClient<Channel>,
    authorization: MetadataValue<tonic::metadata::Ascii>,
    state: Arc<RelayState>,
    info: RelayInfo,
    keys_version: String,
    last_bytes_in: (Instant, u64),
    /// Commands carried out since the last heartbeat that got through.
    done: Vec<String>,
    /// The last commands carried out, oldest first.
    remembered: VecDeque<String>,
}

impl ControlPlaneLink {
    /// A link to `url` authenticated by `api_key` (`key-id:secret`). Connects lazily.
    pub fn new(
        url: &str,
        api_key: &str,
        state: Arc<RelayState>,
        info: RelayInfo,
    ) -> Result<Self, LinkError> {
        let (id, secret) = api_key.split_once(':').ok_or(LinkError::ApiKey)?;
        let authorization = videocall_control_api::api_key_authorization(id, secret)
            .parse()
            .map_err(|_| LinkError::ApiKey)?;
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|e| LinkError::Url(url.to_owned(), e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let bytes = state.metrics().bytes_in_total();
        Ok(ControlPlaneLink {
            client: RelayServiceClient::new(channel),
            authorization,
            state,
            info,
            keys_version: String::new(),
            last_bytes_in: (Instant::now(), bytes),
            done: Vec::new(),
            remembered: VecDeque::new(),
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// Registers, then heartbeats until the relay stops.
    pub async fn run(mut self) {
        let shutdown = self.state.shutdown.clone();
        let mut backoff = Duration::from_millis(250);
        loop {
            let interval = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.register() => match result {
                    Ok(interval) => interval,
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), message = status.message(), "control plane: registration failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            };
            backoff = Duration::from_millis(250);
            tracing::info!(
                interval_ms = interval.as_millis() as u64,
                "registered with the control plane"
            );
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                match self.heartbeat().await {
                    Ok(()) => {}
                    Err(status) if status.code() == Code::NotFound => {
                        tracing::warn!("control plane forgot this relay: registering again");
                        break;
                    }
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), message = status.message(), "control plane: heartbeat failed");
                    }
                }
            }
        }
    }

    async fn register(&mut self) -> Result<Duration, tonic::Status> {
        let info = &self.info;
        let certificate_sha256 = if info.self_signed {
            vec![info.certificate_sha256.clone()]
        } else {
            Vec::new()
        };
        let request = self.request(RegisterRelayRequest {
            endpoints: Some(RelayEndpoints {
                relay_id: info.relay_id.clone(),
                webtransport_url: info.webtransport_url.clone(),
                websocket_url: info.websocket_url.clone(),
                certificate_sha256,
            }),
            capacity_participants: self.state.config().capacity_participants.max(1),
            admin_url: info.admin_url.clone(),
        });
        let response = self.client.register_relay(request).await?.into_inner();
        if let Some(keys) = response.keys {
            self.install_keys(keys);
        }
        Ok(match response.heartbeat_interval_ms {
            0 => DEFAULT_INTERVAL,
            ms => Duration::from_millis(u64::from(ms)),
        })
    }

    async fn heartbeat(&mut self) -> Result<(), tonic::Status> {
        let meetings = self.state.core.meetings.all();
        let mut participants = 0u32;
        let meeting_loads = meetings
            .iter()
            .map(|meeting| {
                let people = meeting.local_participants();
                participants += people.len() as u32;
                MeetingLoad {
                    meeting_id: meeting.id.clone(),
                    participants: people
                        .iter()
                        .map(|p| LiveParticipant {
                            participant_id: p.id,
                            identity: p.user.clone(),
                            display_name: p.display_name(),
                            relay_id: String::new(),
                            joined_at_ms: p.joined_at_unix_ms,
                            role: role_to_api(p.role()) as i32,
                        })
                        .collect(),
                }
            })
            .collect();
        let now = Instant::now();
        let bytes = self.state.metrics().bytes_in_total();
        let (then, before) = self.last_bytes_in;
        let secs = now.duration_since(then).as_secs_f64().max(0.001);
        let bitrate_bps = (bytes.saturating_sub(before) as f64 * 8.0 / secs) as u64;
        self.last_bytes_in = (now, bytes);
        let reports = self.state.core.host_actions.take();
        let request = self.request(HeartbeatRequest {
            relay_id: self.info.relay_id.clone(),
            participants,
            meetings: meetings.len() as u32,
            bitrate_bps,
            draining: self.state.is_draining(),
            meeting_loads,
            host_actions: reports.iter().map(report_to_api).collect(),
            done_command_ids: self.done.clone(),
        });
        let response = match self.client.heartbeat(request).await {
            Ok(response) => response.into_inner(),
            // Reports the control plane refuses as malformed would be refused again: dropped
            // (and said); anything else is passing, and they go with the next heartbeat.
            Err(status) if status.code() == Code::InvalidArgument && !reports.is_empty() => {
                tracing::warn!(
                    dropped = reports.len(),
                    message = status.message(),
                    "control plane refused this relay's host action reports; dropping them"
                );
                return Err(status);
            }
            Err(status) => {
                self.state.core.host_actions.put_back(reports);
                return Err(status);
            }
        };
        self.done.clear();
        for command in response.commands {
            self.carry_out(command);
        }
        if response.drain && self.state.start_drain() {
            tracing::info!("control plane asked this relay to drain");
        }
        let ended: HashMap<String, u64> = response
            .ended_meetings
            .into_iter()
            .map(|m| (m.meeting_id, u64::try_from(m.ended_at_secs).unwrap_or(0)))
            .collect();
        let closed = self.state.core.end_meetings(ended);
        if closed > 0 {
            tracing::info!(
                participants = closed,
                "disconnected participants of ended meetings"
            );
        }
        if response.keys_version != self.keys_version {
            let request = self.request(GetVerificationKeysRequest {});
            let keys = self
                .client
                .get_verification_keys(request)
                .await?
                .into_inner();
            self.install_keys(keys);
        }
        Ok(())
    }

    /// Carries out a host action from the API, once however often it is sent.
    fn carry_out(&mut self, command: RelayCommand) {
        if !self.remembered.contains(&command.id) {
            let Some(request) = command.action else {
                return;
            };
            match request.action.and_then(wire_action) {
                Some(action) => {
                    let done = act_for_control_plane(
                        &self.state.core,
                        &request.meeting_id,
                        action,
                        Now::system(),
                    );
                    if !done {
                        tracing::info!(command = %command.id, meeting = %request.meeting_id, "host action from the control plane: the meeting or participant is not here");
                    }
                }
                None => {
                    tracing::warn!(command = %command.id, "host action from the control plane this relay does not know")
                }
            }
            if self.remembered.len() >= REMEMBERED_COMMANDS {
                self.remembered.pop_front();
            }
            self.remembered.push_back(command.id.clone());
        }
        self.done.push(command.id);
    }

    fn install_keys(&mut self, keys: VerificationKeys) {
        // Keys given on the command line stay trusted beside the control plane's.
        let mut verifier = TokenVerifier::new();
        for spec in &self.state.config().token_keys {
            if let Err(error) = verifier.add_key_spec(spec) {
                tracing::warn!(%error, "ignoring a bad --token-key");
            }
        }
        for key in &keys.keys {
            if let Err(error) = verifier.add_key_base64(&key.kid, &key.public_key) {
                tracing::warn!(kid = %key.kid, %error, "control plane sent an unusable key");
            }
        }
        tracing::info!(keys = verifier.key_count(), version = %keys.version, "token verification keys updated");
        self.state.core.verifier.store(Arc::new(verifier));
        self.keys_version = keys.version;
    }
}

fn role_to_api(role: Role) -> MeetingRole {
    match role {
        Role::Host => MeetingRole::Host,
        Role::Cohost => MeetingRole::Cohost,
        Role::Participant => MeetingRole::Participant,
        Role::Guest => MeetingRole::Guest,
    }
}

fn report_to_api(report: &HostActionReport) -> HostActionRecord {
    HostActionRecord {
        at_ms: report.at_ms,
        meeting_id: report.meeting_id.clone(),
        by_identity: report.by_identity.clone(),
        by_display_name: report.by_display_name.clone(),
        action: report.action.to_owned(),
        target_identity: report.target_identity.clone(),
        target_display_name: report.target_display_name.clone(),
        detail: report.detail.clone(),
        via: "meeting".into(),
        ban: report.ban,
        locked: report.locked,
    }
}

fn media_to_wire(media: i32) -> Option<i32> {
    match api::HostMedia::try_from(media).ok()? {
        api::HostMedia::Audio => Some(MediaKind::Audio as i32),
        api::HostMedia::Video => Some(MediaKind::Video as i32),
        api::HostMedia::Unspecified => None,
    }
}

/// The wire's host action for one from the API (none for actions this relay cannot take).
fn wire_action(action: moderate_meeting_request::Action) -> Option<Action> {
    use moderate_meeting_request::Action as Api;
    Some(match action {
        Api::Mute(m) => Action::Mute(wire::MuteParticipant {
            participant_id: m.participant_id,
            kind: media_to_wire(m.media)?,
            disallow_unmute: m.disallow_unmute,
        }),
        Api::MuteAll(m) => Action::MuteAll(wire::MuteAll {
            disallow_unmute: m.disallow_unmute,
        }),
        Api::Remove(r) => Action::Remove(wire::RemoveParticipant {
            participant_id: r.participant_id,
            reason: r.reason,
            ban: r.ban,
        }),
        Api::Lock(l) => Action::Lock(wire::LockMeeting { locked: l.locked }),
        Api::SetRole(s) => Action::SetRole(wire::SetRole {
            participant_id: s.participant_id,
            role: match MeetingRole::try_from(s.role).ok()? {
                MeetingRole::Host => wire::Role::Host,
                MeetingRole::Cohost => wire::Role::Cohost,
                MeetingRole::Participant => wire::Role::Participant,
                MeetingRole::Guest | MeetingRole::Unspecified => return None,
            } as i32,
        }),
        Api::LowerHand(l) => Action::LowerHand(wire::LowerHand {
            participant_id: l.participant_id,
        }),
        Api::AskToUnmute(a) => Action::AskToUnmute(wire::AskToUnmute {
            participant_id: a.participant_id,
            kind: media_to_wire(a.media)?,
        }),
    })
}
