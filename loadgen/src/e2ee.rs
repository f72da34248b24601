//! `relay-bench --e2ee-participants N [--relays 2]`: what end-to-end encryption costs a join
//! and a leave through a real relay, or relays sharing the meeting over NATS (joined through
//! the control plane, which signs every member's credential). N participants join one after
//! another (each waits for the previous to be in the group); for each, the time from
//! connecting to `Joined` (what a join costs without encryption) and to being in the
//! meeting's MLS group (with it). Then the last one leaves and the time until everyone left
//! is at the new epoch is the rekey.

use std::time::{Duration, Instant};

use videocall_client::{Client, Event, Transport};
use videocall_client_core::{Session, SessionOptions};

use crate::deployment::{Deployment, Setup};

const WAIT: Duration = Duration::from_secs(30);

/// A participant: its connection, and the client core's session run on it here (a pump per
/// participant in one task, rather than a task each waiting on `next_event`).
struct Party {
    client: Client,
    session: Session,
    started: Instant,
    online: bool,
}

impl Party {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Handles what the relay sent and what is due; sends the answers.
    async fn pump(&mut self) -> anyhow::Result<()> {
        if !self.online {
            return Ok(());
        }
        let mut out = Vec::new();
        while let Some(event) = self.client.try_next_event() {
            if let Event::Message(body) = event {
                let now_ms = self.now_ms();
                out.extend(self.session.receive(body, now_ms).answers);
            }
        }
        let now_ms = self.now_ms();
        out.extend(self.session.poll(now_ms));
        for body in out {
            self.client.sender().send(body).await?;
        }
        Ok(())
    }

    fn epoch(&mut self) -> Option<u64> {
        self.session.encryption()?.session().epoch()
    }
}

/// Pumps everyone until `done` holds.
async fn until(
    parties: &mut [Party],
    mut done: impl FnMut(&mut [Party]) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !done(parties) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the group did not settle in time"
        );
        for party in parties.iter_mut() {
            party.pump().await?;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs the measurement with `participants` on the deployment `setup` describes.
pub async fn run(setup: &Setup, participants: usize) -> anyhow::Result<()> {
    anyhow::ensure!(participants >= 2, "at least two participants");
    let deployment = Deployment::start(setup).await?;
    let mut parties: Vec<Party> = Vec::with_capacity(participants);
    let (mut joined, mut grouped, mut everyone) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..participants {
        let started = Instant::now();
        let (client, _, member) = deployment.join_member(i, Transport::WebSocket).await?;
        joined.push(millis(started.elapsed()));
        // The transports answer the relay's pings; the session pings nobody.
        let options = SessionOptions {
            ping_interval_ms: None,
            ..SessionOptions::default()
        };
        let mut session = Session::new(client.joined.clone(), options, 0);
        for body in session.start_encryption(member, 0)? {
            client.sender().send(body).await?;
        }
        parties.push(Party {
            client,
            session,
            started: Instant::now(),
            online: true,
        });
        until(&mut parties, |parties| {
            parties.last_mut().is_some_and(|p| p.epoch().is_some())
        })
        .await?;
        grouped.push(millis(started.elapsed()));
        until(&mut parties, |parties| {
            let epoch = parties[0].epoch();
            epoch.is_some() && parties.iter_mut().all(|p| p.epoch() == epoch)
        })
        .await?;
        everyone.push(millis(started.elapsed()));
    }
    let before = parties[0].epoch();
    let leaving = parties.len() - 1;
    let started = Instant::now();
    parties[leaving].client.sender().leave().await;
    parties[leaving].online = false;
    until(&mut parties[..leaving], |parties| {
        parties
            .iter_mut()
            .all(|p| p.epoch().is_some() && p.epoch() != before)
    })
    .await?;
    let rekey = millis(started.elapsed());
    // Joins into a group of 1 or more (the first founds it).
    let into_group = |all: &[f64]| {
        let mut sorted = all[1..].to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted
    };
    let (joined, grouped, everyone) = (
        into_group(&joined),
        into_group(&grouped),
        into_group(&everyone),
    );
    println!(
        "e2ee through {}, {participants} participants joining one at a time (WebSocket)",
        if setup.relays > 1 {
            format!(
                "{} relays sharing the meeting over NATS, joined through the control plane",
                setup.relays
            )
        } else {
            "one relay".to_owned()
        }
    );
    println!(
        "  join to Joined (no encryption)   median {:.2} ms  p95 {:.2} ms",
        percentile(&joined, 0.5),
        percentile(&joined, 0.95)
    );
    println!(
        "  join to in the group (with E2EE) median {:.2} ms  p95 {:.2} ms  slowest {:.2} ms",
        percentile(&grouped, 0.5),
        percentile(&grouped, 0.95),
        grouped.last().copied().unwrap_or_default()
    );
    println!(
        "  until every member applied the join  median {:.2} ms  p95 {:.2} ms  (all members in this one process)",
        percentile(&everyone, 0.5),
        percentile(&everyone, 0.95)
    );
    println!(
        "  rekey after a leave in {participants}: {rekey:.2} ms until all {} at the new epoch",
        participants - 1
    );
    drop(parties);
    drop(deployment);
    Ok(())
}
