//! The RelayPool reconciler against a fake API server (every request recorded), a real
//! control plane and real relays: it creates the StatefulSet, Service and PDB; scales up
//! when participants rise; drains the highest relay when they fall and removes it only once
//! its live meeting is over, also across an operator restart.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use videocall_operator::controller::relay_pool::reconcile;

const SETS: &str = "/apis/apps/v1/namespaces/calls/statefulsets/edge";
const SERVICE: &str = "/api/v1/namespaces/calls/services/edge";
const PDB: &str = "/apis/policy/v1/namespaces/calls/poddisruptionbudgets/edge";
const POOL: &str = "/apis/videocall.dev/v1alpha1/namespaces/calls/relaypools/edge";

fn replicas(api: &std::sync::Mutex<FakeApi>) -> Option<i64> {
    api.lock().unwrap().objects.get(SETS)?["spec"]["replicas"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_on_participants_and_never_cuts_a_live_meeting() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let url = format!("http://{}", cp.addr);
    let pool = pool(&url);
    let (kube, api) = fake_kube(HashMap::from([(
        POOL.to_owned(),
        serde_json::to_value(&pool).unwrap(),
    )]));
    let ctx = context(kube, &url);
    let pool = Arc::new(pool);
    let relay0 = relay("edge-0", &url).await;

    // First reconcile: Service, PDB, and a StatefulSet at the minimum, owned by the pool.
    reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile");
    {
        let api = api.lock().unwrap();
        assert_eq!(api.requests_to("PATCH", SERVICE).len(), 1);
        assert_eq!(api.requests_to("PATCH", PDB).len(), 1);
        let set = &api.requests_to("PATCH", SETS)[0].body;
        assert_eq!(set["spec"]["replicas"], json!(1));
        assert_eq!(
            set["metadata"]["ownerReferences"][0]["kind"],
            json!("RelayPool")
        );
        let status = &api.requests_to("PATCH", &format!("{POOL}/status"))[0].body["status"];
        assert_eq!(status["desiredReplicas"], json!(1));
    }

    // Three people in meeting A (all on edge-0): two relays wanted.
    create_meeting(&url, "a").await;
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(guest(&url, "a").await);
    }
    eventually(
        "edge-0 reports 3 participants",
        Duration::from_secs(5),
        || async {
            ctx.control_plane
                .relays()
                .await
                .unwrap()
                .iter()
                .any(|r| r.participants == 3)
        },
    )
    .await;
    reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(
        replicas(&api),
        Some(2),
        "scaled up for 3 participants at 2 per relay"
    );

    // The new relay comes up; meeting B lands on it (least loaded).
    let relay1 = relay("edge-1", &url).await;
    eventually("edge-1 registered", Duration::from_secs(5), || async {
        ctx.control_plane
            .relays()
            .await
            .unwrap()
            .iter()
            .any(|r| r.fresh && r.endpoints.as_ref().unwrap().relay_id == "edge-1")
    })
    .await;
    create_meeting(&url, "b").await;
    let b = guest(&url, "b").await;
    assert_eq!(b.joined.relay_id, "edge-1");

    // Two leave A: 2 participants want 1 relay. The highest relay (edge-1) is drained, but
    // it hosts B, so it stays.
    for gone in a.drain(1..) {
        gone.sender().leave().await;
    }
    eventually(
        "2 participants reported",
        Duration::from_secs(5),
        || async {
            ctx.control_plane
                .relays()
                .await
                .unwrap()
                .iter()
                .map(|r| r.participants)
                .sum::<u32>()
                == 2
        },
    )
    .await;
    reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile");
    eventually("edge-1 draining", Duration::from_secs(5), || async {
        ctx.control_plane
            .relays()
            .await
            .unwrap()
            .iter()
            .any(|r| r.draining && r.endpoints.as_ref().unwrap().relay_id == "edge-1")
    })
    .await;
    for _ in 0..3 {
        reconcile(pool.clone(), ctx.clone())
            .await
            .expect("reconcile");
        assert_eq!(
            replicas(&api),
            Some(2),
            "a relay with a live meeting is never removed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(a.len(), 1);

    // The operator restarts (a new leader, nothing remembered): it resumes the drain instead
    // of starting another, and still keeps the relay with the live meeting.
    let ctx = context(ctx.client.clone(), &url);
    reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile after restart");
    assert_eq!(
        replicas(&api),
        Some(2),
        "a restart does not cut the live meeting"
    );

    // B ends: edge-1 is empty (it drains and stops), and only now is it removed.
    b.sender().leave().await;
    drop(b);
    eventually("edge-1 empty or gone", Duration::from_secs(10), || async {
        ctx.control_plane.relays().await.unwrap().iter().any(|r| {
            r.endpoints.as_ref().unwrap().relay_id == "edge-1" && (r.meetings == 0 || !r.fresh)
        })
    })
    .await;
    reconcile(pool.clone(), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(replicas(&api), Some(1), "the drained relay is removed");
    let events: Vec<String> = api
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
        .filter_map(|r| r.body["reason"].as_str().map(str::to_owned))
        .collect();
    for reason in ["ScaledUp", "Draining", "ScaledDown"] {
        assert_eq!(
            events.iter().filter(|e| *e == reason).count(),
            1,
            "one {reason} event expected in {events:?} (the restart repeats nothing)"
        );
    }
    drop(a);
    relay0.shutdown();
    relay1.shutdown();
    cp.stop().await;
}
