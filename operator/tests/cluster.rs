//! The operator, its CRDs and its Helm chart against a real API server (kube-apiserver
//! v1.20.2 over HTTPS with RBAC, etcd and the controller manager: `scripts/kube.sh`), one
//! per test. The operator runs as its own binary under the chart's ServiceAccount and RBAC,
//! so a TLS client without a crypto provider, a missing permission or an API this server
//! lacks fails here. Relays are local processes registered with a real control plane.
//!
//! What v1.20 runs and what it lacks: CRDs (structural schemas, defaulting, validation),
//! the status subresource by server-side apply, watches, Leases, events.k8s.io/v1, owner
//! references and garbage collection, StatefulSets (their pods stay Pending: no scheduler or
//! kubelet) and ServiceAccount tokens all run; `policy/v1` PodDisruptionBudgets (1.21), gRPC
//! probes (1.24) and mixed-protocol LoadBalancer Services (1.26) do not exist there, and
//! the tests check that the operator and chart say so and carry on.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{root, wait_for, Cluster, V1_20_VALUES};
use common::{control_plane_with_keys, relay_with_key_and};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use videocall_operator::crd::{Meeting, MeetingPhase, RelayPool};
use videocall_testkit::ChildGuard;

const NAMESPACE: &str = "videocall";
const PUBLIC_URL: &str = "https://meet.example.test";

/// The operator binary, as the chart's ServiceAccount, against the control plane at `url`.
fn operator(
    cluster: &Cluster,
    kubeconfig: &PathBuf,
    control_plane: &str,
    key: &str,
    identity: &str,
) -> ChildGuard {
    let log = std::fs::File::create(cluster.dir().join(format!("operator-{identity}.log")))
        .expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_videocall-operator"))
        .args([
            "run",
            "--control-plane-url",
            control_plane,
            "--control-plane-api-key",
            key,
            "--public-url",
            PUBLIC_URL,
            "--metrics-addr",
            "127.0.0.1:0",
            "--lease-namespace",
            NAMESPACE,
            "--lease-name",
            "videocall-operator",
            "--identity",
            identity,
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start the operator");
    ChildGuard(child)
}

fn operator_log(cluster: &Cluster, identity: &str) -> String {
    std::fs::read_to_string(cluster.dir().join(format!("operator-{identity}.log")))
        .unwrap_or_default()
}

async fn condition(api: &Api<RelayPool>, name: &str, type_: &str) -> Option<(String, String)> {
    let pool = api.get_opt(name).await.ok()??;
    let c = pool
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status, c.reason))
}

