//! What a `RelayPool` becomes in the cluster: a StatefulSet of relays (stable names are
//! stable relay ids), a headless Service, and a PodDisruptionBudget, all owned by the pool
//! so deleting it cascades. Pure builders: the reconciler applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretKeySelector, SecretVolumeSource,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::crd::RelayPool;

/// The label every object of a pool carries, with the pool's name.
pub const POOL_LABEL: &str = "videocall.dev/relay-pool";
/// Key of the relay API key in the Secret named by `controlPlane.apiKeySecret`.
pub const API_KEY_SECRET_KEY: &str = "apiKey";
/// Key of the NATS credentials file in the Secret named by `nats.credentialsSecret`.
pub const NATS_CREDS_SECRET_KEY: &str = "creds";
/// Where a relay finds the NATS credentials file.
const NATS_CREDS_DIR: &str = "/etc/videocall/nats";
/// Seconds a relay gets beyond its drain timeout to stop after SIGTERM.
const STOP_GRACE_SECONDS: i64 = 30;
/// The address ranges pod networks are drawn from (RFC 1918, shared address space, unique
/// local IPv6): the gateway's pods among them. Relays are not exposed outside the cluster,
/// so only the cluster's own pods can connect from these.
const CLUSTER_PRIVATE_RANGES: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";

/// Labels that select a pool's relays.
pub fn selector_labels(pool: &RelayPool) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "videocall-relay".to_owned(),
        ),
        (POOL_LABEL.to_owned(), pool.name_any()),
    ])
}

fn labels(pool: &RelayPool) -> BTreeMap<String, String> {
    let mut labels = selector_labels(pool);
    labels.insert("app.kubernetes.io/component".into(), "relay".into());
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "videocall-operator".into(),
    );
    labels
}

