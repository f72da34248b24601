//! `videocall-streamer` (its own process) streaming into `videocall up`: a native viewer
//! decodes the test pattern with openh264 and reads the burned-in counter and clock; SIGTERM
//! leaves the meeting; a refused or impossible join gets one clear line and a non-zero exit;
//! and when the streamer's relay (a separate `videocall-relay`) is `kill -9`'d, the streamer
//! rejoins another relay through the control plane, `/readyz` says so meanwhile, and the
//! counter goes on. Under `--audio`, the viewer decodes Opus: a recording played through an
//! ALSA device from one streamer, the test tone from another that has no microphone.
//!
//! `scripts/aarch64.sh` runs these again on the aarch64 build of the streamer under
//! `qemu-aarch64` (`VIDEOCALL_STREAMER_BIN`, `VIDEOCALL_TEST_RUNNER`).

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tokio::time::Instant;
use videocall_client::control_plane::ControlPlaneGrants;
use videocall_client::rejoin::GrantSource;
use videocall_client::{Client, ConnectOptions, Event, Transport};
use videocall_protocol::wire::{envelope::Body, Codec, LeaveReason, MediaKind};
use videocall_streamer::pattern;
use videocall_testkit::{http_request, metric_value, ChildGuard};

use common::{create_test_meetings, separate_relay, streamer_command, up, PlatformInfo};

