//! RelayPool → StatefulSet + headless Service + PodDisruptionBudget, scaled on the
//! participants the control plane reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use videocall_control_api::v1::RelayStatus;

use super::{
    already_reported, api_not_served, apply_status, condition, kube_reason, now, with_condition,
    Context, Error, ScaleMemory, MANAGER,
};
use crate::crd::{RelayLoad, RelayPool, RelayPoolStatus};
use crate::resources::{disruption_budget, headless_service, stateful_set};
use crate::scaling::{desired_replicas, next_step, RelayObservation, ScaleInput, ScaleStep};

/// How often a pool is looked at again when nothing changes: load moves without events.
pub const RESYNC: Duration = Duration::from_secs(10);
/// How often while it scales or drains, so an emptied relay goes soon after it empties.
pub const ACTIVE_RESYNC: Duration = Duration::from_secs(2);

/// The relays of `pool` among the control plane's, by ordinal (relay id = pod name).
pub fn pool_relays(pool_name: &str, relays: &[RelayStatus]) -> Vec<(RelayObservation, RelayLoad)> {
    let prefix = format!("{pool_name}-");
    let mut found: Vec<_> = relays
        .iter()
        .filter_map(|relay| {
            let id = &relay.endpoints.as_ref()?.relay_id;
            let ordinal: i32 = id.strip_prefix(&prefix)?.parse().ok()?;
            // A relay that stopped heartbeating (a drained relay exits) hosts nobody the
            // control plane can vouch for: its last figures do not hold a scale-down.
            let (participants, meetings) = if relay.fresh {
                (
                    i32::try_from(relay.participants).unwrap_or(i32::MAX),
                    i32::try_from(relay.meetings).unwrap_or(i32::MAX),
                )
            } else {
                (0, 0)
            };
            Some((
                RelayObservation {
                    ordinal,
                    participants,
                    meetings,
                    draining: relay.draining,
                },
                RelayLoad {
                    name: id.clone(),
                    participants,
                    meetings,
                    draining: relay.draining,
                    fresh: relay.fresh,
                },
            ))
        })
        .collect();
    found.sort_by_key(|(o, _)| o.ordinal);
    found
}

/// Type of the condition that says whether the pool's PodDisruptionBudget is in place.
pub const BUDGET_CONDITION: &str = "DisruptionBudget";
/// Its reason when the API server does not serve `policy/v1` (Kubernetes before 1.21).
pub const BUDGET_API_MISSING: &str = "PolicyV1NotServed";

/// Reconciles one pool. A failure is written into the pool's status (`Degraded`, with the
/// reason and message) and published as a Warning Event before it is retried, so
/// `kubectl describe relaypool` says what is wrong.
pub async fn reconcile(pool: Arc<RelayPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    match reconcile_pool(&pool, &ctx).await {
        Ok(action) => Ok(action),
        Err(error) => {
            report_failure(&pool, &ctx, &error).await;
            Err(error)
        }
    }
}

async fn report_failure(pool: &RelayPool, ctx: &Context, error: &Error) {
    let name = pool.name_any();
    let message = error.to_string();
    ctx.event(pool, EventType::Warning, error.reason(), message.clone())
        .await;
    let Some(namespace) = pool.namespace() else {
        return;
    };
    let mut status = pool.status.clone().unwrap_or_default();
    let degraded = condition(
        &status.conditions,
        "Degraded",
        true,
        error.reason(),
        message,
        pool.metadata.generation,
        &now(),
    );
    status.conditions = with_condition(status.conditions, degraded);
    let pools: Api<RelayPool> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Err(error) = apply_status(&pools, &name, &status).await {
        tracing::warn!(pool = %name, %error, "could not write the failure into the status");
    }
}

