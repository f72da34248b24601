//! The relay's side of the control plane: register, heartbeat load and who is connected,
//! keep token verification keys current, and act on what the answers say (drain, meetings
//! that ended). The relay keeps serving when the control plane is away; it retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::{
    GetVerificationKeysRequest, HeartbeatRequest, LiveParticipant, MeetingLoad,
    RegisterRelayRequest, RelayEndpoints, VerificationKeys,
};
use videocall_token::TokenVerifier;

use crate::info::RelayInfo;
use crate::state::RelayState;

/// Longest wait between retries while the control plane is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Heartbeat interval until the control plane says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

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
        let request = self.request(HeartbeatRequest {
            relay_id: self.info.relay_id.clone(),
            participants,
            meetings: meetings.len() as u32,
            bitrate_bps,
            draining: self.state.is_draining(),
            meeting_loads,
        });
        let response = self.client.heartbeat(request).await?.into_inner();
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
