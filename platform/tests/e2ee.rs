//! An end-to-end encrypted meeting on the platform: a client that does not encrypt gets no
//! grant, two `videocall join` participants encrypt (one publishes, the other receives what
//! it publishes, opened), and a participant that holds a grant but no group key sees only
//! sealed frames pass the relay and the gateway.

use std::process::{Command, Stdio};
use std::time::Duration;

use tonic::Request;
use videocall_client::{Client, ConnectOptions, Event, RelayAddress, Transport};
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{CreateMeetingRequest, JoinMeetingRequest};
use videocall_protocol::wire::{envelope::Body, MediaKind};

mod common;
use common::{PlatformInfo, BIN};

const MEETING: &str = "secret";

async fn create_encrypted_meeting(info: &PlatformInfo) {
    let authorization = common::admin_authorization(info).await;
    let mut request = Request::new(CreateMeetingRequest {
        id: MEETING.into(),
        title: "Encrypted".into(),
        guests_allowed: true,
        e2ee_required: true,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", authorization.parse().expect("header"));
    let meeting = MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API")
        .create_meeting(request)
        .await
        .expect("create the meeting")
        .into_inner();
    assert!(meeting.e2ee_required);
}

fn join(data: &std::path::Path, user: &str, extra: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args([
            "join",
            "--meeting",
            MEETING,
            "--user",
            user,
            "--seconds",
            "8",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_participants_meet_encrypted_and_nothing_passes_in_clear() {
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = common::up(data.path(), "127.0.0.1:0", &[]).await;
    create_encrypted_meeting(&info).await;
    let mut meetings = MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API");
    let grant = |key: Vec<u8>| JoinMeetingRequest {
        meeting_id: MEETING.into(),
        display_name: "Eve".into(),
        e2ee_signature_key: key,
        ..Default::default()
    };
    let refused = meetings
        .join_meeting(grant(Vec::new()))
        .await
        .expect_err("a client that does not encrypt is refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("end-to-end encrypted"));

    // Eve has a grant (her key is her own) but never joins the group: she sees what the relay
    // forwards, and it is sealed.
    let eve_grant = meetings
        .join_meeting(grant(vec![9; 32]))
        .await
        .expect("grant")
        .into_inner();
    let relay = eve_grant.relay.clone().expect("relay");
    let address = RelayAddress {
        webtransport_url: relay.webtransport_url,
        websocket_url: relay.websocket_url,
        certificate_sha256: relay.certificate_sha256.first().cloned(),
    };
    let mut eve = Client::connect(ConnectOptions::new(
        Transport::WebSocket,
        address,
        MEETING,
        &eve_grant.token,
    ))
    .await
    .expect("eve joins");

    let carol = join(data.path(), "carol", &["--publish"]);
    let dave = join(data.path(), "dave", &["--transport", "websocket"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut sealed = 0;
    while sealed < 30 {
        let event = tokio::time::timeout_at(deadline, eve.next_event())
            .await
            .expect("sealed media within 15 s")
            .expect("eve's session");
        if let Event::Message(Body::Media(media)) = event {
            assert!(media.sealed, "clear media passed the relay");
            // The synthetic publisher's payload is its sequence number, then zeros.
            let zeros = media.payload.iter().filter(|b| **b == 0).count();
            assert!(
                zeros < media.payload.len() / 2,
                "a sealed payload looks like the plaintext"
            );
            assert!(media.kind == MediaKind::Video as i32 || media.kind == MediaKind::Audio as i32);
            sealed += 1;
        }
    }
    let carol = carol.wait_with_output().expect("carol");
    let dave = dave.wait_with_output().expect("dave");
    let (carol, dave) = (
        String::from_utf8_lossy(&carol.stdout),
        String::from_utf8_lossy(&dave.stdout),
    );
    for printed in [&carol, &dave] {
        assert!(printed.contains("end-to-end encrypted"), "{printed}");
        assert!(printed.contains("🔒 epoch"), "{printed}");
    }
    // Both show the same verification codes for the same members: the last epoch dave saw
    // (carol may see one more, when dave leaves first).
    let dave_last = dave
        .lines()
        .rev()
        .find(|l| l.starts_with("🔒 epoch"))
        .expect("an epoch");
    assert!(dave_last.contains("carol ["), "{dave}");
    assert!(carol.lines().any(|l| l == dave_last), "{carol}\n{dave}");
    // Dave opened carol's frames: he reports her rates (frames that do not open are dropped
    // before they are counted).
    let from_carol: Vec<&str> = dave
        .lines()
        .filter(|l| l.contains("from CAROL") || l.contains("from carol"))
        .collect();
    assert!(
        from_carol
            .iter()
            .any(|l| !l.contains(" 0 video frames/s") && l.contains("video frames/s")),
        "{dave}"
    );
}

/// `videocall up --demo-e2ee`: the demo meeting is end-to-end encrypted (a newcomer can try it
/// with two commands), and a start without the flag makes it clear again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_meeting_is_encrypted_when_up_says_so() {
    let data = tempfile::tempdir().expect("temp dir");
    let demo_e2ee = |info: PlatformInfo| async move {
        MeetingServiceClient::connect(info.api_url.clone())
            .await
            .expect("connect API")
            .get_meeting(videocall_control_api::v1::GetMeetingRequest { id: "demo".into() })
            .await
            .expect("the demo meeting")
            .into_inner()
            .e2ee_required
    };
    {
        let (_platform, info) = common::up(data.path(), "127.0.0.1:0", &["--demo-e2ee"]).await;
        assert!(
            demo_e2ee(info).await,
            "--demo-e2ee: the demo meeting is encrypted"
        );
    }
    let (_platform, info) = common::up(data.path(), "127.0.0.1:0", &[]).await;
    assert!(
        !demo_e2ee(info).await,
        "without the flag the demo meeting is clear again"
    );
}
