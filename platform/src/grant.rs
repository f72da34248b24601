//! Getting a join grant from the control plane: as a signed-in user, or as a guest; where
//! the meeting's waiting room takes the caller, after a host lets them in.

use anyhow::Context;
use tonic::Request;
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{
    AdmissionState, CheckAdmissionRequest, JoinGrant, JoinMeetingRequest, LoginRequest,
};

/// Who asks for the grant.
#[derive(Debug, Clone, clap::Args)]
pub struct Identity {
    /// Display name (a guest), or the username to sign in as with `--password`.
    #[arg(long, default_value = "alice")]
    pub user: String,
    /// Sign in as `--user` with this password instead of joining as a guest.
    #[arg(long, env = "VIDEOCALL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// A grant for `meeting` from the control plane at `api_url`; with `e2ee_signature_key` (the
/// public half of the participant's end-to-end encryption key) it carries the credential that
/// binds the key to the participant.
pub async fn join(
    api_url: &str,
    meeting: &str,
    who: &Identity,
    receive_only: bool,
    e2ee_signature_key: Vec<u8>,
) -> anyhow::Result<JoinGrant> {
    let channel = tonic::transport::Endpoint::from_shared(api_url.to_owned())
        .context("control-plane URL")?
        .connect()
        .await
        .with_context(|| format!("connecting to the control plane at {api_url}"))?;
    let mut request = Request::new(JoinMeetingRequest {
        meeting_id: meeting.to_owned(),
        display_name: who.user.clone(),
        password: String::new(),
        receive_only,
        avoid_relay_ids: Vec::new(),
        e2ee_signature_key,
        admission_ticket: String::new(),
    });
    if let Some(password) = &who.password {
        let login = AuthServiceClient::new(channel.clone())
            .login(LoginRequest {
                username: who.user.clone(),
                password: password.clone(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("signing in as {}: {}", who.user, s.message()))?
            .into_inner();
        let value = videocall_control_api::bearer_authorization(&login.session_token);
        request
            .metadata_mut()
            .insert("authorization", value.parse().context("session token")?);
    }
    let mut meetings = MeetingServiceClient::new(channel);
    let grant = meetings
        .join_meeting(request)
        .await
        .map_err(|s| anyhow::anyhow!("joining {meeting}: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    match grant.waiting {
        Some(waiting) => wait_for_admission(&mut meetings, meeting, &waiting.ticket).await,
        None => Ok(grant),
    }
}

/// Asks once a second whether a host let this waiter in (the grant) or turned it away.
async fn wait_for_admission(
    meetings: &mut MeetingServiceClient<tonic::transport::Channel>,
    meeting: &str,
    ticket: &str,
) -> anyhow::Result<JoinGrant> {
    let mut told = 0;
    loop {
        let admission = meetings
            .check_admission(CheckAdmissionRequest {
                meeting_id: meeting.to_owned(),
                ticket: ticket.to_owned(),
                avoid_relay_ids: Vec::new(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("waiting to join {meeting}: {}", s.message()))?
            .into_inner();
        match AdmissionState::try_from(admission.state) {
            Ok(AdmissionState::Admitted) => {
                return admission
                    .grant
                    .context("the control plane admitted without a grant")
            }
            Ok(AdmissionState::Rejected) => {
                anyhow::bail!(
                    "a host did not let you into {meeting}: {}",
                    admission.reason
                )
            }
            _ if admission.position != told => {
                told = admission.position;
                eprintln!("waiting for a host to let you into {meeting} (number {told} in line)");
            }
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
