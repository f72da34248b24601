//! `RelayPool`: a set of relays the operator runs as a StatefulSet and scales on
//! participants.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pool of media relays.
// Several `printcolumn(...)` entries are intended; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "videocall.dev",
    version = "v1alpha1",
    kind = "RelayPool",
    namespaced,
    status = "RelayPoolStatus",
    shortname = "rp",
    category = "videocall",
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Draining", type_ = "integer", json_path = ".status.draining"),
    printcolumn(
        name = "Participants",
        type_ = "integer",
        json_path = ".status.participants"
    ),
    printcolumn(name = "Meetings", type_ = "integer", json_path = ".status.meetings"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RelayPoolSpec {
    /// Relay container image.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Fewest relays, even when idle.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,
    /// Most relays.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Participants one relay should carry.
    #[serde(default = "default_target")]
    #[schemars(range(min = 1, max = 100000))]
    pub target_participants_per_relay: i32,
    /// Free capacity to keep, in participants (used with `bufferPercent`, the larger wins).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub buffer_participants: i32,
    /// Free capacity to keep, as a percentage of current participants.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub buffer_percent: i32,
    /// How long load must stay low before a relay is removed, in seconds.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_delay_seconds: i64,
    /// How long a draining relay may keep live meetings before it is removed anyway, in
    /// seconds.
    #[serde(default = "default_drain_timeout")]
    #[schemars(range(min = 0, max = 86400))]
    pub drain_timeout_seconds: i64,
    /// Relay container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Relay ports.
    #[serde(default)]
    pub ports: RelayPorts,
    /// Host name clients reach relays by (in advertised URLs); per-pod names when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub public_host: Option<String>,
    /// The gateway clients reach the relays through; relays advertise its URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRef>,
    /// NATS for the inter-relay bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsRef>,
    /// The control plane the relays register with.
    pub control_plane: ControlPlaneRef,
}

/// Relay ports.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayPorts {
    /// WebTransport (UDP).
    #[serde(default = "default_webtransport_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub webtransport: i32,
    /// WebSocket (TCP).
    #[serde(default = "default_websocket_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub websocket: i32,
    /// Admin: metrics, health, drain (TCP).
    #[serde(default = "default_admin_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub admin: i32,
}

impl Default for RelayPorts {
    fn default() -> Self {
        RelayPorts {
            webtransport: default_webtransport_port(),
            websocket: default_websocket_port(),
            admin: default_admin_port(),
        }
    }
}

/// The public URLs of the relays behind a gateway; `{server_id}` is each relay's ordinal.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// WebTransport URL, e.g. `https://relay-{server_id}.meet.example.org/`: the server
    /// name tells the gateway which relay a new QUIC connection is for.
    #[schemars(length(min = 1, max = 2048), pattern(r"^https://[^/]*\{server_id\}"))]
    pub web_transport_url: String,
    /// WebSocket URL, e.g. `wss://meet.example.org/relay/{server_id}/ws`.
    #[schemars(length(min = 1, max = 2048), pattern(r"^wss?://.*\{server_id\}"))]
    pub web_socket_url: String,
}

/// Where NATS is.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsRef {
    /// `nats://host:port`.
    #[schemars(length(min = 1, max = 2048), pattern(r"^nats://"))]
    pub url: String,
    /// Secret holding NATS credentials (key `creds`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Where the control plane is, and the relays' credentials for it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneRef {
    /// Control-plane API URL, `http://host:port` (gRPC over h2c inside the cluster: neither the
    /// relays nor the operator speak TLS to the control plane).
    #[schemars(length(min = 1, max = 2048), pattern(r"^http://"))]
    pub url: String,
    /// Secret whose key `apiKey` holds the relays' API key (`key-id:secret`, role relay).
    #[schemars(length(min = 1, max = 253))]
    pub api_key_secret: String,
}

/// Observed state of a pool.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayPoolStatus {
    /// Relays the operator wants.
    #[serde(default)]
    pub desired_replicas: i32,
    /// Relays that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Relays ready to take participants.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Relays draining before removal.
    #[serde(default)]
    pub draining: i32,
    /// Participants on the pool.
    #[serde(default)]
    pub participants: i32,
    /// Meetings on the pool.
    #[serde(default)]
    pub meetings: i32,
    /// Load per relay.
    #[serde(default)]
    pub relays: Vec<RelayLoad>,
    /// Ready, Scaling, Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation these figures describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One relay's load.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayLoad {
    /// Relay (pod) name.
    pub name: String,
    /// Participants.
    pub participants: i32,
    /// Meetings.
    pub meetings: i32,
    /// Draining.
    pub draining: bool,
    /// Heartbeat is fresh.
    pub fresh: bool,
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    10
}
fn default_target() -> i32 {
    200
}
fn default_scale_down_delay() -> i64 {
    300
}
fn default_drain_timeout() -> i64 {
    300
}
fn default_webtransport_port() -> i32 {
    4433
}
fn default_websocket_port() -> i32 {
    8081
}
fn default_admin_port() -> i32 {
    9091
}
