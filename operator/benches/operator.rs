//! Operator figures for BENCHMARKS.md: Meeting applied → Ready, load over the threshold →
//! new relay registered, drain → removal, and reconcile latency with 1,000 Meetings.
//!
//! The reconcilers run against the tests' fake API server (no kube-apiserver can be installed
//! on this machine), with a real control plane (SQLite, production heartbeat settings) and real
//! relays on loopback. Run: `cargo bench -p videocall-operator --bench operator`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fake_kube, participants, percentiles, relay, FakeApi, OPERATOR_KEY, RELAY_KEY};
use videocall_operator::controller::{meeting, relay_pool, Context};
use videocall_operator::crd::{Meeting, MeetingPhase, RelayPool};

const MEETINGS: &str = "/apis/videocall.dev/v1alpha1/namespaces/calls/meetings";
const POOL: &str = "/apis/videocall.dev/v1alpha1/namespaces/calls/relaypools/edge";
const SETS: &str = "/apis/apps/v1/namespaces/calls/statefulsets/edge";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn stored(api: &std::sync::Mutex<FakeApi>, name: &str) -> Meeting {
    let value = api.lock().expect("api").objects[&format!("{MEETINGS}/{name}")].clone();
    serde_json::from_value(value).expect("a Meeting")
}

fn replicas(api: &std::sync::Mutex<FakeApi>) -> Option<i64> {
    api.lock().expect("api").objects.get(SETS)?["spec"]["replicas"].as_i64()
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Production heartbeat settings: the figures include how late the operator can learn.
    let mut config = videocall_control_plane::ControlPlaneConfig::defaults();
    config.grpc_addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("cp.db").display());
    config.bootstrap_api_keys = vec![
        format!("operator:admin:{}:{}", OPERATOR_KEY.0, OPERATOR_KEY.1),
        format!("relays:relay:{}:{}", RELAY_KEY.0, RELAY_KEY.1),
    ];
    println!(
        "control plane: SQLite, heartbeat every {} ms; relay pool resync every {} s ({} s while scaling or draining)",
        config.heartbeat_interval_ms,
        relay_pool::RESYNC.as_secs(),
        relay_pool::ACTIVE_RESYNC.as_secs()
    );
    let cp = videocall_control_plane::ControlPlaneServer::start(config)
        .await
        .expect("control plane");
    let url = format!("http://{}", cp.addr);
    let pool = common::pool(&url);
    let mut objects = HashMap::from([(
        POOL.to_owned(),
        serde_json::to_value(&pool).expect("pool json"),
    )]);
    const MEETING_COUNT: usize = 1_000;
    for i in 0..MEETING_COUNT {
        let name = format!("m{i:04}");
        objects.insert(
            format!("{MEETINGS}/{name}"),
            serde_json::to_value(common::meeting(&name, "edge")).expect("meeting json"),
        );
    }
    let (kube, api) = fake_kube(objects);
    let ctx = common::context(kube, &url);
    let relay0 = relay("edge-0", &url).await;

    meetings(&ctx, &api, MEETING_COUNT).await;
    scaling(&ctx, &api, Arc::new(pool), &url).await;

    relay0.shutdown();
    cp.stop().await;
}

