//! The browser client in Debian's headless Chromium, driven by playwright-core
//! (`web/e2e/meeting.mjs`), against platforms this test starts: two people meet over
//! WebTransport (video, audio, mute, chat, screen share), a third over forced WebSocket, a
//! Firefox-style capture path, a closed tab, a platform restart the pages reconnect from, the
//! error screens, and `videocall-streamer`'s H.264 test pattern decoded by the page, its burned-in
//! counter read off the canvas.
//! Screenshots and figures land in the cargo target's tmp directory.
//!
//! A second test has Firefox (Debian's firefox-esr, over WebDriver BiDi) meet Chromium, then
//! both meet two native participants (the streamer, `videocall join`) in an end-to-end
//! encrypted meeting: everyone opens everyone's media, the verification codes agree on all
//! three kinds of client, and a chat line arrives sealed.
//! Others put two Chromium participants on two relays of one meeting, and kill one of those
//! relays (a separate `videocall-relay` process) under its participant, who rejoins; and
//! send a Chromium camera in three simulcast layers to two viewers with tiles of different
//! sizes (`web/e2e/simulcast.mjs`).
//!
//! Needs `scripts/web-build.sh` (web/dist and web/node_modules), /usr/bin/chromium and
//! /usr/bin/firefox-esr; `scripts/test.sh` and `.ci/run` provide them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use videocall_testkit::ChildGuard;

mod common;

use common::{root, separate_relay, up, wait_for_demo_meeting};

/// One browser test at a time: two browsers each on two cores is enough.
static BROWSERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn assert_client_built() {
    let dist = root().join("web/dist/index.html");
    assert!(
        dist.is_file(),
        "{} missing: run scripts/web-build.sh",
        dist.display()
    );
}

