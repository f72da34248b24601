//! The soak (`relay-bench --soak-minutes N`, run by `scripts/soak.sh`, not in CI): one relay
//! holds a meeting of `participants` for N minutes while, every second, one of them leaves
//! and a new person joins in its place (WebTransport and WebSocket in turn). Some publish
//! audio, fewer video; everyone receives. Every sampling period the relay's resident memory,
//! open file descriptors, threads, Tokio tasks and participant count are read with the media
//! latency of the period; at the end everyone leaves and the relay must count nobody.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, KeyframeTrigger, MediaPattern, PublishStats};
use videocall_client::Transport;
use videocall_testkit::{http_request, metric_value, open_fds, threads};

use crate::deployment::{Deployment, Setup};
use crate::scenario::receive;

/// What the soak holds and how often it looks.
pub struct Soak {
    /// How long the meeting is held.
    pub duration: Duration,
    /// People in the meeting at any time.
    pub participants: usize,
    /// Of them, how many publish audio (50 packets/s).
    pub audio_publishers: usize,
    /// Of those, how many publish video as well (30 fps, 500 kbit/s).
    pub video_publishers: usize,
    /// Seconds between two samples.
    pub sample_every: Duration,
}

type Latencies = Arc<Mutex<Histogram<u64>>>;

fn latencies() -> anyhow::Result<Latencies> {
    Ok(Arc::new(Mutex::new(Histogram::new_with_bounds(
        1, 60_000_000, 3,
    )?)))
}

/// One seat of the meeting and whoever sits in it now.
struct Seat {
    stop: CancellationToken,
    receiver: JoinHandle<()>,
    latency_us: Latencies,
}

impl Soak {
    fn pattern(&self, seat: usize) -> Option<MediaPattern> {
        let conference = MediaPattern::conference();
        if seat < self.video_publishers {
            Some(conference)
        } else if seat < self.audio_publishers {
            Some(MediaPattern {
                video_fps: 0,
                ..conference
            })
        } else {
            None
        }
    }

    /// Seats person number `person` in `seat`.
    async fn sit(
        &self,
        deployment: &Deployment,
        seat: usize,
        person: usize,
    ) -> anyhow::Result<Seat> {
        let transport = if person.is_multiple_of(2) {
            Transport::WebTransport
        } else {
            Transport::WebSocket
        };
        let (client, _) = deployment.join(person, transport).await?;
        let stop = CancellationToken::new();
        let trigger = KeyframeTrigger::default();
        if let Some(pattern) = self.pattern(seat) {
            tokio::spawn(synthetic::publish(
                client.sender(),
                pattern,
                trigger.clone(),
                Arc::new(PublishStats::default()),
                stop.clone(),
            ));
        }
        let latency_us = latencies()?;
        let latencies = latency_us.clone();
        let receiver = tokio::spawn(receive(client, trigger, stop.clone(), move |latency| {
            if let Ok(mut h) = latencies.lock() {
                let _ = h.record(latency);
            }
        }));
        Ok(Seat {
            stop,
            receiver,
            latency_us,
        })
    }
}

/// One reading of the relay.
struct Sample {
    at_s: f64,
    participants: f64,
    meetings: f64,
    joins: usize,
    failed_joins: usize,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    tasks: f64,
    drops: f64,
    latency_us: Histogram<u64>,
}

impl Sample {
    fn header() -> String {
        format!(
            "{:>7} {:>6} {:>5} {:>6} {:>8} {:>5} {:>7} {:>6} {:>8} {:>8} {:>8} {:>7}",
            "t s",
            "parts",
            "joins",
            "failed",
            "RSS MiB",
            "fds",
            "threads",
            "tasks",
            "p50 ms",
            "p99 ms",
            "max ms",
            "drops"
        )
    }

    fn row(&self) -> String {
        let ms = |v: u64| v as f64 / 1000.0;
        format!(
            "{:>7.0} {:>6.0} {:>5} {:>6} {:>8.1} {:>5} {:>7} {:>6.0} {:>8.2} {:>8.2} {:>8.2} {:>7.0}",
            self.at_s,
            self.participants,
            self.joins,
            self.failed_joins,
            self.rss_kib as f64 / 1024.0,
            self.fds,
            self.threads,
            self.tasks,
            ms(self.latency_us.value_at_quantile(0.5)),
            ms(self.latency_us.value_at_quantile(0.99)),
            ms(self.latency_us.max()),
            self.drops,
        )
    }
}

/// Least-squares slope of `ys` over `xs`, per hour (xs in seconds).
fn slope_per_hour(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den * 3600.0
    }
}

