//! Command one, as a newcomer runs it: `videocall up` starts everything in one data
//! directory (control plane on SQLite, relay registered with it), guests get join grants
//! through the real API, and two people can meet.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prost::Message;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use videocall_client::synthetic::{packet, VIDEO_TRACK};
use videocall_client::{Client, ConnectOptions, RelayAddress, Transport};
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{
    GetMeetingRequest, JoinGrant, JoinMeetingRequest, LoginRequest, Role,
};
use videocall_protocol::wire::{envelope::Body, MediaKind, TrackView, ViewTracks};
use videocall_testkit::{http_request, wait_for_message, ChildGuard};

mod common;

use common::{PlatformInfo, BIN};

async fn up(data: &Path) -> (ChildGuard, PlatformInfo) {
    common::up(data, "127.0.0.1:0", &[]).await
}

fn http_addr(info: &PlatformInfo) -> std::net::SocketAddr {
    info.http_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("http addr")
}

/// A grant for a guest named `name`, over gRPC.
async fn guest_grant(
    info: &PlatformInfo,
    meeting: &str,
    name: &str,
) -> Result<JoinGrant, tonic::Status> {
    let mut meetings = MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API");
    meetings
        .join_meeting(JoinMeetingRequest {
            meeting_id: meeting.into(),
            display_name: name.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

fn grant_address(grant: &JoinGrant) -> RelayAddress {
    let relay = grant.relay.clone().expect("relay");
    RelayAddress {
        webtransport_url: relay.webtransport_url,
        websocket_url: relay.websocket_url,
        certificate_sha256: relay.certificate_sha256.first().cloned(),
    }
}

/// One grpc-web call over HTTP/1.1; returns the raw response.
async fn grpc_web(addr: std::net::SocketAddr, path: &str, message: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nOrigin: http://localhost:3000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_control_plane_and_relay_and_two_guests_meet_in_demo() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut platform, info) = up(data.path()).await;
    assert!(info.relay.self_signed);
    assert_eq!(info.relay.certificate_sha256.len(), 64);
    assert!(data.path().join("tls/relay-cert.pem").exists());
    assert!(data.path().join("control-plane.db").exists());
    let admin_password =
        std::fs::read_to_string(&info.admin_password_file).expect("admin password file");

    let (status, page) = http_request(http_addr(&info), "GET", "/").await;
    assert_eq!(status, 200);
    assert!(page.contains(&info.relay.certificate_sha256));
    // What lives nowhere is a 404 page, through the gateway too.
    for path in ["/favicon.ico", "/no-such-page"] {
        let (status, page) = http_request(http_addr(&info), "GET", path).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(page.contains("Not found"), "{path}: {page}");
    }

    // The initial admin signs in with the printed credentials.
    let mut auth = AuthServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API");
    let login = auth
        .login(LoginRequest {
            username: info.admin_user.clone(),
            password: admin_password.trim().into(),
        })
        .await
        .expect("admin login")
        .into_inner();
    assert_eq!(login.user.expect("user").role, Role::Admin as i32);

    // Health and grpc-web on the same origin.
    let channel = tonic::transport::Endpoint::from_shared(info.api_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect health");
    let mut health = HealthClient::new(channel.clone());
    let serving = health
        .check(HealthCheckRequest {
            service: "videocall.control.v1.MeetingService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);
    // Server reflection: what `grpcurl list` asks.
    let mut reflection = ServerReflectionClient::new(channel);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("reflection answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let services: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "videocall.control.v1.AuthService",
        "videocall.control.v1.MeetingService",
        "videocall.control.v1.RelayService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&service),
            "{service} missing from {services:?}"
        );
    }

    let request = GetMeetingRequest { id: "demo".into() }.encode_to_vec();
    let web = grpc_web(
        http_addr(&info),
        "/videocall.control.v1.MeetingService/GetMeeting",
        &request,
    )
    .await;
    assert!(web.starts_with("HTTP/1.1 200"), "{web}");
    // The page calls from the platform's own origin; another origin is not allowed to.
    assert!(
        !web.to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{web}"
    );
    assert!(web.contains("Demo meeting"), "{web}");
    assert!(web.contains("grpc-status:0"), "{web}");

    // Bad input gets a clear error and the platform keeps serving.
    let bad = guest_grant(&info, "../x", "Mallory")
        .await
        .expect_err("bad id");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("meeting_id"), "{}", bad.message());

    let mut clients = Vec::new();
    for (name, transport) in [
        ("alice", Transport::WebTransport),
        ("bob", Transport::WebSocket),
    ] {
        let grant = guest_grant(&info, "demo", name).await.expect("guest grant");
        let options = ConnectOptions::new(transport, grant_address(&grant), "demo", &grant.token);
        clients.push(Client::connect(options).await.expect("join demo"));
    }
    let (alice, bob) = clients.split_at_mut(1);
    let (alice, bob) = (&mut alice[0], &mut bob[0]);
    assert_eq!(bob.joined.participants.len(), 1);
    // Both entered through the gateway: QUIC routed to the relay, WebSocket by path.
    assert_eq!(
        grant_address(&guest_grant(&info, "demo", "x").await.expect("grant")).websocket_url,
        format!("ws://{}/relay/0/ws", info.gateway.http_addr)
    );
    let (_, metrics) = http_request(info.gateway.admin_addr, "GET", "/metrics").await;
    assert!(
        videocall_testkit::metric_value(&metrics, "videocall_gateway_datagrams_to_relay_total")
            > 0.0,
        "{metrics}"
    );
    assert_eq!(
        videocall_testkit::metric_value(&metrics, "videocall_gateway_websockets"),
        1.0
    );
    // The control plane's metrics, apart from the web entry: the grants just made.
    let metrics_addr = info
        .control_plane_metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("control-plane metrics address");
    let (status, metrics) = http_request(metrics_addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        videocall_testkit::metric_value(&metrics, "videocall_control_plane_join_grants_total")
            >= 3.0,
        "{metrics}"
    );
    videocall_testkit::announce(alice, &[(1, MediaKind::Video)]).await;
    alice
        .sender()
        .send_media(packet(1, MediaKind::Video, 0, true, 2000))
        .await
        .expect("send");
    let got = wait_for_message(bob, Duration::from_secs(5), |m| match m {
        Body::Media(media) if media.participant_id == alice.participant_id() => {
            Some(media.payload.len())
        }
        _ => None,
    })
    .await;
    assert_eq!(got, Some(2000));

    // The terminal participant joins the same meeting and publishes three simulcast layers;
    // bob shows it in a thumbnail and alice not at all: bob gets the lowest layer only, and
    // the terminal sends only that one.
    let join = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "join",
            "--meeting",
            "demo",
            "--user",
            "carol",
            "--publish",
            "--simulcast",
            "--seconds",
            "5",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn join");
    let carol = wait_for_message(bob, Duration::from_secs(10), |m| match m {
        Body::ParticipantJoined(joined) => joined.participant.as_ref().map(|p| p.id),
        _ => None,
    })
    .await
    .expect("carol joins");
    for (viewer, (width, height)) in [(&*alice, (0, 0)), (&*bob, (320, 180))] {
        viewer
            .sender()
            .send(Body::ViewTracks(ViewTracks {
                views: vec![TrackView {
                    participant_id: carol,
                    track_id: VIDEO_TRACK,
                    width,
                    height,
                }],
            }))
            .await
            .expect("views");
    }
    let carol_video = |m: &Body| match m {
        Body::Media(media)
            if media.participant_id == carol && media.kind == MediaKind::Video as i32 =>
        {
            Some((media.layer, media.keyframe))
        }
        _ => None,
    };
    let first = wait_for_message(bob, Duration::from_secs(10), |m| {
        carol_video(m).filter(|&(layer, keyframe)| layer == 0 && keyframe)
    })
    .await;
    assert!(
        first.is_some(),
        "no keyframe of layer 0 from `videocall join --publish --simulcast`"
    );
    for _ in 0..20 {
        let next = wait_for_message(bob, Duration::from_secs(5), carol_video).await;
        assert!(
            matches!(next, Some((0, _))),
            "bob shows carol in a thumbnail, got {next:?}"
        );
    }
    let output = join.wait_with_output().expect("join output");
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("joined demo as carol"), "{printed}");
    assert!(printed.contains("already here"), "{printed}");
    // What the relay said last: only the thumbnail's layer.
    let demand = printed
        .lines()
        .rfind(|l| l.starts_with("sending video layers"));
    assert!(
        demand.is_some_and(|l| l.starts_with("sending video layers [0]:")),
        "{printed}"
    );

    // SIGTERM drains and stops the platform.
    platform.signal("TERM");
    drop(clients);
    // Generous: the clients' connections close at once, but a loaded machine is slow to say so.
    assert_eq!(platform.wait_exit(Duration::from_secs(30)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_and_the_token_command_uses_the_platform() {
    let data = tempfile::tempdir().expect("temp dir");
    let token_command = |meeting: &str| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(data.path())
            .args(["token", "--meeting", meeting, "--user", "Dave"])
            .output()
            .expect("token command")
    };
    let (platform, _) = up(data.path()).await;
    let output = token_command("demo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3);
    let refused = token_command("no/slashes");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("meeting_id"));
    drop(platform);

    // The signing key and the admin live in the data directory: a token from before the
    // restart still admits, and the same password still signs in.
    let (platform, info) = up(data.path()).await;
    let address = RelayAddress {
        webtransport_url: info.relay.webtransport_url.clone(),
        websocket_url: info.relay.websocket_url.clone(),
        certificate_sha256: Some(info.relay.certificate_sha256.clone()),
    };
    let client = Client::connect(ConnectOptions::new(
        Transport::WebSocket,
        address,
        "demo",
        &token,
    ))
    .await;
    assert!(client.is_ok(), "{:?}", client.err());
    let password = std::fs::read_to_string(&info.admin_password_file).expect("password");
    let mut auth = AuthServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API");
    auth.login(LoginRequest {
        username: info.admin_user.clone(),
        password: password.trim().into(),
    })
    .await
    .expect("the admin survives the restart");
    drop(platform);
}