async fn reconcile_pool(pool: &Arc<RelayPool>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let name = pool.name_any();
    let namespace = pool
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("RelayPool {name}")))?;
    let apply = PatchParams::apply(MANAGER).force();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    services
        .patch(&name, &apply, &Patch::Apply(&headless_service(pool)))
        .await?;
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = sets.get_opt(&name).await?;
    let replicas = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref()?.replicas)
        .unwrap_or(-1);
    let ready = existing
        .as_ref()
        .and_then(|s| s.status.as_ref()?.ready_replicas)
        .unwrap_or(0);

    // Load from the control plane; without it the pool keeps its size.
    let (relays, control_plane_error) = match ctx.control_plane.relays().await {
        Ok(all) => (pool_relays(&name, &all), None),
        Err(status) => (Vec::new(), Some(status)),
    };
    let participants: i32 = relays.iter().map(|(o, _)| o.participants).sum();
    let meetings: i32 = relays.iter().map(|(o, _)| o.meetings).sum();
    let desired = desired_replicas(&pool.spec, participants);

    let key = format!("{namespace}/{name}");
    let mut memory = ctx
        .scale_memory
        .lock()
        .map(|m| m.get(&key).cloned().unwrap_or_default())
        .unwrap_or_default();
    let target = if replicas < 0 {
        // First reconcile: start at the desired size.
        desired
    } else if control_plane_error.is_some() {
        replicas
    } else {
        step(pool, ctx, replicas, desired, &relays, &mut memory).await?
    };
    if let Ok(mut map) = ctx.scale_memory.lock() {
        map.insert(key.clone(), memory);
    }
    ctx.metrics
        .desired_relays
        .with_label_values(&[key.as_str()])
        .set(i64::from(desired));
    ctx.metrics
        .actual_relays
        .with_label_values(&[key.as_str()])
        .set(i64::from(target));
    sets.patch(&name, &apply, &Patch::Apply(&stateful_set(pool, target)))
        .await?;
    // The budget protects relays from evictions; the relays do not wait for it. An API
    // server without `policy/v1` (before 1.21), or one that refuses it, is reported.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    let budget_error = budgets
        .patch(&name, &apply, &Patch::Apply(&disruption_budget(pool)))
        .await
        .err();

    let busy = target != desired || relays.iter().any(|(o, _)| o.draining);
    let status = pool_status(
        pool,
        desired,
        target,
        ready,
        participants,
        meetings,
        relays,
        control_plane_error.as_ref(),
        budget_error.as_ref(),
    );
    let pools: Api<RelayPool> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&pools, &name, &status).await?;
    if let Some(error) = &budget_error {
        let (_, reason, message) = budget_condition(Some(error));
        let previous = pool.status.as_ref().map(|s| s.conditions.as_slice());
        if !already_reported(
            previous.unwrap_or_default(),
            BUDGET_CONDITION,
            false,
            reason,
        ) {
            tracing::warn!(pool = %name, %error, "PodDisruptionBudget not applied");
            ctx.event(&**pool, EventType::Warning, reason, message)
                .await;
        }
    }
    if let Some(status) = control_plane_error {
        ctx.event(
            &**pool,
            EventType::Warning,
            "ControlPlaneUnavailable",
            format!(
                "relay loads unavailable ({}); keeping {target} relays",
                status.message()
            ),
        )
        .await;
    }
    Ok(Action::requeue(if busy { ACTIVE_RESYNC } else { RESYNC }))
}

