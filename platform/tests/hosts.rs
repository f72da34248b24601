//! Hosting a meeting on the meeting page, in Debian's headless Chromium (`web/e2e/hosts.mjs`):
//! a private meeting whose guests wait; its owner (the platform's admin, signed in with a
//! password) admits one guest, turns another away, sees raised hands in order, mutes a guest
//! (whose audio then stops reaching the others), asks them to unmute, makes a member a co-host
//! who admits the next guests, locks the meeting against a member, removes a guest and bans
//! the co-host, and ends the meeting for all. The page's accessibility is checked on the way, and
//! screenshots are taken at desktop and phone sizes.

use std::time::Duration;

use tonic::Request;
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{
    Access, CreateMeetingRequest, CreateUserRequest, Role, WaitingRoom,
};

mod common;

use common::{root, up, PlatformInfo};

/// The meeting the test hosts.
const MEETING: &str = "townhall";

/// Members of the meeting (accounts, allowed in without waiting), with their passwords.
const MEMBERS: [(&str, &str, &str); 2] = [
    ("sam", "Sam Member", "sam-password-1"),
    ("kim", "Kim Late", "kim-password-1"),
];

async fn create_members_and_meeting(info: &PlatformInfo) {
    let authorization = common::admin_authorization(info).await;
    fn with_auth<T>(authorization: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().expect("header"));
        request
    }
    let mut auth = AuthServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect");
    for (username, display_name, password) in MEMBERS {
        auth.create_user(with_auth(
            &authorization,
            CreateUserRequest {
                username: username.into(),
                password: password.into(),
                display_name: display_name.into(),
                role: Role::User as i32,
            },
        ))
        .await
        .expect("create a member");
    }
    MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect")
        .create_meeting(with_auth(
            &authorization,
            CreateMeetingRequest {
                id: MEETING.into(),
                title: "Town hall".into(),
                access: Access::Private as i32,
                allowed_users: MEMBERS.iter().map(|m| m.0.to_owned()).collect(),
                guests_allowed: true,
                waiting_room: WaitingRoom::Guests as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("create the meeting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_runs_a_meeting_from_the_meeting_page_in_chromium() {
    assert!(
        root().join("web/dist/index.html").is_file(),
        "web/dist missing: run scripts/web-build.sh"
    );
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    create_members_and_meeting(&info).await;
    let admin_password =
        std::fs::read_to_string(&info.admin_password_file).expect("admin password");
    let accounts = serde_json::json!({
        "host": [info.admin_user, admin_password.trim()],
        "member": [MEMBERS[0].0, MEMBERS[0].2],
        "late": [MEMBERS[1].0, MEMBERS[1].2],
    });
    common::run_browser_script(
        "hosts.mjs",
        &info.http_url,
        &[MEETING, &accounts.to_string()],
        Duration::from_secs(300),
        "hosting a meeting in Chromium",
    )
    .await;
}
