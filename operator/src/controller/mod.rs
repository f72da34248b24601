//! The reconcilers, in the style of kube-rs's `controller-rs`: `reconcile` reads the world,
//! decides with pure functions (`scaling`, `resources`), writes the result and its status;
//! `error_policy` requeues with backoff.

pub mod meeting;
pub mod relay_pool;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Code;

use crate::control_plane::ControlPlaneClient;

/// Name the operator applies objects and writes events under.
pub const MANAGER: &str = "videocall-operator";

/// Why a reconcile failed; all of these are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The control plane failed or refused.
    #[error("control plane: {}: {}", .0.code(), .0.message())]
    ControlPlane(#[from] tonic::Status),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The object has no namespace.
    #[error("{0} has no namespace")]
    NoNamespace(String),
}

impl Error {
    /// The reason a condition and a Warning Event give for this failure (CamelCase).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(error) => kube_reason(error),
            Error::ControlPlane(status) => match status.code() {
                Code::Unavailable | Code::DeadlineExceeded => "ControlPlaneUnavailable",
                Code::Unauthenticated | Code::PermissionDenied => "ControlPlaneRefused",
                Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
                    "ControlPlaneRejected"
                }
                _ => "ControlPlaneError",
            },
            Error::Finalizer(_) => "FinalizerFailed",
            Error::NoNamespace(_) => "NoNamespace",
        }
    }
}

/// The reason a condition and a Warning Event give for a Kubernetes API failure.
pub fn kube_reason(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) => match status.code {
            400 => "KubernetesBadRequest",
            401 => "KubernetesUnauthorized",
            403 => "KubernetesForbidden",
            404 => "KubernetesApiNotFound",
            409 => "KubernetesConflict",
            422 => "KubernetesInvalid",
            _ => "KubernetesApiError",
        },
        _ => "KubernetesUnreachable",
    }
}

/// Whether a Kubernetes API error says the resource type is not served at all (an API the
/// server's version lacks, such as `policy/v1` before 1.21): server-side apply creates a
/// missing object, so a 404 to an apply names a missing API, not a missing object.
pub fn api_not_served(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Writes `status` into `name`'s status subresource by server-side apply, as [`MANAGER`]:
/// the operator owns every status field it sets, and fields it stops setting go away.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// `conditions` with `replacement` in place of the condition of its type (or added).
pub fn with_condition(mut conditions: Vec<Condition>, replacement: Condition) -> Vec<Condition> {
    match conditions.iter_mut().find(|c| c.type_ == replacement.type_) {
        Some(existing) => *existing = replacement,
        None => conditions.push(replacement),
    }
    conditions
}

/// Whether `conditions` already say `type_` is `status` for `reason`: a Warning Event is
/// published when a problem appears or changes, not on every resync while it lasts.
pub fn already_reported(conditions: &[Condition], type_: &str, status: bool, reason: &str) -> bool {
    let status = if status { "True" } else { "False" };
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
}

/// What the reconcilers share.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The control plane.
    pub control_plane: ControlPlaneClient,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Base URL of the web client, for join URLs.
    pub public_url: String,
    /// Per pool: since when it needs fewer relays, and since when its top relay drains.
    pub scale_memory: Mutex<HashMap<String, ScaleMemory>>,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
}

/// What the autoscaler remembers between reconciles of one pool.
#[derive(Debug, Clone, Default)]
pub struct ScaleMemory {
    /// Since when the pool has needed fewer relays than it has.
    pub low_since: Option<Instant>,
    /// The relay being drained and since when.
    pub draining: Option<(i32, Instant)>,
}

impl Context {
    /// Publishes an Event about `object`; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, reason, "could not publish an event");
        }
    }
}

/// A status condition at `now`, keeping the previous transition time when the status did
/// not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Retry delay after a failed reconcile.
pub const RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// What to do after a failed reconcile: log, count, retry soon. Transient failures (API
/// server, control plane) heal by retrying; nothing here panics.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    object: std::sync::Arc<K>,
    error: &Error,
    ctx: std::sync::Arc<Context>,
    controller: &str,
) -> kube::runtime::controller::Action {
    ctx.metrics.errors.with_label_values(&[controller]).inc();
    let name = object.meta().name.clone().unwrap_or_default();
    tracing::warn!(controller, object = %name, %error, "reconcile failed; retrying");
    kube::runtime::controller::Action::requeue(RETRY)
}

/// Now, as a Kubernetes time.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}
