//! The operator's client of the control plane: relay loads and drains for autoscaling,
//! meetings for `Meeting` resources. Authenticated with an admin API key.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::{
    CreateMeetingRequest, DeleteMeetingRequest, DrainRelayRequest, EndMeetingRequest,
    GetMeetingRequest, ListRelaysRequest, Meeting, RelayStatus, UpdateMeetingRequest,
};

/// Why the control-plane client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not usable.
    #[error("control-plane URL {0:?}: {1}")]
    Url(String, String),
    /// The API key is not `key-id:secret`.
    #[error("control-plane API key: expected key-id:secret")]
    ApiKey,
}

/// A connection (made lazily) to the control plane.
#[derive(Clone)]
pub struct ControlPlaneClient {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
}

impl ControlPlaneClient {
    /// A client of `url` using the admin API key `key-id:secret`.
    pub fn new(url: &str, api_key: &str) -> Result<Self, ClientError> {
        let (id, secret) = api_key.trim().split_once(':').ok_or(ClientError::ApiKey)?;
        let authorization = videocall_control_api::api_key_authorization(id, secret)
            .parse()
            .map_err(|_| ClientError::ApiKey)?;
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ClientError::Url(url.to_owned(), e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(ControlPlaneClient {
            channel,
            authorization,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// Every registered relay with its load.
    pub async fn relays(&self) -> Result<Vec<RelayStatus>, Status> {
        let mut client = RelayServiceClient::new(self.channel.clone());
        Ok(client
            .list_relays(self.request(ListRelaysRequest {}))
            .await?
            .into_inner()
            .relays)
    }

    /// Asks `relay_id` to drain (it hears on its next heartbeat).
    pub async fn drain(&self, relay_id: &str) -> Result<(), Status> {
        let mut client = RelayServiceClient::new(self.channel.clone());
        client
            .drain_relay(self.request(DrainRelayRequest {
                relay_id: relay_id.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// The meeting `id`, if it exists.
    pub async fn meeting(&self, id: &str) -> Result<Option<Meeting>, Status> {
        let mut client = MeetingServiceClient::new(self.channel.clone());
        match client
            .get_meeting(self.request(GetMeetingRequest { id: id.to_owned() }))
            .await
        {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// Creates a meeting.
    pub async fn create_meeting(&self, request: CreateMeetingRequest) -> Result<Meeting, Status> {
        let mut client = MeetingServiceClient::new(self.channel.clone());
        Ok(client
            .create_meeting(self.request(request))
            .await?
            .into_inner())
    }

    /// Updates a meeting.
    pub async fn update_meeting(&self, request: UpdateMeetingRequest) -> Result<Meeting, Status> {
        let mut client = MeetingServiceClient::new(self.channel.clone());
        Ok(client
            .update_meeting(self.request(request))
            .await?
            .into_inner())
    }

    /// Ends a meeting (everyone is disconnected).
    pub async fn end_meeting(&self, id: &str) -> Result<Meeting, Status> {
        let mut client = MeetingServiceClient::new(self.channel.clone());
        Ok(client
            .end_meeting(self.request(EndMeetingRequest { id: id.to_owned() }))
            .await?
            .into_inner())
    }

    /// Ends and removes a meeting; a meeting that is already gone is fine.
    pub async fn delete_meeting(&self, id: &str) -> Result<(), Status> {
        let mut client = MeetingServiceClient::new(self.channel.clone());
        match client
            .delete_meeting(self.request(DeleteMeetingRequest { id: id.to_owned() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(status),
        }
    }
}
