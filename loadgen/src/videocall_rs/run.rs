//! One scenario against videocall-rs's server, measured as `relay-bench` measures ours: the
//! same participants, the same publishing pattern, a warm-up, then a window in which every
//! audio and video packet a participant receives counts (videocall-rs's media servers export
//! no counters, so forwarded packets are those its participants received).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{MediaPattern, PublishStats};
use videocall_client::{unix_micros, Transport};

use super::client::{Inbox, Participant};
use super::servers::Servers;
use super::wire;
use crate::measure::{cpu_seconds, Report};
use crate::scenario::Scenario;

/// Participants joined at once while setting up.
const JOIN_BATCH: usize = 50;
/// Its clients' heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);
const ROOM: &str = "bench";

/// Runs `scenario` over `transport` against videocall-rs's servers in `bin_dir`.
pub async fn run(
    bin_dir: &Path,
    scenario: &Scenario,
    transport: Transport,
    warmup: u64,
    seconds: u64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        scenario.views.is_none() && scenario.pattern.video_layers.is_empty(),
        "videocall-rs has no simulcast scenario here"
    );
    let mut servers = Servers::start(bin_dir, transport).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = servers.usage();
    let stop = CancellationToken::new();

    let mut participants = Vec::with_capacity(scenario.participants);
    let mut join_ms = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    for batch_start in (0..scenario.participants).step_by(JOIN_BATCH) {
        let batch_end = (batch_start + JOIN_BATCH).min(scenario.participants);
        let joins: Vec<_> = (batch_start..batch_end)
            .map(|i| {
                let (port, hash, stop) = (servers.port, servers.certificate_sha256, stop.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let user = format!("user{i}");
                    let joined = Participant::join(transport, port, hash, &user, ROOM, stop).await;
                    joined.map(|(participant, inbox)| (user, participant, inbox, started.elapsed()))
                })
            })
            .collect();
        for join in joins {
            let (user, participant, inbox, took) = join.await??;
            join_ms.record((took.as_millis() as u64).max(1))?;
            participants.push((user, Arc::new(participant), inbox));
        }
    }

    let measuring = Arc::new(AtomicBool::new(false));
    let mut sent = Vec::new();
    let mut receivers = Vec::new();
    for (i, (user, participant, inbox)) in participants.into_iter().enumerate() {
        if i < scenario.publishers {
            let counts = Arc::new(PublishStats::default());
            tokio::spawn(publish(
                participant.clone(),
                user.clone(),
                scenario.pattern.clone(),
                counts.clone(),
                stop.clone(),
            ));
            sent.push(counts);
        } else {
            tokio::spawn(heartbeats(participant.clone(), user.clone(), stop.clone()));
        }
        receivers.push(tokio::spawn(receive(
            inbox,
            measuring.clone(),
            stop.clone(),
            participant,
        )));
    }
    let totals = |sent: &[Arc<PublishStats>]| -> Vec<(u64, u64)> {
        sent.iter()
            .map(|s| {
                (
                    s.audio_sent.load(Ordering::Relaxed),
                    s.video_frames.load(Ordering::Relaxed),
                )
            })
            .collect()
    };

    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let before = servers.usage();
    let sent_before = totals(&sent);
    let loadgen_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let sent_after = totals(&sent);
    let after = servers.usage();
    let loadgen_cpu = cpu_seconds(std::process::id()) - loadgen_before;
    let survived = servers.running();
    stop.cancel();

    let mut latency_us = Histogram::new_with_bounds(1, 60_000_000, 3)?;
    let (mut received, mut received_bytes) = (0u64, 0u64);
    for receiver in receivers {
        let result = receiver.await?;
        latency_us.add(&result.latency_us)?;
        received += result.packets;
        received_bytes += result.bytes;
    }
    let expected = scenario.expected_in_window(&sent_before, &sent_after);
    if !survived {
        println!("  videocall-rs's server exited during {}", scenario.name);
    }
    println!(
        "  videocall-rs: of its {:.1} % CPU, NATS {:.1} %",
        100.0 * (after.cpu - before.cpu) / elapsed,
        100.0 * (after.nats_cpu - before.nats_cpu) / elapsed
    );
    Ok(Report {
        scenario: scenario.name.clone(),
        transport: format!("{transport:?}").to_lowercase(),
        relays: 1,
        bus_bytes: 0.0,
        published_bytes: 0.0,
        join_p50_ms: join_ms.value_at_quantile(0.5),
        join_p99_ms: join_ms.value_at_quantile(0.99),
        participants: scenario.participants,
        publishers: scenario.publishers,
        seconds: elapsed,
        forwarded_packets: received as f64,
        forwarded_bytes: received_bytes as f64,
        relay_cpu_seconds: after.cpu - before.cpu,
        loadgen_cpu_seconds: loadgen_cpu,
        latency_us,
        // Not counted by its server: what did not arrive.
        drops: (expected - received as f64).max(0.0).round(),
        rss_kib: after.rss_kib,
        rss_idle_kib: idle.rss_kib,
        expected_deliveries: expected,
        received,
        relay_fanout_p50_ms: f64::NAN,
        relay_fanout_p99_ms: f64::NAN,
    })
}

