//! One benchmark scenario: relay processes (one, or a pool behind a control plane),
//! participants joined over one transport, publishers sending a conference pattern, and a
//! measured window after a warm-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, KeyframeTrigger, MediaPattern, PublishStats};
use videocall_client::{Client, Event, Transport};
use videocall_protocol::wire::envelope::Body;

use crate::deployment::{Deployment, Setup};
use crate::measure::{bucket_quantile, cpu_seconds, Report};

/// Participants joined at once while setting up.
const JOIN_BATCH: usize = 50;

/// Who is in the meeting and who publishes.
pub struct Scenario {
    pub name: String,
    pub participants: usize,
    pub publishers: usize,
    pub pattern: MediaPattern,
}

impl Scenario {
    /// `n` participants, all publishing 30 fps video at 500 kbit/s and 50 audio packets/s.
    pub fn meeting(n: usize) -> Self {
        Scenario {
            name: format!("meeting-{n}"),
            participants: n,
            publishers: n,
            pattern: MediaPattern::conference(),
        }
    }

    /// One publisher of `video_bps` video (and the conference's audio) and `n` subscribers.
    pub fn fanout_at(n: usize, video_bps: u64) -> Self {
        Scenario {
            name: format!("1-to-{n}"),
            participants: n + 1,
            publishers: 1,
            pattern: MediaPattern {
                video_bitrate_bps: video_bps,
                ..MediaPattern::conference()
            },
        }
    }

    /// One publisher and `n` subscribers.
    pub fn fanout(n: usize) -> Self {
        Scenario {
            name: format!("1-to-{n}"),
            participants: n + 1,
            publishers: 1,
            pattern: MediaPattern::conference(),
        }
    }
}

struct ReceiverResult {
    latency_us: Histogram<u64>,
    received: u64,
}

/// Reads a participant's events until `stop` or the session ends, handing the latency of
/// every media packet (capture to now, in µs) to `on_media` and turning keyframe requests
/// into keyframes of its own publisher; then leaves.
pub async fn receive(
    mut client: Client,
    trigger: KeyframeTrigger,
    stop: CancellationToken,
    mut on_media: impl FnMut(u64) + Send,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            event = client.next_event() => match event {
                Some(Event::Message(Body::Media(m))) => on_media(
                    videocall_client::unix_micros()
                        .saturating_sub(m.capture_timestamp_us)
                        .max(1),
                ),
                Some(event) if event.asks_for_keyframe() => trigger.request(),
                Some(Event::Message(_) | Event::Encryption(_)) => {}
                Some(Event::Closed { .. }) | None => break,
            }
        }
    }
    client.sender().leave().await;
}

async fn measure(
    client: Client,
    trigger: KeyframeTrigger,
    measuring: Arc<AtomicBool>,
    stop: CancellationToken,
) -> ReceiverResult {
    let mut result = ReceiverResult {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| unreachable!("static bounds")),
        received: 0,
    };
    receive(client, trigger, stop, |latency| {
        if measuring.load(Ordering::Relaxed) {
            result.received += 1;
            let _ = result.latency_us.record(latency);
        }
    })
    .await;
    result
}

/// Runs `scenario` over `transport` against the servers `setup` describes, and measures it.
pub async fn run(
    setup: &Setup,
    scenario: &Scenario,
    transport: Transport,
    warmup: u64,
    seconds: u64,
) -> anyhow::Result<Report> {
    let deployment = Deployment::start(setup).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_idle_kib = deployment.rss_kib();

    let deployment = Arc::new(deployment);
    let mut clients = Vec::with_capacity(scenario.participants);
    let mut join_ms = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    for batch_start in (0..scenario.participants).step_by(JOIN_BATCH) {
        let batch_end = (batch_start + JOIN_BATCH).min(scenario.participants);
        let joins: Vec<_> = (batch_start..batch_end)
            .map(|i| {
                let deployment = deployment.clone();
                let e2ee = setup.e2ee;
                tokio::spawn(async move {
                    if e2ee {
                        deployment.join_encrypted(i, transport).await
                    } else {
                        deployment.join(i, transport).await
                    }
                })
            })
            .collect();
        for join in joins {
            let (client, took) = join.await??;
            join_ms.record(
                u64::try_from(took.as_micros() / 1000)
                    .unwrap_or(u64::MAX)
                    .max(1),
            )?;
            clients.push(client);
        }
    }

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let mut publishers = Vec::new();
    let mut receivers = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let trigger = KeyframeTrigger::default();
        if i < scenario.publishers {
            let stats = Arc::new(PublishStats::default());
            tokio::spawn(synthetic::publish(
                client.sender(),
                scenario.pattern.clone(),
                trigger.clone(),
                stats.clone(),
                stop.clone(),
            ));
            publishers.push(stats);
        }
        receivers.push(tokio::spawn(measure(
            client,
            trigger,
            measuring.clone(),
            stop.clone(),
        )));
    }
    let sent = |publishers: &[Arc<PublishStats>]| -> u64 {
        publishers
            .iter()
            .map(|s| s.video_sent.load(Ordering::Relaxed) + s.audio_sent.load(Ordering::Relaxed))
            .sum()
    };

    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let before = deployment.snapshot().await;
    let sent_before = sent(&publishers);
    let loadgen_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let sent_during = sent(&publishers) - sent_before;
    let after = deployment.snapshot().await;
    let loadgen_cpu = cpu_seconds(std::process::id()) - loadgen_cpu_before;
    let rss_kib = deployment.rss_kib();
    stop.cancel();

    let mut latency_us = Histogram::new_with_bounds(1, 60_000_000, 3)?;
    let mut received = 0;
    for receiver in receivers {
        let result = receiver.await?;
        latency_us.add(&result.latency_us)?;
        received += result.received;
    }
    // Every packet of a publisher goes to every other participant.
    let expected = sent_during as f64 * (scenario.participants - 1) as f64;
    Ok(Report {
        scenario: scenario.name.clone(),
        transport: format!("{transport:?}").to_lowercase(),
        relays: deployment.relays.len(),
        bus_bytes: after.bus_bytes_out - before.bus_bytes_out,
        published_bytes: after.bytes_in - before.bytes_in,
        join_p50_ms: join_ms.value_at_quantile(0.5),
        join_p99_ms: join_ms.value_at_quantile(0.99),
        participants: scenario.participants,
        publishers: scenario.publishers,
        seconds: elapsed,
        forwarded_packets: after.packets - before.packets,
        forwarded_bytes: after.bytes - before.bytes,
        relay_cpu_seconds: after.cpu - before.cpu,
        loadgen_cpu_seconds: loadgen_cpu,
        latency_us,
        drops: after.drops - before.drops,
        rss_kib,
        rss_idle_kib,
        expected_deliveries: expected,
        received,
        relay_fanout_p50_ms: bucket_quantile(&before.fanout_buckets, &after.fanout_buckets, 0.5)
            * 1000.0,
        relay_fanout_p99_ms: bucket_quantile(&before.fanout_buckets, &after.fanout_buckets, 0.99)
            * 1000.0,
    })
}
