//! `Meeting`: a meeting declared with `kubectl apply`, mirrored into the control plane.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A meeting.
// Several `printcolumn(...)` entries are intended; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "videocall.dev",
    version = "v1alpha1",
    kind = "Meeting",
    namespaced,
    status = "MeetingStatus",
    shortname = "mtg",
    category = "videocall",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Participants",
        type_ = "integer",
        json_path = ".status.participants"
    ),
    printcolumn(name = "Waiting", type_ = "integer", json_path = ".status.waiting"),
    printcolumn(name = "Locked", type_ = "boolean", json_path = ".status.locked"),
    printcolumn(name = "Relays", type_ = "string", json_path = ".status.relays"),
    printcolumn(name = "Join URL", type_ = "string", json_path = ".status.joinUrl"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MeetingSpec {
    /// Title shown to participants.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub title: String,
    /// The RelayPool (same namespace) that hosts it.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub relay_pool: String,
    /// Who may join.
    #[serde(default)]
    pub access: MeetingAccess,
    /// Usernames allowed into a private meeting.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub allowed_users: Vec<String>,
    /// Usernames who host the meeting besides its owner (mute, remove, lock, end for all).
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub hosts: Vec<String>,
    /// Guests (a display name only) may join (a Private meeting's only through its waiting
    /// room).
    #[serde(default)]
    pub guests_allowed: bool,
    /// Who waits until a host lets them in; unset: guests of a Private meeting wait, nobody
    /// else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<MeetingWaitingRoom>,
    /// Locks (true) or unlocks (false) the meeting: nobody new gets in. Hosts in the meeting
    /// may change it; the operator sets it again only when this field changes. Unset: left
    /// to the hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// Participant limit.
    #[serde(default = "default_max_participants")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_participants: i32,
    /// Media and chat are encrypted end to end (an MLS group per meeting, SFrame frames):
    /// the relays forward only sealed media and chat, and only clients that encrypt are
    /// granted a join (the browser client does not encrypt yet and is refused).
    #[serde(default)]
    pub e2ee_required: bool,
    /// When it opens (RFC 3339); at once when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the operator ends it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
}

/// Who may join a meeting.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
pub enum MeetingAccess {
    /// Anyone signed in (and guests where allowed).
    #[default]
    Public,
    /// The allow-list only.
    Private,
}

/// Who waits in a meeting's waiting room.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum MeetingWaitingRoom {
    /// Nobody waits (a Private meeting then refuses guests).
    Off,
    /// Guests wait.
    Guests,
    /// Everyone but the hosts waits.
    Everyone,
}

/// Where a meeting is in its life.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
pub enum MeetingPhase {
    /// Not yet in the control plane (or waiting for its start time).
    #[default]
    Pending,
    /// Open for joins; nobody connected.
    Ready,
    /// Participants connected.
    Live,
    /// Ended.
    Ended,
}

/// Observed state of a meeting.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingStatus {
    /// Life-cycle phase.
    #[serde(default)]
    pub phase: MeetingPhase,
    /// The meeting's id in the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    /// Participants connected now.
    #[serde(default)]
    pub participants: i32,
    /// Relays hosting it.
    #[serde(default)]
    pub relays: Vec<String>,
    /// People in its waiting room now.
    #[serde(default)]
    pub waiting: i32,
    /// Whether it is locked now (by the spec or by a host).
    #[serde(default)]
    pub locked: bool,
    /// The spec's `locked` the operator last applied (it applies it again only when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_locked: Option<bool>,
    /// Where people join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
    /// Ready, Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn default_max_participants() -> i32 {
    100
}
