//! `videocall-streamer` against a real control plane and relay on loopback (in this process;
//! the streamer is its own process): a native subscriber decodes the test pattern with
//! openh264 and reads the burned-in counter and clock; SIGTERM leaves the meeting; bad input
//! gets one clear line and a non-zero exit; an unreachable control plane is retried.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use clap::Parser;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tokio::time::Instant;
use tonic::Request;
use videocall_client::control_plane::ControlPlaneGrants;
use videocall_client::rejoin::GrantSource;
use videocall_client::{Client, ConnectOptions, Event, Transport};
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::{CreateMeetingRequest, EndMeetingRequest, ListRelaysRequest};
use videocall_protocol::wire::{envelope::Body, LeaveReason};
use videocall_streamer::pattern;
use videocall_testkit::ChildGuard;

const BIN: &str = env!("CARGO_BIN_EXE_videocall-streamer");
const ADMIN_KEY: (&str, &str) = ("vk_admin", "admin-secret-0123456789");
const RELAY_KEY: (&str, &str) = ("vk_relays", "relay-secret-0123456789");

#[derive(Parser)]
struct RelayArgs {
    #[command(flatten)]
    config: videocall_relay::RelayConfig,
}

/// A control plane (SQLite) and one relay registered with it, on loopback.
struct Platform {
    url: String,
    _control_plane: videocall_control_plane::ControlPlaneServer,
    _relay: videocall_relay::RelayHandle,
    _dir: tempfile::TempDir,
}

fn admin<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = videocall_control_api::api_key_authorization(ADMIN_KEY.0, ADMIN_KEY.1);
    request
        .metadata_mut()
        .insert("authorization", value.parse().expect("header"));
    request
}

impl Platform {
    async fn start() -> Platform {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = videocall_control_plane::ControlPlaneConfig::defaults();
        config.grpc_addr = "127.0.0.1:0".parse().expect("addr");
        config.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("cp.db").display());
        config.heartbeat_interval_ms = 200;
        config.bootstrap_api_keys = vec![
            format!("admin:admin:{}:{}", ADMIN_KEY.0, ADMIN_KEY.1),
            format!("relays:relay:{}:{}", RELAY_KEY.0, RELAY_KEY.1),
        ];
        let control_plane = videocall_control_plane::ControlPlaneServer::start(config)
            .await
            .expect("control plane");
        let url = format!("http://{}", control_plane.addr);
        let key = format!("{}:{}", RELAY_KEY.0, RELAY_KEY.1);
        let args = RelayArgs::parse_from(
            ["relay", "--relay-id", "relay-a"]
                .into_iter()
                .chain(videocall_testkit::LOOPBACK_RELAY_ADDRS)
                .chain(["--control-plane-url", &url, "--control-plane-api-key", &key]),
        );
        let relay = videocall_relay::start(args.config).await.expect("relay");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let relays = RelayServiceClient::connect(url.clone())
                .await
                .expect("connect")
                .list_relays(admin(ListRelaysRequest {}))
                .await
                .expect("list relays")
                .into_inner()
                .relays;
            if relays.iter().any(|r| r.fresh) {
                break;
            }
            assert!(Instant::now() < deadline, "the relay never registered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut meetings = MeetingServiceClient::connect(url.clone())
            .await
            .expect("connect");
        for id in ["shelf", "over"] {
            meetings
                .create_meeting(admin(CreateMeetingRequest {
                    id: id.into(),
                    guests_allowed: true,
                    ..Default::default()
                }))
                .await
                .expect("create meeting");
        }
        meetings
            .end_meeting(admin(EndMeetingRequest { id: "over".into() }))
            .await
            .expect("end meeting");
        Platform {
            url,
            _control_plane: control_plane,
            _relay: relay,
            _dir: dir,
        }
    }

    /// A guest subscriber in `shelf`.
    async fn subscriber(&self) -> Client {
        let grant = ControlPlaneGrants::new(&self.url, "shelf", "viewer")
            .receive_only(true)
            .grant(&[])
            .await
            .expect("grant");
        Client::connect(ConnectOptions::new(
            Transport::WebTransport,
            grant.relay,
            &grant.meeting_id,
            &grant.token,
        ))
        .await
        .expect("subscriber joins")
    }
}