/// Takes one scaling step; returns the replicas to apply.
async fn step(
    pool: &RelayPool,
    ctx: &Context,
    replicas: i32,
    desired: i32,
    relays: &[(RelayObservation, RelayLoad)],
    memory: &mut ScaleMemory,
) -> Result<i32, Error> {
    let observations: Vec<RelayObservation> = relays.iter().map(|(o, _)| o.clone()).collect();
    if desired < replicas {
        memory.low_since.get_or_insert_with(Instant::now);
    } else {
        memory.low_since = None;
    }
    let highest = replicas - 1;
    // A drain this operator did not start (an earlier leader, before a restart) is resumed,
    // not repeated; its timeout counts from now, so it can only last longer, never shorter.
    let top_draining = observations
        .iter()
        .any(|o| o.ordinal == highest && o.draining);
    if top_draining
        && memory
            .draining
            .is_none_or(|(ordinal, _)| ordinal != highest)
    {
        memory.draining = Some((highest, Instant::now()));
    }
    let draining_for = memory
        .draining
        .filter(|(ordinal, _)| *ordinal == highest)
        .map(|(_, since)| since.elapsed());
    let input = ScaleInput {
        replicas,
        desired,
        relays: &observations,
        low_for: memory.low_since.map(|t| t.elapsed()).unwrap_or_default(),
        draining_for,
    };
    Ok(match next_step(&pool.spec, &input) {
        ScaleStep::Hold => replicas,
        ScaleStep::ScaleUp(to) => {
            memory.draining = None;
            ctx.event(
                pool,
                EventType::Normal,
                "ScaledUp",
                format!("{replicas} → {to} relays for the participants"),
            )
            .await;
            to
        }
        ScaleStep::Drain(ordinal) => {
            let relay = crate::resources::relay_name(pool, ordinal);
            ctx.control_plane.drain(&relay).await?;
            memory.draining = Some((ordinal, Instant::now()));
            ctx.event(
                pool,
                EventType::Normal,
                "Draining",
                format!("draining {relay} before removing it"),
            )
            .await;
            replicas
        }
        ScaleStep::Remove(ordinal) => {
            memory.draining = None;
            memory.low_since = None;
            let relay = crate::resources::relay_name(pool, ordinal);
            ctx.event(
                pool,
                EventType::Normal,
                "ScaledDown",
                format!("{relay} drained: {replicas} → {ordinal} relays"),
            )
            .await;
            ordinal
        }
    })
}

/// The `DisruptionBudget` condition after applying the budget failed with `error` (or not).
pub fn budget_condition(error: Option<&kube::Error>) -> (bool, &'static str, String) {
    match error {
        None => (
            true,
            "Applied",
            "voluntary evictions take one relay at a time".into(),
        ),
        Some(error) if api_not_served(error) => (
            false,
            BUDGET_API_MISSING,
            "this API server does not serve policy/v1 PodDisruptionBudget (Kubernetes 1.21+): \
             relays run, but node drains are not limited to one relay at a time"
                .into(),
        ),
        Some(error) => (
            false,
            kube_reason(error),
            format!("PodDisruptionBudget not applied: {error}"),
        ),
    }
}

/// The status to write.
#[allow(clippy::too_many_arguments)]
pub fn pool_status(
    pool: &RelayPool,
    desired: i32,
    replicas: i32,
    ready: i32,
    participants: i32,
    meetings: i32,
    relays: Vec<(RelayObservation, RelayLoad)>,
    control_plane_error: Option<&tonic::Status>,
    budget_error: Option<&kube::Error>,
) -> RelayPoolStatus {
    let previous = pool
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let generation = pool.metadata.generation;
    let now = now();
    let draining = relays.iter().filter(|(o, _)| o.draining).count() as i32;
    let conditions = vec![
        condition(
            &previous,
            "Ready",
            ready >= pool.spec.min_replicas.max(1).min(replicas.max(0)) && ready > 0,
            if ready > 0 {
                "RelaysReady"
            } else {
                "NoRelayReady"
            },
            format!("{ready} of {replicas} relays ready"),
            generation,
            &now,
        ),
        condition(
            &previous,
            "Scaling",
            desired != replicas,
            if desired > replicas {
                "ScalingUp"
            } else if desired < replicas {
                "ScalingDown"
            } else {
                "Steady"
            },
            format!("{desired} relays wanted for {participants} participants, {replicas} set"),
            generation,
            &now,
        ),
        condition(
            &previous,
            "Degraded",
            control_plane_error.is_some(),
            if control_plane_error.is_some() {
                "ControlPlaneUnavailable"
            } else {
                "Healthy"
            },
            control_plane_error
                .map(|s| s.message().to_owned())
                .unwrap_or_else(|| "relay loads are current".into()),
            generation,
            &now,
        ),
        {
            let (applied, reason, message) = budget_condition(budget_error);
            condition(
                &previous,
                BUDGET_CONDITION,
                applied,
                reason,
                message,
                generation,
                &now,
            )
        },
    ];
    RelayPoolStatus {
        desired_replicas: desired,
        replicas,
        ready_replicas: ready,
        draining,
        participants,
        meetings,
        relays: relays.into_iter().map(|(_, load)| load).collect(),
        conditions,
        observed_generation: generation,
    }
}