async fn read(
    deployment: &Deployment,
    started: Instant,
    seats: &VecDeque<(usize, Seat)>,
    joins: (usize, usize),
    drops_before: f64,
) -> anyhow::Result<Sample> {
    let relay = &deployment.relays[0];
    let pid = relay.child.pid();
    let (_, metrics) = http_request(relay.info.admin_addr, "GET", "/metrics").await;
    let mut latency_us = Histogram::new_with_bounds(1, 60_000_000, 3)?;
    for (_, seat) in seats {
        if let Ok(mut h) = seat.latency_us.lock() {
            latency_us.add(&*h)?;
            h.reset();
        }
    }
    Ok(Sample {
        at_s: started.elapsed().as_secs_f64(),
        participants: metric_value(&metrics, "videocall_relay_participants"),
        meetings: metric_value(&metrics, "videocall_relay_meetings"),
        joins: joins.0,
        failed_joins: joins.1,
        rss_kib: relay.child.rss_kib(),
        fds: open_fds(pid),
        threads: threads(pid),
        tasks: metric_value(&metrics, "videocall_relay_runtime_tasks"),
        drops: metric_value(&metrics, "videocall_relay_drops_total") - drops_before,
        latency_us,
    })
}

async fn leave(seat: Seat) {
    seat.stop.cancel();
    let _ = seat.receiver.await;
}

/// Runs the soak against a relay started from `setup`; prints a row per sample and a verdict.
pub async fn run(setup: &Setup, soak: &Soak) -> anyhow::Result<()> {
    let deployment = Deployment::start(setup).await?;
    println!(
        "soak: {} participants ({} publish audio, {} of them video), one replaced every second, {} min, a sample every {} s",
        soak.participants,
        soak.audio_publishers,
        soak.video_publishers,
        soak.duration.as_secs() / 60,
        soak.sample_every.as_secs()
    );
    let mut seats = VecDeque::new();
    let mut person = 0;
    for seat in 0..soak.participants {
        seats.push_back((seat, soak.sit(&deployment, seat, person).await?));
        person += 1;
    }
    println!("{}", Sample::header());
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut churn = tokio::time::interval(Duration::from_secs(1));
    churn.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sample = started + soak.sample_every;
    let (mut joins, mut failed) = (0, 0);
    let mut drops_before = 0.0;
    let mut vacant = Vec::new();
    while started.elapsed() < soak.duration {
        churn.tick().await;
        // The longest-seated person leaves; someone new takes the seat.
        if let Some((seat, leaving)) = seats.pop_front() {
            leave(leaving).await;
            vacant.push(seat);
        }
        for seat in std::mem::take(&mut vacant) {
            match soak.sit(&deployment, seat, person).await {
                Ok(sitting) => {
                    joins += 1;
                    seats.push_back((seat, sitting));
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("join of p{person} failed: {e:#}");
                    vacant.push(seat);
                }
            }
            person += 1;
        }
        if Instant::now() >= next_sample {
            next_sample += soak.sample_every;
            let sample = read(&deployment, started, &seats, (joins, failed), drops_before).await?;
            drops_before += sample.drops;
            (joins, failed) = (0, 0);
            println!("{}", sample.row());
            samples.push(sample);
        }
    }
    for (_, seat) in seats.drain(..) {
        leave(seat).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let sample = read(&deployment, started, &seats, (0, 0), drops_before).await?;
        if (sample.participants == 0.0 && sample.meetings == 0.0) || Instant::now() > deadline {
            break sample;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    summarize(&samples, &after, person);
    Ok(())
}

fn summarize(samples: &[Sample], after: &Sample, people: usize) {
    // The first samples include the warm-up of every allocator and queue.
    let steady: Vec<&Sample> = samples.iter().skip(samples.len() / 10).collect();
    let xs: Vec<f64> = steady.iter().map(|s| s.at_s).collect();
    let trend = |f: &dyn Fn(&Sample) -> f64| {
        let ys: Vec<f64> = steady.iter().map(|s| f(s)).collect();
        let (min, max) = ys
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
        (slope_per_hour(&xs, &ys), min, max)
    };
    println!("after the warm-up ({} samples):", steady.len());
    for (name, (slope, min, max)) in [
        ("RSS MiB", trend(&|s| s.rss_kib as f64 / 1024.0)),
        ("fds", trend(&|s| s.fds as f64)),
        ("threads", trend(&|s| s.threads as f64)),
        ("tasks", trend(&|s| s.tasks)),
        ("participants", trend(&|s| s.participants)),
        (
            "p99 ms",
            trend(&|s| s.latency_us.value_at_quantile(0.99) as f64 / 1000.0),
        ),
    ] {
        println!("  {name:<13} min {min:>9.2}  max {max:>9.2}  trend {slope:>+9.2}/hour");
    }
    println!(
        "{people} people joined in all; after everyone left the relay counts {} participants in {} meetings ({} fds, {} tasks, {:.1} MiB)",
        after.participants,
        after.meetings,
        after.fds,
        after.tasks,
        after.rss_kib as f64 / 1024.0
    );
}