fn log_level() -> String {
    std::env::var("PLATFORM_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// `videocall-streamer stream` into `meeting` as the guest `pi`: 320x240 at 15 fps.
fn streamer(info: &PlatformInfo, meeting: &str, extra: &[&str]) -> Command {
    streamer_as(info, meeting, "pi", extra)
}

/// The same, as the guest `user`.
fn streamer_as(info: &PlatformInfo, meeting: &str, user: &str, extra: &[&str]) -> Command {
    let mut command = streamer_command();
    command
        .args(["stream", "--control-plane-url", &info.api_url])
        .args(["--meeting-id", meeting, "--user-id", user])
        .args(["--resolution", "320x240", "--fps", "15"])
        .args(["--bitrate-kbps", "300"])
        .args(extra)
        .env("RUST_LOG", log_level())
        .stdin(Stdio::null());
    command
}

/// A guest viewer of `meeting` (receive-only), through the control plane's grant.
async fn viewer(info: &PlatformInfo, meeting: &str) -> (Client, String) {
    let grant = ControlPlaneGrants::new(&info.api_url, meeting, "viewer")
        .receive_only(true)
        .grant(&[])
        .await
        .expect("grant");
    let mut client = Client::connect(ConnectOptions::new(
        Transport::WebTransport,
        grant.relay,
        &grant.meeting_id,
        &grant.token,
    ))
    .await
    .expect("the viewer joins");
    // An end-to-end encrypted meeting: the viewer joins its group and gets frames opened.
    if let Some(seed) = &grant.encryption {
        client
            .start_encryption(seed.member().expect("member"))
            .await
            .expect("the viewer encrypts");
    }
    (client, grant.relay_id)
}

/// One decoded picture of the test pattern.
#[derive(Debug, Clone, Copy)]
struct Seen {
    counter: u32,
    age_ms: u64,
    participant: u64,
    keyframe: bool,
}

/// Decodes the streamer's video as a viewer gets it.
struct PatternReader {
    decoder: Decoder,
    synced: Option<u64>,
    /// The latest frame's sequence, per publisher: a frame of an older group of pictures
    /// that comes after a newer keyframe is stale, and a decoder past that keyframe skips it.
    latest: std::collections::HashMap<u64, u64>,
    /// Every video frame that came, and what became of it (shown when a test fails).
    arrivals: Vec<String>,
}

impl PatternReader {
    fn new() -> Self {
        PatternReader {
            decoder: Decoder::new().expect("decoder"),
            synced: None,
            latest: std::collections::HashMap::new(),
            arrivals: Vec::new(),
        }
    }

    /// The next `count` pictures (from a keyframe on, per publisher), within `within`.
    async fn read(&mut self, viewer: &mut Client, count: usize, within: Duration) -> Vec<Seen> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + within;
        while seen.len() < count {
            let event = tokio::time::timeout_at(deadline, viewer.next_event())
                .await
                .unwrap_or_else(|_| panic!("{count} decoded pictures within {within:?}: {seen:?}"))
                .expect("the viewer's session goes on");
            let media = match event {
                Event::Message(Body::Media(media)) => media,
                // Shown when the test fails: what the viewer's group went through.
                Event::Encryption(group) => {
                    println!("{:?} viewer: {group:?}", Instant::now());
                    continue;
                }
                _ => continue,
            };
            if media.kind() != MediaKind::Video {
                continue;
            }
            self.arrivals.push(format!(
                "seq {} {}{} B",
                media.sequence,
                if media.keyframe { "key " } else { "" },
                media.payload.len()
            ));
            let latest = self.latest.entry(media.participant_id).or_default();
            if media.sequence <= *latest {
                self.arrivals.push("  stale, skipped".into());
                continue;
            }
            *latest = media.sequence;
            if self.synced != Some(media.participant_id) {
                if !media.keyframe {
                    continue;
                }
                self.synced = Some(media.participant_id);
            }
            if let Some(picture) = self
                .decoder
                .decode(&media.payload)
                .expect("the H.264 decodes")
            {
                let (width, height) = picture.dimensions();
                assert_eq!((width, height), (320, 240));
                let code = pattern::read_code(picture.y(), picture.strides().0, width, height)
                    .expect("the burned-in strip reads");
                assert_eq!(media.capture_timestamp_us / 1000, code.captured_ms);
                self.arrivals.push(format!("  → counter {}", code.counter));
                seen.push(Seen {
                    counter: code.counter,
                    age_ms: (videocall_client::unix_micros() / 1000)
                        .saturating_sub(code.captured_ms),
                    participant: media.participant_id,
                    keyframe: media.keyframe,
                });
            }
        }
        seen
    }
}

/// Every picture the streamer sent came, in order, but for two kinds of gap in the counter:
/// a frame the encoder's rate control skipped (it may, to hold the bitrate), which the
/// streamer counts, and the tail of a group of pictures that a newer keyframe overtook (each
/// group travels on a stream of its own, and a stale group is dropped rather than delivered
/// late: two keyframes close together, the first picture and the one a new epoch asks for,
/// make one). More gaps than that are pictures lost on the way. A failure shows what arrived
/// and the streamer's counts of frames it did not send.
async fn assert_every_sent_picture_came(reader: &PatternReader, seen: &[Seen], admin: SocketAddr) {
    let (_, metrics) = http_request(admin, "GET", "/metrics").await;
    let dropped: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("videocall_streamer_frames_dropped_total"))
        .collect();
    println!(
        "streamer: {dropped:?}; the viewer got {:#?}",
        reader.arrivals
    );
    let skipped = metric_value(
        &metrics,
        "videocall_streamer_frames_dropped_total{reason=\"encoder_skipped\"}",
    ) as u32;
    let mut missing = 0;
    for pair in seen.windows(2) {
        assert!(pair[1].counter > pair[0].counter, "in order: {seen:?}");
        if !pair[1].keyframe {
            missing += pair[1].counter - pair[0].counter - 1;
        }
    }
    println!("{missing} pictures missing, {skipped} skipped by the encoder");
    assert!(
        missing <= skipped,
        "{missing} pictures missing, {skipped} skipped by the encoder: {seen:?}"
    );
}

