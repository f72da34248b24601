//! `videocall-streamer` as its users run it, with no platform to talk to: bad input gets one
//! clear line and a non-zero exit before any network; an unreachable control plane is
//! retried with backoff until SIGTERM, which exits cleanly. (With a platform:
//! `platform/tests/streamer.rs`.) These also run under `qemu-aarch64` on the cross-built
//! binary (`scripts/aarch64.sh`; `VIDEOCALL_TEST_RUNNER`).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use videocall_testkit::ChildGuard;

const BIN: &str = env!("CARGO_BIN_EXE_videocall-streamer");

fn streamer(args: &[&str]) -> Command {
    let mut command = videocall_testkit::command(BIN);
    command
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the streamer to its end (it must stop on its own within 30 s).
async fn run_to_end(mut command: Command) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    // Killed when the wait is abandoned: a hung streamer fails the test, never hangs it.
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn videocall-streamer");
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the streamer exits within 30 s")
        .expect("output")
}

fn unreachable_control_plane() -> String {
    format!("http://127.0.0.1:{}", videocall_testkit::free_tcp_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_clear_line_before_any_network() {
    let url = unreachable_control_plane();
    let dir = tempfile::tempdir().expect("dir");
    let corrupt = dir.path().join("corrupt.y4m");
    std::fs::write(&corrupt, b"this is not a video\n").expect("write");
    let truncated = dir.path().join("truncated.y4m");
    // A valid header, then half a frame.
    let mut half = b"YUV4MPEG2 W64 H48 F30:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    half.extend(std::iter::repeat_n(16u8, 64 * 48 / 2));
    std::fs::write(&truncated, half).expect("write");
    let missing = dir.path().join("missing.y4m");
    let (corrupt, truncated, missing) = (
        corrupt.display().to_string(),
        truncated.display().to_string(),
        missing.display().to_string(),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--resolution", "641x480"],
            "unsupported resolution 641x480",
        ),
        (vec!["--resolution", "720"], "expected WIDTHxHEIGHT"),
        (vec!["--source", &corrupt], "is not a playable Y4M file"),
        (vec!["--source", &truncated], "no whole frame"),
        (vec!["--source", &missing], "cannot open"),
        (vec!["--source", "webcam"], "expected camera, test-pattern"),
        (
            vec!["--source", "camera", "--video-device", "/dev/video-none"],
            "no camera at /dev/video-none",
        ),
        (
            vec!["--source", "camera", "--video-device-index", "/dev/null"],
            "/dev/null is not a video capture device",
        ),
        (
            vec!["--frame-format", "H264"],
            "expected NV12, YUYV or MJPEG",
        ),
        (vec!["--fps", "0"], "--fps"),
        (vec!["--bitrate-kbps", "1"], "--bitrate-kbps"),
        (vec!["--api-key", "no-colon"], "key-id:secret"),
        (
            vec!["--audio", "--audio-bitrate-kbps", "1"],
            "--audio-bitrate-kbps",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec![
            "stream",
            "--control-plane-url",
            &url,
            "--meeting-id",
            "shelf",
            "--user-id",
            "pi",
        ];
        args.extend(extra);
        let output = run_to_end(streamer(&args)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = format!("{}{stderr}", String::from_utf8_lossy(&output.stdout));
        assert!(!output.status.success(), "{args:?} should fail: {said}");
        assert!(
            said.contains(expected),
            "{args:?}: {expected:?} not in {said}"
        );
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
    let url = unreachable_control_plane();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = streamer(&[
        "stream",
        "--control-plane-url",
        &url,
        "--meeting-id",
        "shelf",
        "--user-id",
        "pi",
        "--resolution",
        "320x240",
    ])
    // Sound from a microphone that is not there: the test tone goes instead, said at once.
    .env("STREAMER_AUDIO", "true")
    .env("STREAMER_AUDIO_DEVICE", "no-such-microphone")
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
    assert!(
        said.contains("no microphone; sending a 440 Hz test tone"),
        "{said}"
    );
    assert!(said.contains("no-such-microphone"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_node_options_file_is_applied_over_the_environment() {
    let url = unreachable_control_plane();
    let dir = tempfile::tempdir().expect("dir");
    let node = dir.path().join("pi-1");
    let base = ["stream", "--control-plane-url", &url, "--user-id", "pi"];
    // The file's resolution wins over the environment's (and is refused, so the run ends).
    std::fs::write(
        &node,
        "# pi-1, in the kitchen\nSTREAMER_MEETING_ID=kitchen\nSTREAMER_RESOLUTION=641x480\n",
    )
    .expect("write");
    let mut command = streamer(&base);
    command
        .env("STREAMER_OPTIONS_FILE", &node)
        .env("STREAMER_RESOLUTION", "640x480");
    let output = run_to_end(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unsupported resolution 641x480"),
        "{stderr}"
    );

    // A malformed line: one clear line naming it.
    std::fs::write(&node, "STREAMER_MEETING_ID=kitchen\nfps: 15\n").expect("write");
    let mut command = streamer(&base);
    command.env("STREAMER_OPTIONS_FILE", &node);
    let output = run_to_end(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("line 2: expected STREAMER_NAME=value"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // No file for this node: the environment's options alone (here a refused size).
    let mut command = streamer(&base);
    command
        .env("STREAMER_OPTIONS_FILE", dir.path().join("pi-2"))
        .env("STREAMER_MEETING_ID", "shelf")
        .env("STREAMER_RESOLUTION", "643x480");
    let output = run_to_end(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported resolution 643x480"),
        "{stderr}"
    );
}

/// `devices` lists the cameras; a machine without any (this one, CI's) says so and exits 0.
/// Then the microphones: here the one an ~/.asoundrc defines (ALSA's `file` plugin).
#[test]
fn devices_lists_the_cameras_or_says_there_are_none_and_the_microphones() {
    let home = tempfile::tempdir().expect("dir");
    std::fs::write(
        home.path().join(".asoundrc"),
        "pcm.shelfmic {\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"/dev/zero\"\n  hint { show on description \"The shelf's microphone\" }\n}\n",
    )
    .expect(".asoundrc");
    let output = streamer(&["devices"])
        .env("HOME", home.path())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let has_cameras = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
        .unwrap_or(false);
    if has_cameras {
        // Each camera: its node, then a line per format.
        assert!(
            stdout.lines().any(|l| l.starts_with("/dev/video")),
            "{stdout}"
        );
    } else {
        assert_eq!(
            stdout.lines().next(),
            Some("no cameras: no /dev/video* device here captures video")
        );
    }
    let microphones = stdout
        .lines()
        .skip_while(|l| !l.starts_with("microphones"))
        .collect::<Vec<_>>();
    assert!(
        microphones
            .iter()
            .any(|l| l.trim() == "shelfmic  The shelf's microphone"),
        "{stdout}"
    );
}