async fn warnings(client: &Client, namespace: &str, object: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

async fn meeting_ready(api: &Api<Meeting>, name: &str) -> Option<Meeting> {
    let meeting = api.get_opt(name).await.ok()??;
    let status = meeting.status.as_ref()?;
    (matches!(status.phase, MeetingPhase::Ready | MeetingPhase::Live)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"))
    .then_some(meeting)
}

const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_register_default_and_refuse_bad_specs() {
    let cluster = Cluster::start();
    cluster.apply_crds();
    cluster.kubectl_ok(&["create", "namespace", "calls"], None);

    // Defaults come from the schema, on the server.
    cluster.kubectl_ok(
        &["apply", "-n", "calls", "-f", "-"],
        Some(
            "apiVersion: videocall.dev/v1alpha1\nkind: RelayPool\nmetadata: {name: edge}\n\
             spec:\n  image: videocall/relay:0.1.0\n  controlPlane: {url: 'http://cp:50051', \
             apiKeySecret: relay-key}\n",
        ),
    );
    let pools: Api<RelayPool> = Api::namespaced(cluster.admin().await, "calls");
    let pool = pools.get("edge").await.expect("pool");
    assert_eq!(
        (
            pool.spec.min_replicas,
            pool.spec.max_replicas,
            pool.spec.ports.webtransport
        ),
        (1, 10, 4433)
    );

    // Bad specs are refused by the API server, naming the field.
    let refused = [
        (
            "RelayPool",
            "spec:\n  image: ''\n  controlPlane: {url: 'http://cp', apiKeySecret: k}\n",
            "spec.image",
        ),
        (
            "RelayPool",
            "spec:\n  image: x\n  maxReplicas: 0\n  controlPlane: {url: 'http://cp', apiKeySecret: k}\n",
            "spec.maxReplicas",
        ),
        (
            "RelayPool",
            "spec:\n  image: x\n  controlPlane: {url: 'ftp://cp', apiKeySecret: k}\n",
            "spec.controlPlane.url",
        ),
        (
            "RelayPool",
            "spec:\n  image: x\n  gateway: {webTransportUrl: 'https://relay.example.org/', \
             webSocketUrl: 'wss://x/{server_id}'}\n  controlPlane: {url: 'http://cp', apiKeySecret: k}\n",
            "spec.gateway.webTransportUrl",
        ),
        ("Meeting", "spec: {relayPool: Edge_Pool}\n", "spec.relayPool"),
        (
            "Meeting",
            "spec: {relayPool: edge, maxParticipants: 5000}\n",
            "spec.maxParticipants",
        ),
        (
            "Meeting",
            "spec: {relayPool: edge, access: Secret}\n",
            "spec.access",
        ),
        ("Meeting", "spec: {title: no pool}\n", "spec.relayPool"),
    ];
    for (kind, spec, field) in refused {
        let yaml = format!(
            "apiVersion: videocall.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: bad}}\n{spec}"
        );
        // --validate=false: the API server refuses, not kubectl's client-side check.
        let output = cluster.kubectl(
            &["apply", "--validate=false", "-n", "calls", "-f", "-"],
            Some(&yaml),
        );
        assert!(!output.ok, "{kind} with {spec:?} was accepted");
        assert!(
            output.stderr.contains(field),
            "refusal of {kind} {spec:?} does not name {field}: {}",
            output.stderr
        );
    }
    assert!(
        pools.get_opt("bad").await.expect("get").is_none(),
        "nothing of a refused object is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_and_the_operator_under_its_rbac_runs_pools_and_meetings() {
    let cluster = Cluster::start();
    let admin = cluster.admin().await;

    // The defaults ask for a LoadBalancer with UDP and TCP, which 1.20 cannot serve: helm
    // says so before anything is created.
    let chart = root().join("charts/videocall").display().to_string();
    let refused = cluster.helm(&["install", "refused", &chart, "--namespace", "default"]);
    assert!(
        !refused.ok,
        "a mixed-protocol LoadBalancer was installed on 1.20"
    );
    assert!(
        refused.stderr.contains("needs Kubernetes 1.26+"),
        "helm install with the defaults: {}",
        refused.stderr
    );

    // helm install, as a cluster operator would, with the v1.20 values.
    let credentials = cluster.install_chart(NAMESPACE);
    let columns = cluster.kubectl_ok(&["get", "meetings,relaypools", "-n", NAMESPACE], None);
    for column in ["DESIRED", "READY", "DRAINING", "PARTICIPANTS", "MEETINGS"] {
        assert!(
            columns.contains(column),
            "no {column} column in:\n{columns}"
        );
    }
    let services: Api<Service> = Api::namespaced(admin.clone(), NAMESPACE);
    for name in [
        "videocall-control-plane",
        "videocall-gateway",
        "videocall-nats",
    ] {
        assert!(
            services.get_opt(name).await.expect("get service").is_some(),
            "helm install made no Service {name}"
        );
    }

    // helm upgrade keeps the generated credentials.
    let values = root().join(V1_20_VALUES).display().to_string();
    let upgrade = cluster.helm(&[
        "upgrade",
        "videocall",
        &chart,
        "--namespace",
        NAMESPACE,
        "-f",
        &values,
    ]);
    assert!(upgrade.ok, "helm upgrade failed: {}", upgrade.stderr);
    let after = cluster.credentials(NAMESPACE);
    assert_eq!(
        (
            &after.operator_api_key,
            &after.relay_api_key,
            &after.admin_password
        ),
        (
            &credentials.operator_api_key,
            &credentials.relay_api_key,
            &credentials.admin_password
        ),
        "helm upgrade replaced the generated credentials"
    );

    // The control plane (with the chart's credentials, two of a meeting per relay) and two
    // relays sharing meetings over NATS, as local processes.
    let data = tempfile::tempdir().unwrap();
    let cp =
        control_plane_with_keys(data.path(), credentials.bootstrap_api_keys.clone(), Some(2)).await;
    let cp_url = format!("http://{}", cp.addr);
    let prefix = videocall_testkit::nats::unique_prefix("cluster");
    let mesh = [
        "--nats-url",
        videocall_testkit::nats::SHARED_NATS,
        "--bus-subject-prefix",
        &prefix,
    ];
    let _relay0 = relay_with_key_and("edge-0", &cp_url, &credentials.relay_api_key, &mesh).await;
    let _relay1 = relay_with_key_and("edge-1", &cp_url, &credentials.relay_api_key, &mesh).await;

    // The operator as the chart's ServiceAccount, with exactly the chart's RBAC.
    let kubeconfig = cluster
        .service_account_kubeconfig(NAMESPACE, "videocall-operator")
        .await;
    let mut operator = operator(
        &cluster,
        &kubeconfig,
        &cp_url,
        &credentials.operator_api_key,
        "operator-a",
    );

    // The chart's RelayPool becomes a StatefulSet and a headless Service owned by it; the
    // budget's missing API (policy/v1 is 1.21+) is a condition and a Warning Event.
    let pools: Api<RelayPool> = Api::namespaced(admin.clone(), NAMESPACE);
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let set = wait_for("the chart's pool's StatefulSet", LONG, || async {
        sets.get_opt("relays").await.ok()?
    })
    .await;
    assert_eq!(set.spec.as_ref().and_then(|s| s.replicas), Some(1));
    let owner = &set.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("RelayPool", Some(true))
    );
    let service = services.get("relays").await.expect("headless service");
    assert_eq!(
        service.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );
    let budget = wait_for("the DisruptionBudget condition", LONG, || async {
        condition(&pools, "relays", "DisruptionBudget").await
    })
    .await;
    assert_eq!(budget, ("False".to_owned(), "PolicyV1NotServed".to_owned()));
    wait_for("a Warning Event about policy/v1", LONG, || async {
        warnings(&admin, NAMESPACE, "relays")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "PolicyV1NotServed")
    })
    .await;
    // The status went through the status subresource by server-side apply.
    let pool = pools.get("relays").await.expect("pool");
    let applied = pool
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .any(|f| {
            f.manager.as_deref() == Some("videocall-operator")
                && f.operation.as_deref() == Some("Apply")
                && f.fields_v1.is_some_and(|v| v.0.get("f:status").is_some())
        });
    assert!(applied, "status not written by server-side apply");
    let status = pool.status.expect("status");
    assert_eq!((status.desired_replicas, status.replicas), (1, 1));
    let table = cluster.kubectl_ok(&["get", "relaypools", "-n", NAMESPACE], None);
    let row = table
        .lines()
        .find(|l| l.starts_with("relays "))
        .unwrap_or_else(|| panic!("no relays row in:\n{table}"));
    assert_eq!(
        row.split_whitespace().take(6).collect::<Vec<_>>(),
        ["relays", "1", "0", "0", "0", "0"],
        "kubectl get relaypools:\n{table}"
    );

    // A pool that scales at two participants a relay; the README's example meeting on it.
    cluster.apply_small_pool(NAMESPACE, &cp_url);
    let example = std::fs::read_to_string(root().join("manifests/examples/meeting.yaml"))
        .expect("example meeting");
    let applied_at = Instant::now();
    cluster.kubectl_ok(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&example));
    let meetings: Api<Meeting> = Api::namespaced(admin.clone(), NAMESPACE);
    let meeting = wait_for("the example Meeting Ready", LONG, || async {
        meeting_ready(&meetings, "standup").await
    })
    .await;
    let ready_after = applied_at.elapsed();
    let status = meeting.status.expect("status");
    assert_eq!(
        status.join_url.as_deref(),
        Some("https://meet.example.test/meeting/guest/videocall.standup")
    );
    assert!(meeting
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"videocall.dev/end-meeting".to_owned()));
    let table = cluster.kubectl_ok(&["get", "meetings", "-n", NAMESPACE], None);
    assert!(
        table.contains("standup") && table.contains("Ready") && table.contains("videocall.standup"),
        "kubectl get meetings:\n{table}"
    );

    // Three guests: the edge pool wants two relays, and the StatefulSet follows.
    let mut guests = Vec::new();
    for _ in 0..3 {
        guests.push(common::guest(&cp_url, "videocall.standup").await);
    }
    let joined_at = Instant::now();
    wait_for("edge scaled to 2 relays", LONG, || async {
        let set = sets.get_opt("edge").await.ok()??;
        (set.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    let scaled_after = joined_at.elapsed();
    let live = wait_for("the meeting Live with 3 participants", LONG, || async {
        let m = meetings.get_opt("standup").await.ok()??;
        let s = m.status?;
        (s.phase == MeetingPhase::Live && s.participants == 3).then_some(s)
    })
    .await;
    // Two on edge-0, the third spilled to edge-1: the status and kubectl show both.
    assert_eq!(live.relays, ["edge-0", "edge-1"]);
    let table = cluster.kubectl_ok(&["get", "meetings", "-n", NAMESPACE], None);
    let row = table
        .lines()
        .find(|l| l.starts_with("standup "))
        .unwrap_or_else(|| panic!("no standup row in:\n{table}"));
    assert!(
        row.contains("edge-0") && row.contains("edge-1") && table.contains("RELAYS"),
        "kubectl get meetings shows the hosting relays:\n{table}"
    );
    eprintln!(
        "FIGURES on kube-apiserver v1.20.2: Meeting applied -> Ready {:.0} ms; \
         participants joined -> StatefulSet scaled {:.0} ms",
        ready_after.as_secs_f64() * 1000.0,
        scaled_after.as_secs_f64() * 1000.0
    );

    // They leave: edge-1's pod never came up (it stays Pending here), and its relay is empty
    // now, so it goes at once.
    for guest in guests.drain(..) {
        guest.sender().leave().await;
    }
    wait_for("edge back to 1 relay", LONG, || async {
        let set = sets.get_opt("edge").await.ok()??;
        (set.spec?.replicas == Some(1)).then_some(())
    })
    .await;

    // Deleting the Meeting ends it in the control plane before the object goes.
    meetings
        .delete("standup", &DeleteParams::default())
        .await
        .expect("delete meeting");
    wait_for("the Meeting gone", LONG, || async {
        meetings
            .get_opt("standup")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let control_plane = videocall_operator::control_plane::ControlPlaneClient::new(
        &cp_url,
        &credentials.operator_api_key,
    )
    .expect("control-plane client");
    assert!(control_plane
        .meeting("videocall.standup")
        .await
        .expect("get meeting")
        .is_none());

    // Deleting a pool collects what it owned.
    pools
        .delete("edge", &DeleteParams::default())
        .await
        .expect("delete pool");
    wait_for("edge's StatefulSet and Service collected", LONG, || async {
        let set = sets.get_opt("edge").await.ok()?;
        let service = services.get_opt("edge").await.ok()?;
        (set.is_none() && service.is_none()).then_some(())
    })
    .await;

    // A pool whose StatefulSet the API server refuses (a CPU limit that is no quantity: the
    // CRD's schema lets any string through) says why, and the operator goes on with the rest.
    cluster.kubectl_ok(
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(&format!(
            "apiVersion: videocall.dev/v1alpha1\nkind: RelayPool\nmetadata: {{name: broken}}\n\
             spec:\n  image: videocall/relay:0.1.0\n  resources: {{limits: {{cpu: lots}}}}\n  \
             controlPlane: {{url: '{cp_url}', apiKeySecret: videocall-credentials}}\n"
        )),
    );
    let degraded = wait_for("broken's Degraded condition", LONG, || async {
        condition(&pools, "broken", "Degraded")
            .await
            .filter(|(status, _)| status == "True")
    })
    .await;
    // v1.20 answers this apply with a 500 (later servers with a 422, KubernetesInvalid).
    assert_eq!(degraded.1, "KubernetesApiError");
    let (_, note) = wait_for("a Warning Event on broken", LONG, || async {
        warnings(&admin, NAMESPACE, "broken")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "KubernetesApiError")
    })
    .await;
    assert!(note.contains("quantities"), "{note}");
    assert!(sets.get_opt("broken").await.expect("get").is_none());
    assert_eq!(
        condition(&pools, "relays", "Degraded").await,
        Some(("False".to_owned(), "Healthy".to_owned())),
        "the chart's pool is unaffected"
    );

    // A failure reaches the object: with the control plane gone, a new Meeting says why.
    tokio::time::timeout(Duration::from_secs(10), cp.stop())
        .await
        .ok();
    cluster.kubectl_ok(
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(
            "apiVersion: videocall.dev/v1alpha1\nkind: Meeting\nmetadata: {name: retro}\n\
             spec: {relayPool: relays, guestsAllowed: true}\n",
        ),
    );
    let (status, reason, message) = wait_for("retro's failure condition", LONG, || async {
        let m = meetings.get_opt("retro").await.ok()??;
        let c = m
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.reason == "ControlPlaneUnavailable").then_some((c.status, c.reason, c.message))
    })
    .await;
    assert_eq!(status, "False");
    assert!(message.contains("control plane"), "{reason}: {message}");
    wait_for("a Warning Event on retro", LONG, || async {
        warnings(&admin, NAMESPACE, "retro")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "ControlPlaneUnavailable")
    })
    .await;
    let describe = cluster.kubectl_ok(&["describe", "meeting", "retro", "-n", NAMESPACE], None);
    assert!(
        describe.contains("ControlPlaneUnavailable"),
        "kubectl describe does not say what is wrong:\n{describe}"
    );
    assert!(
        operator.is_running(),
        "the operator exited:\n{}",
        operator_log(&cluster, "operator-a")
    );
    let log = operator_log(&cluster, "operator-a");
    assert!(!log.contains("panicked"), "the operator panicked:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operator_takes_over_the_lease_when_the_leader_dies() {
    let cluster = Cluster::start();
    let admin = cluster.admin().await;
    let credentials = cluster.install_chart(NAMESPACE);
    let data = tempfile::tempdir().unwrap();
    let cp =
        control_plane_with_keys(data.path(), credentials.bootstrap_api_keys.clone(), None).await;
    let cp_url = format!("http://{}", cp.addr);
    let kubeconfig = cluster
        .service_account_kubeconfig(NAMESPACE, "videocall-operator")
        .await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    let holder = || async {
        leases
            .get_opt("videocall-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };

    let first = operator(
        &cluster,
        &kubeconfig,
        &cp_url,
        &credentials.operator_api_key,
        "first",
    );
    wait_for("first to lead", LONG, || async {
        (holder().await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let _second = operator(
        &cluster,
        &kubeconfig,
        &cp_url,
        &credentials.operator_api_key,
        "second",
    );
    let meetings: Api<Meeting> = Api::namespaced(admin.clone(), NAMESPACE);
    let apply = |name: &str| {
        cluster.kubectl_ok(
            &["apply", "-n", NAMESPACE, "-f", "-"],
            Some(&format!(
                "apiVersion: videocall.dev/v1alpha1\nkind: Meeting\nmetadata: {{name: {name}}}\n\
                 spec: {{relayPool: relays, guestsAllowed: true}}\n"
            )),
        );
    };
    apply("one");
    wait_for("meeting one Ready", LONG, || async {
        meeting_ready(&meetings, "one").await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        holder().await.as_deref(),
        Some("first"),
        "the follower took a live lease"
    );

    // kill -9: no chance to hand over; the lease (15 s) runs out and the follower takes it.
    first.signal("KILL");
    let killed = Instant::now();
    apply("two");
    wait_for("second to lead", Duration::from_secs(40), || async {
        (holder().await.as_deref() == Some("second")).then_some(())
    })
    .await;
    let took_over = killed.elapsed();
    wait_for("meeting two Ready under the new leader", LONG, || async {
        meeting_ready(&meetings, "two").await
    })
    .await;
    eprintln!(
        "FIGURES: leader killed -> follower leads in {:.1} s (lease 15 s, renewed every 5 s)",
        took_over.as_secs_f64()
    );
    assert!(
        took_over <= Duration::from_secs(25),
        "takeover took {took_over:?}, more than the lease time plus one retry"
    );
    assert!(
        !operator_log(&cluster, "second").contains("panicked"),
        "{}",
        operator_log(&cluster, "second")
    );
    drop(cp);
}