/// Publishes the scenario's pattern as its browser client would: each frame and audio
/// packet a `PacketWrapper` of its own, a heartbeat every 5 s.
async fn publish(
    participant: Arc<Participant>,
    user: String,
    pattern: MediaPattern,
    sent: Arc<PublishStats>,
    stop: CancellationToken,
) {
    let fps = pattern.video_fps.max(1);
    let frame_bytes = pattern.video_frame_bytes(pattern.video_bitrate_bps);
    let mut video_tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps)));
    let mut audio_tick = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(pattern.audio_pps.max(1)),
    ));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    for tick in [&mut video_tick, &mut audio_tick, &mut heartbeat] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    }
    let keyframes = u64::from(pattern.keyframe_interval.max(1));
    let (mut video_seq, mut audio_seq) = (0u64, 0u64);
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            _ = video_tick.tick(), if pattern.video_fps > 0 => {
                let keyframe = video_seq % keyframes == 0;
                let frame = wire::video(&user, video_seq, keyframe, frame_bytes, unix_micros());
                video_seq += 1;
                sent.video_frames.fetch_add(1, Ordering::Relaxed);
                frame
            }
            _ = audio_tick.tick(), if pattern.audio_pps > 0 => {
                let packet = wire::audio(&user, audio_seq, pattern.audio_bytes, unix_micros());
                audio_seq += 1;
                sent.audio_sent.fetch_add(1, Ordering::Relaxed);
                packet
            }
            _ = heartbeat.tick() => wire::heartbeat(&user, unix_micros()),
        };
        if participant.send(message).await.is_err() {
            return;
        }
    }
}

/// A participant that only watches still sends its client's heartbeat.
async fn heartbeats(participant: Arc<Participant>, user: String, stop: CancellationToken) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    while stop.run_until_cancelled(heartbeat.tick()).await.is_some() {
        if participant
            .send(wire::heartbeat(&user, unix_micros()))
            .await
            .is_err()
        {
            return;
        }
    }
}

struct Received {
    latency_us: Histogram<u64>,
    packets: u64,
    bytes: u64,
}

/// Counts what arrives while `measuring`, until `stop`; holds `_connected` (the participant)
/// open until then.
async fn receive(
    mut inbox: Inbox,
    measuring: Arc<AtomicBool>,
    stop: CancellationToken,
    _connected: Arc<Participant>,
) -> Received {
    let mut result = Received {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| unreachable!("static bounds")),
        packets: 0,
        bytes: 0,
    };
    while let Some(Some(message)) = stop.run_until_cancelled(inbox.recv()).await {
        let bytes = message.len() as u64;
        if let Some(media) = wire::received(message) {
            if measuring.load(Ordering::Relaxed) {
                result.packets += 1;
                result.bytes += bytes;
                let latency = unix_micros().saturating_sub(media.captured_us).max(1);
                let _ = result.latency_us.record(latency);
            }
        }
    }
    result
}