async fn ready(admin: SocketAddr) -> u16 {
    http_request(admin, "GET", "/readyz").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_decodes_the_test_pattern_and_sigterm_leaves() {
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    create_test_meetings(&info).await;
    let (mut child, admin) = spawn_streamer(&info, "shelf");
    let (mut viewer, _) = viewer(&info, "shelf").await;

    let mut reader = PatternReader::new();
    let seen = reader.read(&mut viewer, 30, Duration::from_secs(30)).await;
    assert_every_sent_picture_came(&reader, &seen, admin).await;
    let mut ages: Vec<u64> = seen.iter().map(|s| s.age_ms).collect();
    ages.sort_unstable();
    let median = ages[ages.len() / 2];
    println!("streamer → relay → viewer: median {median} ms from the burned-in clock");
    assert!(median < 1000, "pictures arrive {median} ms old");

    // Probes and metrics.
    assert_eq!(ready(admin).await, 200);
    assert_eq!(http_request(admin, "GET", "/healthz").await.0, 200);
    assert!(frames_sent(admin, 30.0).await >= 30.0);
    let (_, metrics) = http_request(admin, "GET", "/metrics").await;
    assert!(metric_value(&metrics, "videocall_streamer_keyframes_total") >= 1.0);
    assert_eq!(metric_value(&metrics, "videocall_streamer_connected"), 1.0);

    // SIGTERM: the streamer leaves (the viewer is told LEFT) and exits 0.
    child.signal("TERM");
    let streamer_id = seen[0].participant;
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
    assert_eq!(child.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_an_encrypted_meeting_the_streamer_seals_and_a_viewer_decodes_what_it_opens() {
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    create_test_meetings(&info).await;
    let (_child, admin) = spawn_streamer(&info, "encrypted");
    let (mut viewer, _) = viewer(&info, "encrypted").await;
    let mut reader = PatternReader::new();
    let seen = reader.read(&mut viewer, 30, Duration::from_secs(30)).await;
    let counters = viewer.encryption_counters().expect("encrypted");
    println!("the viewer's encryption: {counters:?}");
    assert_every_sent_picture_came(&reader, &seen, admin).await;
    assert!(counters.opened >= 30, "{counters:?}");
    assert!(frames_sent(admin, 30.0).await >= 30.0);
}

/// The streamer's `frames_sent_total`, read again for up to 5 s until it reaches `at_least`: a
/// frame counts once its send returns, which can be after the viewer decoded it.
async fn frames_sent(admin: SocketAddr, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = http_request(admin, "GET", "/metrics").await;
        let sent = metric_value(&metrics, "videocall_streamer_frames_sent_total");
        if sent >= at_least || Instant::now() >= deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the streamer into `meeting`, its admin listener on a port of its own; returns it
/// and that address.
fn spawn_streamer(info: &PlatformInfo, meeting: &str) -> (ChildGuard, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", videocall_testkit::free_tcp_port())
        .parse()
        .expect("addr");
    let child = ChildGuard(
        streamer(info, meeting, &["--admin-addr", &admin.to_string()])
            .spawn()
            .expect("spawn videocall-streamer"),
    );
    (child, admin)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_cannot_succeed_gets_one_clear_line_and_a_non_zero_exit() {
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    create_test_meetings(&info).await;
    // `full` has one seat: the viewer takes it.
    let (_viewer, _) = viewer(&info, "full").await;
    let cases: [(&str, &[&str], &str); 6] = [
        ("nope", &[], "meeting nope not found"),
        ("over", &[], "has ended"),
        ("full", &[], "is full"),
        ("private", &[], "guest"),
        (
            "shelf",
            &["--api-key", "vk_nobody:not-a-secret"],
            "cannot join shelf",
        ),
        ("shelf", &["--password", "wrong"], "signing in as pi"),
    ];
    for (meeting, extra, expected) in cases {
        let output = run_to_end(streamer(&info, meeting, extra)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = format!("{}{stderr}", String::from_utf8_lossy(&output.stdout));
        assert!(!output.status.success(), "{meeting} {extra:?}: {said}");
        assert!(
            said.contains(expected),
            "{meeting} {extra:?}: {expected:?} not in {said}"
        );
        let clear = stderr
            .lines()
            .filter(|l| l.starts_with("videocall-streamer: "))
            .count();
        assert_eq!(clear, 1, "one clear line: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamer_rejoins_another_relay_when_its_relay_is_killed() {
    let data = tempfile::tempdir().expect("temp dir");
    let prefix = videocall_testkit::nats::unique_prefix("streamer-failover");
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
    let mut doomed = separate_relay(data.path(), &info, "relay-z", &prefix).await;
    // The viewer takes relay-0's share of `demo`, so the streamer is placed on relay-z.
    let (mut viewer, viewer_relay) = viewer(&info, "demo").await;
    assert_eq!(viewer_relay, "relay-0");
    let (_streamer, admin) = spawn_streamer(&info, "demo");
    let mut reader = PatternReader::new();
    let before = reader.read(&mut viewer, 15, Duration::from_secs(30)).await;
    assert_every_sent_picture_came(&reader, &before, admin).await;
    assert_eq!(ready(admin).await, 200);
    let (_, metrics) = http_request(admin, "GET", "/metrics").await;
    assert_eq!(
        metric_value(&metrics, "videocall_streamer_reconnects_total"),
        0.0
    );

    doomed.0.kill().expect("kill -9 relay-z");
    let killed = Instant::now();
    // The QUIC idle timeout tells it the relay is gone; it is unready until it rejoins (a
    // window too short to catch by polling under load: the admin module's test checks
    // /readyz itself), and counts the loss.
    let deadline = killed + Duration::from_secs(20);
    let mut seen_unready = false;
    loop {
        seen_unready |= ready(admin).await != 200;
        let (_, metrics) = http_request(admin, "GET", "/metrics").await;
        if metric_value(&metrics, "videocall_streamer_relay_losses_total") >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the streamer never noticed the lost relay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unready_after = killed.elapsed();
    let after = reader.read(&mut viewer, 15, Duration::from_secs(30)).await;
    let back_after = killed.elapsed();
    // Pictures of the lost session still queued at the viewer (sent before the kill) come
    // first; a slow streamer (the aarch64 build under qemu) leaves a few more of them.
    let lost = before[0].participant;
    let after: Vec<Seen> = after
        .into_iter()
        .filter(|s| s.participant != lost)
        .collect();
    assert!(after.len() >= 10, "pictures of a new session: {after:?}");
    assert_every_sent_picture_came(&reader, &after, admin).await;
    assert!(
        after[0].counter > before[before.len() - 1].counter,
        "the same capture goes on: {before:?} then {after:?}"
    );
    assert_eq!(ready(admin).await, 200);
    let (_, metrics) = http_request(admin, "GET", "/metrics").await;
    assert_eq!(
        metric_value(&metrics, "videocall_streamer_reconnects_total"),
        1.0
    );
    assert_eq!(
        metric_value(&metrics, "videocall_streamer_relay_losses_total"),
        1.0
    );
    println!(
        "streamer failover: loss noticed after {unready_after:?} (/readyz 503 seen: {seen_unready}), pictures back after {back_after:?}"
    );
}

/// What a viewer heard and saw of one publisher.
#[derive(Default)]
struct Heard {
    samples: Vec<f32>,
    packets: usize,
    pictures: usize,
    ages_ms: Vec<u64>,
}

/// Decodes each publisher's Opus until `publishers` of them have sent `packets` packets (and
/// some video), within `within`.
async fn listen(
    viewer: &mut Client,
    publishers: usize,
    packets: usize,
    within: Duration,
) -> std::collections::HashMap<u64, Heard> {
    use opusic_c::{Channels, Decoder as OpusDecoder, SampleRate};
    let mut heard: std::collections::HashMap<u64, Heard> = Default::default();
    let mut decoders: std::collections::HashMap<u64, OpusDecoder> = Default::default();
    let deadline = Instant::now() + within;
    let done = |heard: &std::collections::HashMap<u64, Heard>| {
        heard
            .values()
            .filter(|h| h.packets >= packets && h.pictures > 0)
            .count()
            >= publishers
    };
    while !done(&heard) {
        let event = tokio::time::timeout_at(deadline, viewer.next_event())
            .await
            .unwrap_or_else(|_| {
                let counts: Vec<_> = heard.values().map(|h| (h.packets, h.pictures)).collect();
                panic!("{publishers} publishers' sound within {within:?}: (packets, pictures) {counts:?}")
            })
            .expect("the viewer's session goes on");
        let Event::Message(Body::Media(media)) = event else {
            continue;
        };
        let publisher = heard.entry(media.participant_id).or_default();
        if media.kind() == MediaKind::Video {
            publisher.pictures += 1;
            continue;
        }
        assert_eq!(media.codec(), Codec::Opus);
        let decoder = decoders.entry(media.participant_id).or_insert_with(|| {
            OpusDecoder::new(Channels::Mono, SampleRate::Hz48000).expect("decoder")
        });
        let mut frame = vec![0.0f32; 960];
        let samples = decoder
            .decode_float_to_slice(&media.payload, &mut frame, false)
            .expect("the Opus decodes");
        assert_eq!(samples, 960, "20 ms frames");
        publisher.samples.extend_from_slice(&frame);
        publisher.packets += 1;
        publisher.ages_ms.push(
            (videocall_client::unix_micros().saturating_sub(media.capture_timestamp_us)) / 1000,
        );
    }
    heard
}

/// Raw 48 kHz mono signed 16-bit samples of a `hz` tone lasting `seconds`.
fn raw_tone(hz: f32, seconds: usize) -> Vec<u8> {
    (0..48_000 * seconds)
        .flat_map(|i| {
            let phase = std::f32::consts::TAU * hz * i as f32 / 48_000.0;
            ((phase.sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sound_is_the_microphone_where_one_opens_and_a_test_tone_where_none_does() {
    let data = tempfile::tempdir().expect("temp dir");
    let (_platform, info) = up(data.path(), "127.0.0.1:0", &[]).await;
    create_test_meetings(&info).await;
    // A real ALSA capture device without sound hardware: the `file` plugin over `null` reads
    // what it "records" from a file, here a 1 kHz tone. The streamer reads only this
    // configuration (ALSA_CONFIG_PATH), not the machine's, whose plugins (PulseAudio's, say)
    // may not exist for the streamer's architecture.
    let alsa = tempfile::tempdir().expect("temp dir");
    let recording = alsa.path().join("recording.raw");
    std::fs::write(&recording, raw_tone(1000.0, 60)).expect("recording");
    let config = alsa.path().join("asound.conf");
    std::fs::write(
        &config,
        format!(
            "pcm.recording {{\n  type file\n  slave.pcm {{ type null }}\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
            recording.display()
        ),
    )
    .expect("asound.conf");
    let (mut viewer, _) = viewer(&info, "shelf").await;
    let _microphone = ChildGuard(
        streamer_as(
            &info,
            "shelf",
            "mic",
            &["--audio", "--audio-device", "recording"],
        )
        .env("ALSA_CONFIG_PATH", &config)
        .spawn()
        .expect("spawn videocall-streamer"),
    );
    let _tone = ChildGuard(
        streamer_as(
            &info,
            "shelf",
            "tone",
            &["--audio", "--audio-device", "no-such-mic"],
        )
        .spawn()
        .expect("spawn videocall-streamer"),
    );

    let heard = listen(&mut viewer, 2, 100, Duration::from_secs(30)).await;
    let mut pitches: Vec<f32> = heard
        .values()
        .filter(|h| h.packets >= 100)
        .map(|h| {
            // Past the codec's first packets.
            videocall_streamer::audio::tone::dominant_frequency(&h.samples[9600..], 48_000)
                .expect("sound, not silence")
        })
        .collect();
    pitches.sort_by(f32::total_cmp);
    assert_eq!(pitches.len(), 2, "{pitches:?}");
    assert!(
        (pitches[0] - 440.0).abs() < 10.0,
        "the test tone: {pitches:?}"
    );
    assert!(
        (pitches[1] - 1000.0).abs() < 20.0,
        "the recording: {pitches:?}"
    );
    for publisher in heard.values().filter(|h| h.packets >= 100) {
        let mut ages = publisher.ages_ms.clone();
        ages.sort_unstable();
        let median = ages[ages.len() / 2];
        println!("streamer sound → relay → viewer: median {median} ms from capture");
        assert!(median < 1000, "sound arrives {median} ms old");
    }
}
