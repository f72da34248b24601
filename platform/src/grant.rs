//! Getting a join grant from the control plane: as a signed-in user, or as a guest.

use anyhow::Context;
use tonic::Request;
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{JoinGrant, JoinMeetingRequest, LoginRequest};

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
    let grant = MeetingServiceClient::new(channel)
        .join_meeting(request)
        .await
        .map_err(|s| anyhow::anyhow!("joining {meeting}: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(grant)
}
