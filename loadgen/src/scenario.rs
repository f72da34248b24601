//! One benchmark scenario: relay processes (one, or a pool behind a control plane),
//! participants joined over one transport, publishers sending a conference pattern (or
//! simulcast layers, to viewers who show a few of them: `layout`), and a measured window after
//! a warm-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, KeyframeTrigger, MediaPattern, PublishStats};
use videocall_client::{Client, Event, Transport};
use videocall_protocol::wire::envelope::Body;
use videocall_protocol::wire::{TrackView, ViewTracks};

use crate::deployment::{Deployment, Setup};
use crate::layout;
use crate::measure::{bucket_quantile, cpu_seconds, Report};

/// Participants joined at once while setting up.
const JOIN_BATCH: usize = 50;

/// Who is in the meeting and who publishes.
pub struct Scenario {
    pub name: String,
    pub participants: usize,
    pub publishers: usize,
    pub pattern: MediaPattern,
    /// What the viewers show (`None`: they never say, and get every track's largest layer).
    pub views: Option<Views>,
}

/// Tiles of a simulcast scenario.
#[derive(Debug, Clone, Copy)]
pub struct Views {
    /// Others each viewer shows (`layout::tiles`); the rest are hidden.
    pub on_screen: usize,
    /// Publishers stop the layers nobody gets when the relay says (dynacast); without, they
    /// send every layer and the relay drops what nobody gets.
    pub dynacast: bool,
}

impl Scenario {
    /// `n` participants, all publishing 30 fps video at 500 kbit/s and 50 audio packets/s.
    pub fn meeting(n: usize) -> Self {
        Scenario {
            name: format!("meeting-{n}"),
            participants: n,
            publishers: n,
            pattern: MediaPattern::conference(),
            views: None,
        }
    }

    /// `n` participants, all publishing three simulcast layers (150, 500 and 1500 kbit/s) and
    /// audio; each shows `on_screen` of the others (one large, the rest thumbnails).
    pub fn simulcast(n: usize, on_screen: usize, dynacast: bool) -> Self {
        let mode = if dynacast { "" } else { "-nodc" };
        Scenario {
            name: format!("sim-{n}/{on_screen}{mode}"),
            participants: n,
            publishers: n,
            pattern: MediaPattern::simulcast(),
            views: Some(Views {
                on_screen,
                dynacast,
            }),
        }
    }

    /// Media deliveries a window should see when each publisher sent `audio` packets and
    /// captured `video_frames` (one per tick, whatever its layers): audio to everyone, and
    /// without views every frame to everyone; with views, one layer's frame to each tile.
    /// Media deliveries a window should see, from each publisher's (audio packets sent, video
    /// frames captured) at its start and end.
    pub fn expected_in_window(&self, before: &[(u64, u64)], after: &[(u64, u64)]) -> f64 {
        after
            .iter()
            .zip(before)
            .enumerate()
            .map(|(p, (after, before))| {
                self.expected_deliveries(p, after.0 - before.0, after.1 - before.1)
            })
            .sum()
    }

    fn expected_deliveries(&self, publisher: usize, audio: u64, video_frames: u64) -> f64 {
        let others = self.participants.saturating_sub(1) as f64;
        let viewers = match self.views {
            None => others,
            Some(views) => layout::viewers_of(publisher, self.participants, views.on_screen) as f64,
        };
        audio as f64 * others + video_frames as f64 * viewers
    }
}

impl Scenario {
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
            views: None,
        }
    }

    /// One publisher and `n` subscribers.
    pub fn fanout(n: usize) -> Self {
        Scenario {
            name: format!("1-to-{n}"),
            participants: n + 1,
            publishers: 1,
            pattern: MediaPattern::conference(),
            views: None,
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
    client: Client,
    trigger: KeyframeTrigger,
    stop: CancellationToken,
    on_media: impl FnMut(u64) + Send,
) {
    receive_with(client, trigger, false, stop, on_media).await
}

/// [`receive`], and with `dynacast` the publisher sends only the layers the relay says
/// someone gets.
async fn receive_with(
    mut client: Client,
    trigger: KeyframeTrigger,
    dynacast: bool,
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
                Some(Event::Message(Body::LayerDemand(_))) if !dynacast => {}
                Some(event) if trigger.answer(&event) => {}
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
    dynacast: bool,
    measuring: Arc<AtomicBool>,
    stop: CancellationToken,
) -> ReceiverResult {
    let mut result = ReceiverResult {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| unreachable!("static bounds")),
        received: 0,
    };
    receive_with(client, trigger, dynacast, stop, |latency| {
        if measuring.load(Ordering::Relaxed) {
            result.received += 1;
            let _ = result.latency_us.record(latency);
        }
    })
    .await;
    result
}

/// Tells the relay the tiles each participant shows the others' video in.
async fn say_views(clients: &[Client], views: Views) -> anyhow::Result<()> {
    let ids: Vec<u64> = clients.iter().map(Client::participant_id).collect();
    for (viewer, client) in clients.iter().enumerate() {
        let views = layout::tiles(viewer, clients.len(), views.on_screen)
            .into_iter()
            .map(|(publisher, (width, height))| TrackView {
                participant_id: ids[publisher],
                track_id: synthetic::VIDEO_TRACK,
                width,
                height,
            })
            .collect();
        client
            .sender()
            .send(Body::ViewTracks(ViewTracks { views }))
            .await?;
    }
    Ok(())
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

    if let Some(views) = scenario.views {
        say_views(&clients, views).await?;
    }
    let dynacast = scenario.views.is_some_and(|v| v.dynacast);
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
            dynacast,
            measuring.clone(),
            stop.clone(),
        )));
    }
    // Per publisher: (audio packets sent, video frames captured).
    let sent = |publishers: &[Arc<PublishStats>]| -> Vec<(u64, u64)> {
        publishers
            .iter()
            .map(|s| {
                (
                    s.audio_sent.load(Ordering::Relaxed),
                    s.video_frames.load(Ordering::Relaxed),
                )
            })
            .collect()
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
    let sent_after = sent(&publishers);
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
    let expected = scenario.expected_in_window(&sent_before, &sent_after);
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
