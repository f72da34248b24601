//! The control plane's `/metrics`, apart from the API: every RPC by method and code with its
//! time, join grants, placements and the database pools, with zeros from the start.

mod common;

use common::*;
use tonic::Code;
use videocall_control_api::v1::{Access, CreateMeetingRequest, LoginRequest};
use videocall_testkit::{http_request, metric_value};

async fn scrape(cp: &ControlPlane) -> String {
    let addr = cp.metrics_addr.expect("metrics served");
    let (status, body) = http_request(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

fn rpcs(text: &str, method: &str, code: &str) -> f64 {
    metric_value(
        text,
        &format!("videocall_control_plane_rpcs_total{{code=\"{code}\",method=\"{method}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_grants_placements_and_pools_are_counted() {
    let db = Database::create(Backend::Sqlite).await;
    let cp = ControlPlane::start(&db, &["--metrics-addr", "127.0.0.1:0"]).await;
    let before = scrape(&cp).await;
    assert_eq!(
        rpcs(&before, "AuthService/Login", "OK"),
        0.0,
        "zero from the start"
    );
    assert_eq!(
        rpcs(&before, "MeetingService/JoinMeeting", "RESOURCE_EXHAUSTED"),
        0.0
    );
    assert_eq!(
        metric_value(&before, "videocall_control_plane_join_grants_total"),
        0.0
    );
    // The API port does not serve them (it is public behind the gateway).
    let (status, _) = http_request(cp.addr, "GET", "/metrics").await;
    assert_eq!(status, 404);

    let api = cp.api().await;
    let admin = api.admin().await;
    let wrong = api
        .auth()
        .login(req(
            LoginRequest {
                username: ADMIN.into(),
                password: "not the password".into(),
            },
            None,
        ))
        .await
        .expect_err("a wrong password");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    api.register_relay("relay-m", 100).await;
    api.create_meeting(
        &admin,
        CreateMeetingRequest {
            id: "counted".into(),
            title: "Counted".into(),
            access: Access::Public as i32,
            guests_allowed: true,
            max_participants: 5,
            ..Default::default()
        },
    )
    .await;
    for n in 0..3 {
        api.join(None, "counted", &format!("guest {n}"))
            .await
            .expect("a guest joins");
    }
    assert_status(
        api.join(None, "no-such-meeting", "x").await,
        Code::NotFound,
        "",
    );

    let after = scrape(&cp).await;
    assert_eq!(rpcs(&after, "AuthService/Login", "OK"), 1.0);
    assert_eq!(rpcs(&after, "AuthService/Login", "UNAUTHENTICATED"), 1.0);
    assert_eq!(rpcs(&after, "MeetingService/JoinMeeting", "OK"), 3.0);
    assert_eq!(rpcs(&after, "MeetingService/JoinMeeting", "NOT_FOUND"), 1.0);
    assert_eq!(rpcs(&after, "RelayService/RegisterRelay", "OK"), 1.0);
    assert_eq!(
        metric_value(
            &after,
            "videocall_control_plane_rpc_duration_seconds_count{method=\"MeetingService/JoinMeeting\"}"
        ),
        4.0
    );
    assert_eq!(
        metric_value(&after, "videocall_control_plane_join_grants_total"),
        3.0
    );
    // The first guest starts the meeting on the least-loaded relay; the others follow it.
    let placed = |decision: &str| {
        metric_value(
            &after,
            &format!("videocall_control_plane_placements_total{{decision=\"{decision}\"}}"),
        )
    };
    assert_eq!(
        placed("least_loaded") + placed("previous_relay") + placed("hosting_relay"),
        3.0
    );
    assert_eq!(placed("none"), 0.0);
    assert_eq!(
        metric_value(&after, "videocall_control_plane_relays{state=\"serving\"}"),
        1.0
    );
    assert_eq!(
        metric_value(&after, "videocall_control_plane_relays{state=\"down\"}"),
        0.0
    );
    assert!(
        metric_value(
            &after,
            "videocall_control_plane_db_connections{pool=\"main\",state=\"max\"}"
        ) >= 1.0
    );
    cp.stop().await;
    db.remove().await;
}