fn streamer(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("stream")
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the streamer to its end (it must stop on its own within 20 s).
async fn run_to_end(mut command: Command) -> Output {
    let child = command.spawn().expect("spawn videocall-streamer");
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    tokio::time::timeout(Duration::from_secs(20), waited)
        .await
        .expect("the streamer exits within 20 s")
        .expect("join")
        .expect("output")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_decodes_the_test_pattern_and_its_counter_advances() {
    let platform = Platform::start().await;
    let admin_port = videocall_testkit::free_tcp_port();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let child = streamer(&[
        "--control-plane-url",
        &platform.url,
        "--meeting-id",
        "shelf",
        "--user-id",
        "pi",
        "--resolution",
        "320x240",
        "--fps",
        "15",
        "--bitrate-kbps",
        "300",
        "--admin-addr",
        &admin_addr,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn videocall-streamer");
    let mut child = ChildGuard(child);
    let mut viewer = platform.subscriber().await;

    // The streamer's frames, decoded; the counter read off each picture.
    let mut decoder = Decoder::new().expect("decoder");
    let (mut counters, mut ages_ms, mut streamer_id) = (Vec::new(), Vec::new(), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while counters.len() < 30 {
        let event = tokio::time::timeout_at(deadline, viewer.next_event())
            .await
            .unwrap_or_else(|_| panic!("30 decoded frames within 20 s (got {counters:?})"))
            .expect("the viewer's session goes on");
        let Event::Message(Body::Media(media)) = event else {
            continue;
        };
        if counters.is_empty() && !media.keyframe {
            continue;
        }
        streamer_id = Some(media.participant_id);
        if let Some(picture) = decoder.decode(&media.payload).expect("the H.264 decodes") {
            let (width, height) = picture.dimensions();
            assert_eq!((width, height), (320, 240));
            let code = pattern::read_code(picture.y(), picture.strides().0, width, height)
                .expect("the burned-in strip reads");
            counters.push(code.counter);
            ages_ms.push(videocall_client::unix_micros() / 1000 - code.captured_ms);
            assert_eq!(media.capture_timestamp_us / 1000, code.captured_ms);
        }
    }
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "every frame, in order: {counters:?}"
    );
    ages_ms.sort_unstable();
    let median = ages_ms[ages_ms.len() / 2];
    println!("streamer → relay → viewer: median {median} ms from the burned-in clock");
    assert!(median < 1000, "frames arrive {median} ms old");

    // Probes and metrics.
    let addr = admin_addr.parse().expect("addr");
    let (status, _) = videocall_testkit::http_request(addr, "GET", "/readyz").await;
    assert_eq!(status, 200);
    let (status, _) = videocall_testkit::http_request(addr, "GET", "/healthz").await;
    assert_eq!(status, 200);
    let (_, metrics) = videocall_testkit::http_request(addr, "GET", "/metrics").await;
    assert!(videocall_testkit::metric_value(&metrics, "streamer_frames_sent_total") >= 30.0);
    assert!(videocall_testkit::metric_value(&metrics, "streamer_keyframes_total") >= 1.0);

    // SIGTERM: the streamer leaves (the viewer is told LEFT) and exits 0.
    child.signal("TERM");
    let streamer_id = streamer_id.expect("the streamer's id");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, viewer.next_event())
            .await
            .expect("the streamer leaves within 10 s")
            .expect("the viewer's session goes on");
        if let Event::Message(Body::ParticipantLeft(left)) = event {
            assert_eq!(left.participant_id, streamer_id);
            assert_eq!(left.reason(), LeaveReason::Left);
            break;
        }
    }
    let exit = child.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_clear_line_and_a_non_zero_exit() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let corrupt = dir.path().join("corrupt.y4m");
    std::fs::write(&corrupt, b"this is not a video\n").expect("write");
    let corrupt = corrupt.display().to_string();
    let base = |meeting: &'static str| {
        vec![
            "--control-plane-url".to_owned(),
            platform.url.clone(),
            "--meeting-id".to_owned(),
            meeting.to_owned(),
            "--user-id".to_owned(),
            "pi".to_owned(),
        ]
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            [base("shelf"), vec!["--resolution".into(), "641x480".into()]].concat(),
            "unsupported resolution 641x480",
        ),
        (
            [base("shelf"), vec!["--source".into(), corrupt.clone()]].concat(),
            "is not a playable Y4M file",
        ),
        (
            [base("shelf"), vec!["--source".into(), "webcam".into()]].concat(),
            "expected test-pattern or a .y4m file",
        ),
        (base("nope"), "meeting nope not found"),
        (base("over"), "has ended"),
        (
            [base("shelf"), vec!["--api-key".into(), "no-colon".into()]].concat(),
            "key-id:secret",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_to_end(streamer(&args)).await;
        let said = text(&output);
        assert!(!output.status.success(), "{args:?} should fail: {said}");
        assert!(
            said.contains(expected),
            "{args:?}: {expected:?} not in {said}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Ours, or clap's for a flag it could not parse.
        let clear = stderr
            .lines()
            .filter(|l| l.starts_with("videocall-streamer: ") || l.starts_with("error: "))
            .count();
        assert_eq!(clear, 1, "one clear line: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_control_plane_is_retried_until_stopped() {
    let url = format!("http://127.0.0.1:{}", videocall_testkit::free_tcp_port());
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = streamer(&[
        "--control-plane-url",
        &url,
        "--meeting-id",
        "shelf",
        "--user-id",
        "pi",
        "--resolution",
        "320x240",
    ])
    .stdout(log.reopen().expect("log"))
    .spawn()
    .expect("spawn");
    let mut child = ChildGuard(child);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "still trying after 3 s"
    );
    child.signal("TERM");
    let exit = child.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit, Some(0), "a stop while retrying is a clean exit");
    let said = std::fs::read_to_string(log.path()).expect("log");
    assert!(said.contains("cannot join yet"), "{said}");
}
