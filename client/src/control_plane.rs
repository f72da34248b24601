//! Grants from the control plane: `MeetingService.JoinMeeting` over gRPC, naming the relays
//! to avoid after a loss; where the meeting has a waiting room, waiting (`CheckAdmission`
//! once a second) until a host lets the participant in, and rejoining with the ticket it was
//! admitted with.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{
    AdmissionState, CheckAdmissionRequest, JoinGrant, JoinMeetingRequest,
};
use videocall_e2ee::SigningKey;

use crate::member_seed::seed_from_grant;
use crate::rejoin::{Grant, GrantSource};
use crate::{ClientError, RelayAddress};

/// Joins `meeting_id` through the control plane at `api_url`.
#[derive(Clone)]
pub struct ControlPlaneGrants {
    api_url: String,
    meeting_id: String,
    display_name: String,
    authorization: Option<String>,
    receive_only: bool,
    channel: Option<Channel>,
    key: Option<SigningKey>,
    /// The ticket a host admitted this participant with (sent on every rejoin).
    admission_ticket: String,
}

/// How often a waiting participant asks whether it was let in.
const ADMISSION_POLL: Duration = Duration::from_secs(1);

impl ControlPlaneGrants {
    /// A guest (or, with [`Self::with_authorization`], a signed-in user) named
    /// `display_name`.
    pub fn new(api_url: &str, meeting_id: &str, display_name: &str) -> Self {
        ControlPlaneGrants {
            api_url: api_url.to_owned(),
            meeting_id: meeting_id.to_owned(),
            display_name: display_name.to_owned(),
            authorization: None,
            receive_only: false,
            channel: None,
            key: None,
            admission_ticket: String::new(),
        }
    }

    /// Sends this `authorization` header (`Bearer <session>`) with every request.
    pub fn with_authorization(mut self, authorization: &str) -> Self {
        self.authorization = Some(authorization.to_owned());
        self
    }

    /// Joins without publishing.
    pub fn receive_only(mut self, receive_only: bool) -> Self {
        self.receive_only = receive_only;
        self
    }

    async fn channel(&mut self) -> Result<Channel, ClientError> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let channel = connect(&self.api_url).await?;
        self.channel = Some(channel.clone());
        Ok(channel)
    }
}

/// A refusal from the control plane, to retry where it is passing.
fn refused(status: tonic::Status) -> ClientError {
    ClientError::GrantRefused {
        // No relay free yet, the database or the network briefly away: ask again.
        retry: matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal
        ),
        message: format!("{:?}: {}", status.code(), status.message()),
    }
}

impl ControlPlaneGrants {
    /// Asks once a second until a host lets this participant in (the grant) or turns it away.
    async fn wait_for_admission(
        &mut self,
        client: &mut MeetingServiceClient<Channel>,
        ticket: String,
        avoid: &[String],
    ) -> Result<JoinGrant, ClientError> {
        let mut told = 0;
        loop {
            let admission = client
                .check_admission(CheckAdmissionRequest {
                    meeting_id: self.meeting_id.clone(),
                    ticket: ticket.clone(),
                    avoid_relay_ids: avoid.to_vec(),
                })
                .await
                .map_err(refused)?
                .into_inner();
            match AdmissionState::try_from(admission.state) {
                Ok(AdmissionState::Admitted) => {
                    let grant = admission.grant.ok_or_else(|| ClientError::GrantRefused {
                        message: "admitted without a grant".into(),
                        retry: true,
                    })?;
                    tracing::info!(meeting = %self.meeting_id, "a host let you in");
                    self.admission_ticket = ticket;
                    return Ok(grant);
                }
                Ok(AdmissionState::Rejected) => {
                    let why = if admission.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", admission.reason)
                    };
                    return Err(ClientError::GrantRefused {
                        message: format!("a host did not let you in{why}"),
                        retry: false,
                    });
                }
                _ => {
                    if admission.position != told {
                        told = admission.position;
                        tracing::info!(meeting = %self.meeting_id, position = told, "waiting for a host to let you in");
                    }
                }
            }
            tokio::time::sleep(ADMISSION_POLL).await;
        }
    }
}

impl GrantSource for ControlPlaneGrants {
    async fn grant(&mut self, avoid: &[String]) -> Result<Grant, ClientError> {
        let channel = self.channel().await?;
        // The key of the participant's end-to-end encryption, the same on every rejoin: sent
        // with every request, so an encrypted meeting's grant carries its credential.
        let key = match &self.key {
            Some(key) => key.clone(),
            None => {
                let key = SigningKey::generate()?;
                self.key = Some(key.clone());
                key
            }
        };
        let mut request = Request::new(JoinMeetingRequest {
            e2ee_signature_key: key.public(),
            meeting_id: self.meeting_id.clone(),
            display_name: self.display_name.clone(),
            receive_only: self.receive_only,
            avoid_relay_ids: avoid.to_vec(),
            admission_ticket: self.admission_ticket.clone(),
            ..Default::default()
        });
        if let Some(value) = self.authorization.as_deref().and_then(|a| a.parse().ok()) {
            request.metadata_mut().insert("authorization", value);
        }
        let mut client = MeetingServiceClient::new(channel);
        let mut grant = client
            .join_meeting(request)
            .await
            .map_err(refused)?
            .into_inner();
        if let Some(waiting) = grant.waiting.take() {
            grant = self
                .wait_for_admission(&mut client, waiting.ticket, avoid)
                .await?;
        }
        let encryption = if grant.e2ee_required {
            Some(seed_from_grant(key, &grant)?)
        } else {
            None
        };
        let relay = grant.relay.ok_or_else(|| ClientError::GrantRefused {
            message: "a grant without a relay".into(),
            retry: true,
        })?;
        Ok(Grant {
            encryption,
            relay_id: relay.relay_id,
            relay: RelayAddress {
                webtransport_url: relay.webtransport_url,
                websocket_url: relay.websocket_url,
                certificate_sha256: relay.certificate_sha256.first().cloned(),
            },
            meeting_id: grant.meeting_id,
            token: grant.token,
        })
    }
}

/// Signs in as `username` at the control plane at `api_url`; the `authorization` header value
/// for [`ControlPlaneGrants::with_authorization`].
pub async fn login(api_url: &str, username: &str, password: &str) -> Result<String, ClientError> {
    let channel = connect(api_url).await?;
    let login = videocall_control_api::v1::auth_service_client::AuthServiceClient::new(channel)
        .login(videocall_control_api::v1::LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        })
        .await
        .map_err(|status| ClientError::GrantRefused {
            retry: matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            message: format!("signing in as {username}: {}", status.message()),
        })?
        .into_inner();
    Ok(videocall_control_api::bearer_authorization(
        &login.session_token,
    ))
}

/// A gRPC channel to the control plane at `api_url`.
async fn connect(api_url: &str) -> Result<Channel, ClientError> {
    Endpoint::from_shared(api_url.to_owned())
        .map_err(|e| ClientError::Connect(format!("control-plane URL: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| ClientError::Connect(format!("control plane: {e}")))
}
