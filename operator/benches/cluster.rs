//! Operator figures on a real API server for BENCHMARKS.md: Meeting applied → Ready as a
//! watch sees it, and participants over the threshold → StatefulSet scaled (and back down).
//!
//! kube-apiserver v1.20.2 (HTTPS, RBAC, etcd, controller manager: `scripts/kube.sh`), the chart
//! installed by helm, the operator binary under the chart's ServiceAccount, a control plane
//! with production heartbeat settings (1 s) and a real relay on loopback.
//! Run: `cargo bench -p videocall-operator --bench cluster`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{participants, percentiles};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use videocall_operator::crd::{Meeting, MeetingPhase};
use videocall_testkit::ChildGuard;

const NAMESPACE: &str = "videocall";
const MEETINGS: usize = 50;
const CYCLES: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let t0 = Instant::now();
    let cluster = Cluster::start();
    println!(
        "kube-apiserver v1.20.2 ready in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let admin = cluster.admin().await;
    let credentials = cluster.install_chart(NAMESPACE);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = videocall_control_plane::ControlPlaneConfig::defaults();
    config.grpc_addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("cp.db").display());
    config.bootstrap_api_keys = credentials.bootstrap_api_keys.clone();
    println!(
        "control plane: SQLite, heartbeat every {} ms",
        config.heartbeat_interval_ms
    );
    let cp = videocall_control_plane::ControlPlaneServer::start(config)
        .await
        .expect("control plane");
    let url = format!("http://{}", cp.addr);
    let relay0 = common::relay_with_key("edge-0", &url, &credentials.relay_api_key).await;

    let kubeconfig = cluster
        .service_account_kubeconfig(NAMESPACE, "videocall-operator")
        .await;
    let log = std::fs::File::create(dir.path().join("operator.log")).expect("log");
    let _operator = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_videocall-operator"))
            .args([
                "run",
                "--control-plane-url",
                &url,
                "--control-plane-api-key",
                &credentials.operator_api_key,
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-namespace",
                NAMESPACE,
                "--no-leader-election",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("operator"),
    );

    meetings_to_ready(&admin).await;
    scaling(
        &cluster,
        &admin,
        &url,
        &credentials.operator_api_key,
        &credentials.relay_api_key,
    )
    .await;

    relay0.shutdown();
    cp.stop().await;
}

/// Creates Meetings one at a time and waits for a watch to show each Ready.
async fn meetings_to_ready(admin: &kube::Client) {
    let api: Api<Meeting> = Api::namespaced(admin.clone(), NAMESPACE);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut samples = Vec::with_capacity(MEETINGS);
    let started = Instant::now();
    for i in 0..MEETINGS {
        let name = format!("m{i:03}");
        let mut meeting = common::meeting(&name, "relays");
        meeting.metadata = kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        };
        let t0 = Instant::now();
        api.create(&PostParams::default(), &meeting)
            .await
            .expect("create meeting");
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .expect("a watch event within 30 s")
                .expect("watch open")
                .expect("watch event");
            let ready = |m: &Meeting| {
                m.metadata.name.as_deref() == Some(name.as_str())
                    && m.status
                        .as_ref()
                        .is_some_and(|s| s.phase == MeetingPhase::Ready)
            };
            let seen = match &event {
                watcher::Event::Apply(m) | watcher::Event::InitApply(m) => ready(m),
                _ => false,
            };
            if seen {
                break;
            }
        }
        samples.push(t0.elapsed());
    }
    let all = started.elapsed();
    percentiles("Meeting created → Ready seen by a watch", samples);
    println!(
        "  {MEETINGS} Meetings one after another in {:.2} s",
        all.as_secs_f64()
    );
}

async fn replicas_seen(sets: &Api<StatefulSet>, want: i32, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let now = sets
            .list(&ListParams::default().fields("metadata.name=edge"))
            .await
            .ok()
            .and_then(|l| l.items.into_iter().next())
            .and_then(|s| s.spec?.replicas);
        if now == Some(want) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < within, "replicas never reached {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Guests cross a two-per-relay threshold → the operator scales the StatefulSet to two (and
/// relay edge-1 starts, as its pod would); they leave → it drains edge-1 and removes it.
async fn scaling(
    cluster: &Cluster,
    admin: &kube::Client,
    url: &str,
    operator_key: &str,
    relay_key: &str,
) {
    cluster.apply_small_pool(NAMESPACE, url);
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), NAMESPACE);
    replicas_seen(&sets, 1, Duration::from_secs(60)).await;
    let control_plane =
        videocall_operator::control_plane::ControlPlaneClient::new(url, operator_key)
            .expect("control-plane client");
    let (mut seen, mut scaled, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CYCLES {
        let mut guests = Vec::new();
        for _ in 0..3 {
            guests.push(common::guest(url, "videocall.m000").await);
        }
        let t0 = Instant::now();
        while participants(&control_plane).await < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.push(t0.elapsed());
        let t1 = Instant::now();
        replicas_seen(&sets, 2, Duration::from_secs(60)).await;
        scaled.push(t1.elapsed());
        // What the new pod would run: relay edge-1, registered. It hosts nobody yet.
        let relay1 = common::relay_with_key("edge-1", url, relay_key).await;
        for guest in guests.drain(..) {
            guest.sender().leave().await;
        }
        while participants(&control_plane).await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t2 = Instant::now();
        replicas_seen(&sets, 1, Duration::from_secs(60)).await;
        down.push(t2.elapsed());
        relay1.shutdown();
    }
    percentiles("joins → control plane sees the load (heartbeat)", seen);
    percentiles("load seen → StatefulSet 1 → 2 (resync + apply)", scaled);
    percentiles("leaves seen → drained, StatefulSet 2 → 1", down);
}
