//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas are safe:
//! only the holder reconciles. The lease is taken when free or expired, renewed at a third
//! of its duration, and losing it stops the process (Kubernetes restarts it as a follower).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// A Lease held by this process.
pub struct Leadership {
    /// Cancelled when the lease is lost.
    pub lost: CancellationToken,
}

/// Whether `lease` may be taken by `identity` at `now`.
pub fn may_take(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let duration =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            spec.renew_time.as_ref().is_none_or(|renewed| {
                renewed
                    .0
                    .checked_add(duration)
                    .is_ok_and(|until| until < now)
            })
        }
    }
}

fn claimed(mut lease: Lease, identity: &str, duration: Duration, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let changed_hands = spec.holder_identity.as_deref() != Some(identity);
    if changed_hands {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(identity.to_owned());
    spec.lease_duration_seconds = Some(i32::try_from(duration.as_secs()).unwrap_or(15));
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Waits until this process holds the lease `name`, then keeps renewing it.
pub async fn acquire(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    duration: Duration,
) -> Leadership {
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    loop {
        match try_take(&leases, name, identity, duration).await {
            Ok(true) => break,
            Ok(false) => tracing::debug!(lease = name, "another operator leads; waiting"),
            Err(error) => tracing::warn!(%error, lease = name, "leader election"),
        }
        tokio::time::sleep(duration / 3).await;
    }
    tracing::info!(lease = name, identity, "leading");
    let lost = CancellationToken::new();
    let renewing = lost.clone();
    let (name, identity) = (name.to_owned(), identity.to_owned());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(duration / 3).await;
            match try_take(&leases, &name, &identity, duration).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(lease = %name, "leadership lost");
                    renewing.cancel();
                    return;
                }
                Err(error) => tracing::warn!(%error, lease = %name, "renewing the lease"),
            }
        }
    });
    Leadership { lost }
}

async fn try_take(
    leases: &Api<Lease>,
    name: &str,
    identity: &str,
    duration: Duration,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match leases.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: None,
            };
            let lease = claimed(lease, identity, duration, now);
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(lease) if may_take(&lease, identity, now) => {
            // `replace` carries the resourceVersion read above: a concurrent taker conflicts.
            let lease = claimed(lease, identity, duration, now);
            match leases.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64) -> Lease {
        let now = Timestamp::now();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_live_lease_of_another_is_left_alone_and_an_expired_one_taken() {
        let now = Timestamp::now();
        assert!(!may_take(&lease("other", 5), "me", now));
        assert!(may_take(&lease("other", 30), "me", now));
        assert!(may_take(&lease("me", 5), "me", now));
        let taken = claimed(lease("other", 30), "me", Duration::from_secs(15), now);
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(1));
    }
}