/// Applied → Ready for each of 1,000 Meetings (the two reconciles a new object gets: the
/// finalizer, then the control-plane meeting and status), then a steady-state pass over all.
async fn meetings(ctx: &Arc<Context>, api: &Arc<std::sync::Mutex<FakeApi>>, count: usize) {
    let mut to_ready = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let name = format!("m{i:04}");
        let t0 = Instant::now();
        meeting::reconcile(Arc::new(stored(api, &name)), ctx.clone())
            .await
            .expect("reconcile (finalizer)");
        meeting::reconcile(Arc::new(stored(api, &name)), ctx.clone())
            .await
            .expect("reconcile (create)");
        let phase = stored(api, &name).status.map(|s| s.phase);
        assert_eq!(phase, Some(MeetingPhase::Ready), "{name}");
        to_ready.push(t0.elapsed());
    }
    let first_pass = started.elapsed();
    percentiles("Meeting applied → Ready (operator part)", to_ready);
    println!(
        "  {count} new Meetings reconciled in {:.2} s ({:.0}/s)",
        first_pass.as_secs_f64(),
        count as f64 / first_pass.as_secs_f64()
    );

    for pass in 1..=2 {
        let mut each = Vec::with_capacity(count);
        let started = Instant::now();
        for i in 0..count {
            let name = format!("m{i:04}");
            let object = Arc::new(stored(api, &name));
            let t0 = Instant::now();
            meeting::reconcile(object, ctx.clone())
                .await
                .expect("reconcile (steady)");
            each.push(t0.elapsed());
        }
        percentiles(
            &format!("steady reconcile, {count} Meetings, pass {pass}"),
            each,
        );
        println!(
            "  one resync of all {count} Meetings: {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
}

async fn wait_until<F, Fut>(mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !check().await {
        assert!(t0.elapsed() < Duration::from_secs(30), "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

/// Participants cross the threshold → replicas rise → the new relay registers; then they
/// leave → the highest relay is drained → replicas fall.
async fn scaling(
    ctx: &Arc<Context>,
    api: &Arc<std::sync::Mutex<FakeApi>>,
    pool: Arc<RelayPool>,
    url: &str,
) {
    relay_pool::reconcile(pool.clone(), ctx.clone())
        .await
        .expect("first reconcile");
    assert_eq!(replicas(api), Some(1));
    common::create_meeting(url, "busy").await;

    let mut guests = Vec::new();
    for _ in 0..3 {
        guests.push(common::guest(url, "busy").await);
    }
    // The threshold (2 per relay) is crossed now.
    let seen = wait_until(|| async { participants(&ctx.control_plane).await == 3 }).await;
    let t0 = Instant::now();
    relay_pool::reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile");
    let reconcile_up = t0.elapsed();
    assert_eq!(replicas(api), Some(2), "scaled up");
    let t1 = Instant::now();
    let relay1 = relay("edge-1", url).await;
    let registered = wait_until(|| async {
        ctx.control_plane.relays().await.is_ok_and(|relays| {
            relays
                .iter()
                .any(|r| r.fresh && r.endpoints.as_ref().is_some_and(|e| e.relay_id == "edge-1"))
        })
    })
    .await;
    let start_to_registered = t1.elapsed();
    println!("load over the threshold → new relay:");
    println!(
        "  joins → control plane sees the load        {:>8.1} ms (relay heartbeat)",
        seen.as_secs_f64() * 1e3
    );
    println!(
        "  reconcile → StatefulSet replicas 1 → 2     {:>8.1} ms",
        reconcile_up.as_secs_f64() * 1e3
    );
    println!(
        "  relay process start → registered, fresh    {:>8.1} ms (first register {:.1} ms)",
        start_to_registered.as_secs_f64() * 1e3,
        registered.as_secs_f64() * 1e3
    );
    println!(
        "  worst case ≈ heartbeat + resync ({} s) + the above + pod scheduling and image pull",
        relay_pool::RESYNC.as_secs()
    );

    for guest in guests.drain(..) {
        guest.sender().leave().await;
    }
    let seen = wait_until(|| async { participants(&ctx.control_plane).await == 0 }).await;
    let t0 = Instant::now();
    relay_pool::reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile (drain)");
    let drain_asked = t0.elapsed();
    let mut reconciles = 0;
    let removed = wait_until(|| {
        reconciles += 1;
        let pool = pool.clone();
        let ctx = ctx.clone();
        async move {
            relay_pool::reconcile(pool, ctx).await.expect("reconcile");
            replicas(api) == Some(1)
        }
    })
    .await;
    println!("drain → removal (empty relay):");
    println!(
        "  leaves → control plane sees 0              {:>8.1} ms",
        seen.as_secs_f64() * 1e3
    );
    println!(
        "  reconcile that drains edge-1               {:>8.1} ms",
        drain_asked.as_secs_f64() * 1e3
    );
    println!(
        "  drain → replicas 2 → 1                     {:>8.1} ms ({reconciles} reconciles, back to back)",
        removed.as_secs_f64() * 1e3
    );
    println!("  with a live meeting the relay stays until it ends or the drain timeout passes");
    relay1.shutdown();
}