/// `videocall-streamer` publishing its test pattern into `meeting` (a guest named `pi`), as a
/// Pi on a shelf would: H.264 from openh264, a keyframe when a viewer asks, and the Opus test
/// tone (`--audio`). 320x240 at 15 fps
/// unless `STREAMER_RESOLUTION`, `STREAMER_FPS` or `STREAMER_BITRATE_KBPS` say otherwise (the
/// glass-to-glass benchmark in BENCHMARKS.md sets them, with `VIDEOCALL_STREAMER_BIN`).
fn streamer(api_url: &str, meeting: &str) -> ChildGuard {
    let setting =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let child = common::streamer_command()
        .args(["stream", "--control-plane-url", api_url])
        .args(["--meeting-id", meeting, "--user-id", "pi"])
        .args(["--audio", "--audio-device", "test-tone"])
        .env(
            "STREAMER_RESOLUTION",
            setting("STREAMER_RESOLUTION", "320x240"),
        )
        .env("STREAMER_FPS", setting("STREAMER_FPS", "15"))
        .env(
            "STREAMER_BITRATE_KBPS",
            setting("STREAMER_BITRATE_KBPS", "300"),
        )
        .env(
            "RUST_LOG",
            std::env::var("PLATFORM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn videocall-streamer");
    ChildGuard(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_in_headless_chromium() {
    let _one_at_a_time = BROWSERS.lock().await;
    assert_client_built();
    let script = root().join("web/e2e/meeting.mjs");
    assert!(
        root().join("web/node_modules/playwright-core").is_dir(),
        "playwright-core missing: run scripts/web-build.sh (npm ci in web/)"
    );

    let data = tempfile::tempdir().expect("temp dir");
    let http_addr = format!("127.0.0.1:{}", videocall_testkit::free_tcp_port());
    let (mut platform, info) = up(data.path(), &http_addr, &[]).await;
    common::create_test_meetings(&info).await;
    let _streamer = streamer(&info.api_url, "shelf");

    // A platform whose relay advertises an address nobody listens on: every transport fails.
    let blocked_data = tempfile::tempdir().expect("temp dir");
    let (_blocked, blocked) = up(
        blocked_data.path(),
        "127.0.0.1:0",
        &["--public-host", "127.0.0.2"],
    )
    .await;

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .arg(info.http_url.trim_end_matches('/'))
        .arg(&out)
        .arg(blocked.http_url.trim_end_matches('/'))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs web/e2e/meeting.mjs");
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let mut figures = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the browser test finishes within 5 minutes")
            .expect("read node's output");
        let Some(line) = line else { break };
        if line == "RESTART" {
            // A real drop: the whole platform dies and comes back on the same address.
            platform.signal("KILL");
            let _ = platform.0.wait();
            let (restarted, _) = up(data.path(), &http_addr, &[]).await;
            platform = restarted;
            stdin.write_all(b"RESTARTED\n").await.expect("tell node");
        } else {
            figures = line;
        }
    }
    let status = node.wait().await.expect("node exits");
    assert!(
        status.success(),
        "the browser test failed (screenshots in {})",
        out.display()
    );
    println!("browser figures: {figures}");
    let figures: serde_json::Value = serde_json::from_str(&figures).expect("figures JSON");
    assert!(figures["vga"]["join_to_first_frame_ms"].as_f64().is_some());
    assert!(out.join("alice-sees-bob.png").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_and_chromium_meet() {
    let _one_at_a_time = BROWSERS.lock().await;
    assert_client_built();
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    common::create_test_meetings(&info).await;
    let _streamer = streamer(&info.api_url, "shelf");
    // Firefox's AudioContext runs only with a sound server: PulseAudio with a null sink
    // stands in for the sound card this machine lacks.
    let runtime = tempfile::tempdir().expect("temp dir");
    let pulse = std::process::Command::new("pulseaudio")
        .args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--load=module-null-sink sink_name=null",
            "--load=module-native-protocol-unix",
        ])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pulseaudio starts (apt install pulseaudio)");
    let _pulse = ChildGuard(pulse);
    let socket = runtime.path().join("pulse/native");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(socket.exists(), "PulseAudio did not start");
    // The encrypted meeting's native participants: the streamer publishes sealed media, carol
    // (`videocall join`) opens what the browsers send and prints it with her group's codes.
    let _encrypted_streamer = streamer(&info.api_url, "encrypted");
    let carol = ChildGuard(
        std::process::Command::new(common::BIN)
            .arg("--data-dir")
            .arg(data.path())
            .args(["join", "--meeting", "encrypted", "--user", "carol"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn videocall join"),
    );

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(root().join("web/e2e/firefox.mjs"))
            .env("XDG_RUNTIME_DIR", runtime.path())
            .arg(info.http_url.trim_end_matches('/'))
            .arg(&out)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Firefox test finishes within 3 minutes")
    .expect("node runs web/e2e/firefox.mjs");
    assert!(
        output.status.success(),
        "Firefox and Chromium did not meet (screenshots in {}):\n{}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let figures = printed.trim().lines().last().unwrap_or("{}");
    println!("firefox figures: {figures}");
    let figures: serde_json::Value = serde_json::from_str(figures).expect("figures");
    assert!(figures["firefox_transport"].is_string());

    // Carol, native, opened what both browsers sent, saw the chat line, and shows the same
    // code for every member as the browsers do.
    carol.signal("INT");
    let carol_pid = carol.0.id();
    let reading = tokio::task::spawn_blocking(move || {
        let mut carol = carol;
        let mut stdout = String::new();
        if let Some(mut pipe) = carol.0.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stdout);
        }
        stdout
    });
    let carol = match tokio::time::timeout(Duration::from_secs(15), reading).await {
        Ok(output) => output.expect("carol's output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &carol_pid.to_string()])
                .status();
            panic!("`videocall join` (carol) did not stop within 15 s of SIGINT");
        }
    };
    let codes: serde_json::Map<String, serde_json::Value> = printed
        .lines()
        .find_map(|line| line.strip_prefix("CODES "))
        .and_then(|json| serde_json::from_str(json).ok())
        .expect("the browsers' codes");
    let epoch_line = carol
        .lines()
        .rev()
        .find(|line| line.starts_with("🔒 epoch") && line.contains("alice ["))
        .unwrap_or_else(|| panic!("carol's group with alice in it:\n{carol}"));
    for (name, code) in &codes {
        let code = code.as_str().expect("a code");
        assert!(
            epoch_line.contains(&format!("{name} [{code}]")),
            "{name}'s code {code} in Chromium and Firefox, in carol's group: {epoch_line}"
        );
    }
    for browser in ["alice", "fox"] {
        assert!(
            carol
                .lines()
                .any(|line| line.contains(&format!("from {browser}:"))
                    && !line.contains(" 0 video frames/s")
                    && !line.contains(" 0 audio packets/s")),
            "carol opens {browser}'s video and audio:\n{carol}"
        );
    }
    assert!(
        carol.contains("the password is pomegranate"),
        "carol opens alice's chat line:\n{carol}"
    );
}

/// Two Chromium participants on the two relays of `up --relays 2` (one of the meeting per
/// relay): both over WebTransport through the gateway, each sees and hears the other, and
/// the control plane shows the meeting on both relays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_participants_on_two_relays_see_and_hear_each_other() {
    let _one_at_a_time = BROWSERS.lock().await;
    assert_client_built();
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(
        data.path(),
        "127.0.0.1:0",
        &["--relays", "2", "--meeting-share-per-relay", "1"],
    )
    .await;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let mut node = tokio::process::Command::new("node")
        .arg(root().join("web/e2e/relays.mjs"))
        .arg(info.http_url.trim_end_matches('/'))
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs web/e2e/relays.mjs");
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut figures = String::new();
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the two-relay browser test finishes within 3 minutes")
            .expect("read node's output");
        let Some(line) = line else { break };
        if line == "MET" {
            let mut meetings =
                videocall_control_api::v1::meeting_service_client::MeetingServiceClient::connect(
                    info.api_url.clone(),
                )
                .await
                .expect("connect API");
            let meeting = meetings
                .get_meeting(videocall_control_api::v1::GetMeetingRequest { id: "demo".into() })
                .await
                .expect("get meeting")
                .into_inner();
            assert_eq!(
                (meeting.participants, meeting.relay_ids.len()),
                (2, 2),
                "alice and bob on two relays: {:?}",
                meeting.relay_ids
            );
            stdin.write_all(b"CHECKED\n").await.expect("tell node");
        } else {
            figures = line;
        }
    }
    let status = node.wait().await.expect("node exits");
    assert!(
        status.success(),
        "the two-relay browser test failed (screenshots in {})",
        out.display()
    );
    println!("two-relay browser figures: {figures}");
    assert!(out.join("relays-alice-sees-bob.png").is_file());
}

/// `kill -9` of the relay under one of two Chromium participants (the platform's relay and a
/// separate relay process sharing the meeting over NATS): the page rejoins through the
/// control plane, which places it on the relay still hosting the meeting although the killed
/// one still looks fresh; media is back both ways in under 3 s, and the lost participant
/// leaves the other's list within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_rejoins_through_the_control_plane_when_its_relay_is_killed() {
    let _one_at_a_time = BROWSERS.lock().await;
    assert_client_built();
    let data = tempfile::tempdir().expect("temp dir");
    let prefix = videocall_testkit::nats::unique_prefix("failover");
    let (_platform, info) = up(
        data.path(),
        "127.0.0.1:0",
        &[
            "--meeting-share-per-relay",
            "1",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--bus-subject-prefix",
            &prefix,
        ],
    )
    .await;
    // Named to sort after relay-0: alice (first, on an idle platform) lands on relay-0.
    let mut doomed = separate_relay(data.path(), &info, "relay-z", &prefix).await;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let mut node = tokio::process::Command::new("node")
        .arg(root().join("web/e2e/failover.mjs"))
        .arg(info.http_url.trim_end_matches('/'))
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs web/e2e/failover.mjs");
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut figures = String::new();
    let mut back = None;
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the failover browser test finishes within 3 minutes")
            .expect("read node's output");
        let Some(line) = line else { break };
        if line == "MET" {
            wait_for_demo_meeting(&info, 2, &["relay-0", "relay-z"], Duration::from_secs(10)).await;
            doomed.0.kill().expect("kill -9 relay-z");
            stdin.write_all(b"KILLED\n").await.expect("tell node");
        } else if let Some(json) = line.strip_prefix("BACK ") {
            let figures: serde_json::Value = serde_json::from_str(json).expect("figures");
            assert_eq!(figures["bob_relay_after"], "relay-0", "{figures}");
            back = figures["media_back_ms"].as_f64();
            // Once relay-z is stale, the meeting is on relay-0 alone, with both of them.
            wait_for_demo_meeting(&info, 2, &["relay-0"], Duration::from_secs(15)).await;
            stdin.write_all(b"CHECKED\n").await.expect("tell node");
        } else {
            figures = line;
        }
    }
    let status = node.wait().await.expect("node exits");
    assert!(
        status.success(),
        "the failover browser test failed (screenshots in {})",
        out.display()
    );
    println!("failover browser figures: {figures}");
    let back = back.expect("node reported media back");
    assert!(
        back < 3000.0,
        "media back {back} ms after the kill (target: under 3 s)"
    );
}

/// Runs `web/e2e/<script>` with `args`; its last line of output (JSON figures).
async fn run_node(script: &str, args: &[&str], within: Duration) -> serde_json::Value {
    let out = tokio::time::timeout(
        within,
        tokio::process::Command::new("node")
            .arg(root().join("web/e2e").join(script))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} finishes within {within:?}"))
    .unwrap_or_else(|e| panic!("node runs {script}: {e}"));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    println!("{script} figures: {last}");
    assert!(out.status.success(), "{script} failed");
    serde_json::from_str(&last).expect("figures JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_camera_in_three_layers_reaches_each_viewer_in_the_layer_of_its_tile() {
    let _one_at_a_time = BROWSERS.lock().await;
    assert_client_built();
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    common::create_test_meetings(&info).await;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("simulcast");
    let out = out.to_string_lossy();
    let figures = run_node(
        "simulcast.mjs",
        &[info.http_url.trim_end_matches('/'), &out],
        Duration::from_secs(240),
    )
    .await;
    assert!(figures["enlargeToTopLayerMs"].as_f64().is_some());
}