fn metadata(pool: &RelayPool) -> ObjectMeta {
    ObjectMeta {
        name: Some(pool.name_any()),
        namespace: pool.namespace(),
        labels: Some(labels(pool)),
        owner_references: pool.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Name of the relay with `ordinal` (its pod name, and its relay id).
pub fn relay_name(pool: &RelayPool, ordinal: i32) -> String {
    format!("{}-{ordinal}", pool.name_any())
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// The relays' StatefulSet with `replicas` relays.
pub fn stateful_set(pool: &RelayPool, replicas: i32) -> StatefulSet {
    let spec = &pool.spec;
    let ports = &spec.ports;
    let namespace = pool.namespace().unwrap_or_else(|| "default".into());
    // Without a public host each relay advertises its stable in-cluster name; the gateway
    // (or a per-pod route) makes it reachable.
    let public_host = spec
        .public_host
        .clone()
        .unwrap_or_else(|| format!("$(RELAY_ID).{}.{namespace}.svc", pool.name_any()));
    let mut env = vec![
        EnvVar {
            name: "RELAY_ID".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        },
        env(
            "RELAY_WEBTRANSPORT_ADDR",
            format!("0.0.0.0:{}", ports.webtransport),
        ),
        env(
            "RELAY_WEBSOCKET_ADDR",
            format!("0.0.0.0:{}", ports.websocket),
        ),
        env("RELAY_ADMIN_ADDR", format!("0.0.0.0:{}", ports.admin)),
        env("RELAY_PUBLIC_HOST", public_host),
        env("RELAY_SELF_SIGNED_NAMES", "localhost"),
        env(
            "RELAY_DRAIN_TIMEOUT_SECS",
            spec.drain_timeout_seconds.to_string(),
        ),
        // Placement fills relays relative to capacity; twice the target leaves room for a
        // meeting to grow while the pool scales out.
        env(
            "RELAY_CAPACITY_PARTICIPANTS",
            (i64::from(spec.target_participants_per_relay) * 2).to_string(),
        ),
        env("RELAY_CONTROL_PLANE_URL", spec.control_plane.url.clone()),
        EnvVar {
            name: "RELAY_CONTROL_PLANE_API_KEY".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: spec.control_plane.api_key_secret.clone(),
                    key: API_KEY_SECRET_KEY.into(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        },
    ];
    if let Some(gateway) = &spec.gateway {
        env.push(self::env(
            "RELAY_PUBLIC_WEBTRANSPORT_URL",
            gateway.web_transport_url.clone(),
        ));
        env.push(self::env(
            "RELAY_PUBLIC_WEBSOCKET_URL",
            gateway.web_socket_url.clone(),
        ));
        // The gateway's pods reach the relays from the cluster's pod network: their
        // X-Forwarded-For names each WebSocket's client, and each of their QUIC flows is one
        // client, for the relays' per-client limits.
        env.push(self::env("RELAY_TRUSTED_PROXIES", CLUSTER_PRIVATE_RANGES));
    }
    // The relays share meetings over NATS; credentials come as a file from a Secret.
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(nats) = &spec.nats {
        env.push(self::env("RELAY_NATS_URL", nats.url.clone()));
        if let Some(secret) = &nats.credentials_secret {
            env.push(self::env(
                "RELAY_NATS_CREDS",
                format!("{NATS_CREDS_DIR}/nats.creds"),
            ));
            volumes.push(Volume {
                name: "nats-creds".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.clone()),
                    items: Some(vec![KeyToPath {
                        key: NATS_CREDS_SECRET_KEY.into(),
                        path: "nats.creds".into(),
                        mode: None,
                    }]),
                    default_mode: Some(0o400),
                    optional: Some(false),
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "nats-creds".into(),
                mount_path: NATS_CREDS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(ports.admin),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    };
    let container = Container {
        name: "relay".into(),
        image: Some(spec.image.clone()),
        env: Some(env),
        ports: Some(vec![
            container_port("webtransport", ports.webtransport, "UDP"),
            container_port("websocket", ports.websocket, "TCP"),
            container_port("admin", ports.admin, "TCP"),
        ]),
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/healthz")),
        resources: spec.resources.clone(),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    };
    StatefulSet {
        metadata: metadata(pool),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(pool.name_any()),
            // Relays are independent: start and stop them together, not one by one.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(pool)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(pool)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    // The relay image's non-root user (see the Dockerfile).
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        ..Default::default()
                    }),
                    // SIGTERM drains: the relay needs its drain timeout to empty.
                    termination_grace_period_seconds: Some(
                        spec.drain_timeout_seconds
                            .saturating_add(STOP_GRACE_SECONDS),
                    ),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn container_port(name: &str, port: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some(protocol.into()),
        ..ContainerPort::default()
    }
}

/// The headless Service that gives every relay a stable DNS name.
pub fn headless_service(pool: &RelayPool) -> Service {
    let ports = &pool.spec.ports;
    let port = |name: &str, port: i32, protocol: &str| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some(protocol.into()),
        ..ServicePort::default()
    };
    Service {
        metadata: metadata(pool),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // A draining relay is unready yet still hosts live meetings: the gateway must keep
            // resolving `<pool>-<n>.<pool>` to reach it.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(pool)),
            ports: Some(vec![
                port("webtransport", ports.webtransport, "UDP"),
                port("websocket", ports.websocket, "TCP"),
                port("admin", ports.admin, "TCP"),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Voluntary disruptions (node drains) take one relay at a time.
pub fn disruption_budget(pool: &RelayPool) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(pool),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(pool)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ControlPlaneRef, RelayPoolSpec, RelayPorts};

    fn pool() -> RelayPool {
        let mut pool = RelayPool::new(
            "edge",
            RelayPoolSpec {
                image: "videocall-relay:test".into(),
                min_replicas: 1,
                max_replicas: 5,
                target_participants_per_relay: 200,
                buffer_participants: 0,
                buffer_percent: 0,
                scale_down_delay_seconds: 60,
                drain_timeout_seconds: 120,
                resources: None,
                ports: RelayPorts::default(),
                public_host: None,
                gateway: None,
                nats: None,
                control_plane: ControlPlaneRef {
                    url: "http://control-plane:50051".into(),
                    api_key_secret: "relay-key".into(),
                },
            },
        );
        pool.metadata.namespace = Some("calls".into());
        pool.metadata.uid = Some("uid-1".into());
        pool
    }

    #[test]
    fn the_stateful_set_runs_relays_that_register_and_drain() {
        let set = stateful_set(&pool(), 3);
        let spec = set.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("edge"));
        let owner = &set.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("RelayPool", Some(true))
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(150));
        let env = pod.containers[0].env.clone().unwrap();
        let value = |name: &str| env.iter().find(|e| e.name == name).cloned().unwrap();
        assert_eq!(
            value("RELAY_ID")
                .value_from
                .unwrap()
                .field_ref
                .unwrap()
                .field_path,
            "metadata.name"
        );
        assert_eq!(
            value("RELAY_PUBLIC_HOST").value.as_deref(),
            Some("$(RELAY_ID).edge.calls.svc")
        );
        assert_eq!(
            value("RELAY_CAPACITY_PARTICIPANTS").value.as_deref(),
            Some("400")
        );
        let key = value("RELAY_CONTROL_PLANE_API_KEY")
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (key.name.as_str(), key.key.as_str()),
            ("relay-key", "apiKey")
        );
    }

    #[test]
    fn relays_of_a_pool_with_nats_share_meetings_with_its_credentials() {
        let mut pool = pool();
        let plain = format!("{:?}", stateful_set(&pool, 1));
        assert!(!plain.contains("RELAY_NATS_URL"));
        pool.spec.nats = Some(crate::crd::NatsRef {
            url: "nats://nats:4222".into(),
            credentials_secret: Some("nats-relay".into()),
        });
        let pod = stateful_set(&pool, 2).spec.unwrap().template.spec.unwrap();
        let container = &pod.containers[0];
        let env = container.env.clone().unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("RELAY_NATS_URL").as_deref(), Some("nats://nats:4222"));
        assert_eq!(
            value("RELAY_NATS_CREDS").as_deref(),
            Some("/etc/videocall/nats/nats.creds")
        );
        let volume = &pod.volumes.unwrap()[0];
        let secret = volume.secret.clone().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("nats-relay"));
        assert_eq!(secret.items.unwrap()[0].key, "creds");
        let mount = &container.volume_mounts.clone().unwrap()[0];
        assert_eq!(
            (mount.name.as_str(), mount.mount_path.as_str()),
            ("nats-creds", "/etc/videocall/nats")
        );
    }

    #[test]
    fn relays_behind_a_gateway_advertise_its_urls() {
        let mut pool = pool();
        assert!(!format!("{:?}", stateful_set(&pool, 1)).contains("RELAY_PUBLIC_WEBTRANSPORT_URL"));
        pool.spec.gateway = Some(crate::crd::GatewayRef {
            web_transport_url: "https://relay-{server_id}.meet.example.org/".into(),
            web_socket_url: "wss://meet.example.org/relay/{server_id}/ws".into(),
        });
        let pod = stateful_set(&pool, 1).spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            value("RELAY_PUBLIC_WEBTRANSPORT_URL").as_deref(),
            Some("https://relay-{server_id}.meet.example.org/")
        );
        assert_eq!(
            value("RELAY_PUBLIC_WEBSOCKET_URL").as_deref(),
            Some("wss://meet.example.org/relay/{server_id}/ws")
        );
    }

    #[test]
    fn the_service_is_headless_and_the_budget_takes_one_at_a_time() {
        let service = headless_service(&pool());
        assert_eq!(
            service.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );
        assert_eq!(
            service.spec.as_ref().unwrap().publish_not_ready_addresses,
            Some(true),
            "draining relays stay resolvable for the gateway"
        );
        let protocols: Vec<_> = service
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| p.protocol.unwrap())
            .collect();
        assert_eq!(protocols, ["UDP", "TCP", "TCP"]);
        let pdb = disruption_budget(&pool());
        assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(relay_name(&pool(), 2), "edge-2");
    }
}
