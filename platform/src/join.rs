//! `videocall join`: a participant in the terminal. It joins through the local platform,
//! optionally publishes synthetic media, and prints who is there and what arrives. Where the
//! meeting requires end-to-end encryption, the session encrypts (media and chat sealed, the
//! group's epochs and verification codes printed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use videocall_client::member_seed::e2ee_member;
use videocall_client::synthetic::{self, KeyframeTrigger, MediaPattern, PublishStats};
use videocall_client::{Client, ConnectOptions, Event, RelayAddress, Transport};
use videocall_e2ee::{GroupEvent, SigningKey};
use videocall_protocol::wire::{envelope::Body, MediaKind, Participant};

use crate::data_dir::DataDir;

/// Options of `videocall join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// Meeting to join.
    #[arg(long, default_value = "demo")]
    pub meeting: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub identity: crate::grant::Identity,
    /// Transport: webtransport or websocket.
    #[arg(long, default_value = "webtransport", value_parser = parse_transport)]
    pub transport: Transport,
    /// Publish synthetic video (30 fps, 500 kbit/s) and audio.
    #[arg(long)]
    pub publish: bool,
    /// Publish the video in three simulcast layers instead (320x180, 640x360 and 1280x720 at
    /// 150, 500 and 1500 kbit/s): each viewer gets the one its tile needs, and a layer nobody
    /// gets is not sent.
    #[arg(long, requires = "publish")]
    pub simulcast: bool,
    /// Leave after this many seconds (0: stay until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
}

fn parse_transport(s: &str) -> Result<Transport, String> {
    match s {
        "webtransport" | "wt" => Ok(Transport::WebTransport),
        "websocket" | "ws" => Ok(Transport::WebSocket),
        _ => Err("expected webtransport or websocket".into()),
    }
}

#[derive(Default)]
struct Rates {
    video: u64,
    audio: u64,
    bytes: u64,
}

/// Joins and reports until the time is up, Ctrl-C, or the relay ends the session.
pub async fn run(data: &DataDir, args: JoinArgs) -> anyhow::Result<()> {
    let platform = data.platform_info()?;
    // The key of this participant's end-to-end encryption: the grant binds it to who joins,
    // and the session encrypts where the meeting requires it.
    let key = SigningKey::generate().context("an end-to-end encryption key")?;
    let grant = crate::grant::join(
        &platform.api_url,
        &args.meeting,
        &args.identity,
        !args.publish,
        key.public(),
    )
    .await?;
    let relay = grant.relay.clone().context("the grant names no relay")?;
    let address = RelayAddress {
        webtransport_url: relay.webtransport_url,
        websocket_url: relay.websocket_url,
        certificate_sha256: relay.certificate_sha256.first().cloned(),
    };
    let token = grant.token.clone();
    let mut client = Client::connect(ConnectOptions::new(
        args.transport,
        address,
        &args.meeting,
        &token,
    ))
    .await
    .context("joining")?;
    println!(
        "joined {} as {} (participant {}) over {:?} via {}",
        args.meeting,
        grant.display_name,
        client.participant_id(),
        args.transport,
        client.joined.relay_id
    );
    if grant.e2ee_required {
        let member = e2ee_member(key, &grant).context("end-to-end encryption")?;
        client
            .start_encryption(member)
            .await
            .context("starting end-to-end encryption")?;
        println!("end-to-end encrypted: joining the meeting's group (nothing is sent before)");
    }
    let mut names: HashMap<u64, String> = HashMap::new();
    for p in &client.joined.participants {
        println!("  already here: {}", describe(p));
        names.insert(p.id, p.display_name.clone());
    }

    let stop = CancellationToken::new();
    let trigger = KeyframeTrigger::default();
    if args.publish {
        let (pattern, video) = if args.simulcast {
            (
                MediaPattern::simulcast(),
                "in three layers (320x180, 640x360, 1280x720; 150, 500, 1500 kbit/s)",
            )
        } else {
            (MediaPattern::conference(), "(500 kbit/s)")
        };
        tokio::spawn(synthetic::publish(
            client.sender(),
            pattern,
            trigger.clone(),
            Arc::new(PublishStats::default()),
            stop.clone(),
        ));
        println!("publishing synthetic video at 30 fps {video} and audio (50 packets/s)");
    }
    let deadline =
        (args.seconds > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(args.seconds));
    let mut report = tokio::time::interval(Duration::from_secs(1));
    let mut rates: HashMap<u64, Rates> = HashMap::new();
    let mut last_report = Instant::now();
    // One listener for the whole meeting: a fresh `ctrl_c()` per turn of the loop misses a
    // signal that arrives while a turn is busy (an event being handled), and never stops.
    let stop_signal = videocall_process::stop_signal();
    tokio::pin!(stop_signal);
    let result = loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop_signal => break Ok(()),
            _ = until_deadline => break Ok(()),
            _ = report.tick() => {
                let secs = last_report.elapsed().as_secs_f64().max(0.001);
                last_report = Instant::now();
                for (id, r) in rates.drain() {
                    let who = names.get(&id).cloned().unwrap_or_else(|| id.to_string());
                    println!(
                        "  from {who}: {:.0} video frames/s, {:.0} audio packets/s, {:.0} kbit/s",
                        r.video as f64 / secs,
                        r.audio as f64 / secs,
                        r.bytes as f64 * 8.0 / 1000.0 / secs
                    );
                }
            }
            event = client.next_event() => {
                // Keyframe requests (of a layer), and which layers anyone gets.
                if let Some(event) = &event {
                    trigger.answer(event);
                }
                match event {
                    Some(Event::Message(Body::Media(m))) => {
                        let r = rates.entry(m.participant_id).or_default();
                        if m.kind == MediaKind::Audio as i32 { r.audio += 1 } else { r.video += 1 }
                        r.bytes += m.payload.len() as u64;
                    }
                    Some(Event::Message(Body::ParticipantJoined(j))) => {
                        if let Some(p) = j.participant {
                            println!("+ {}", describe(&p));
                            names.insert(p.id, p.display_name);
                        }
                    }
                    Some(Event::Message(Body::ParticipantUpdated(u))) => {
                        if let Some(p) = u.participant {
                            println!("~ {}", describe(&p));
                        }
                    }
                    Some(Event::Message(Body::ParticipantLeft(l))) => {
                        let who = names.remove(&l.participant_id).unwrap_or_else(|| l.participant_id.to_string());
                        println!("- {who} left");
                    }
                    Some(Event::Message(Body::Data(d))) => println!("[chat] {}: {}", d.from_participant_id, d.text),
                    Some(Event::Message(Body::Error(e))) => println!("! relay error {}: {}", e.code, e.message),
                    Some(Event::Message(Body::Draining(_))) => println!("! the relay is draining"),
                    Some(Event::Message(Body::LayerDemand(d))) if args.simulcast && d.track_id == synthetic::VIDEO_TRACK => {
                        println!("sending video layers {:?}: the others are not sent, nobody gets them", d.layers);
                    }
                    Some(Event::Message(_)) => {}
                    Some(Event::Encryption(event)) => println!("{}", describe_group(&event)),
                    Some(Event::Closed { code, reason }) => break Err(anyhow::anyhow!("session closed (code {code}): {reason}")),
                    None => break Err(anyhow::anyhow!("session ended")),
                }
            }
        }
    };
    stop.cancel();
    client.sender().leave().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    result
}

fn describe(p: &Participant) -> String {
    let mut flags = Vec::new();
    if p.audio_muted {
        flags.push("mic off");
    }
    if p.video_muted {
        flags.push("camera off");
    }
    format!(
        "{} ({}, id {}, {} track(s)){}",
        p.display_name,
        p.user,
        p.id,
        p.tracks.len(),
        if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        }
    )
}

/// A line about the meeting's encrypted group: the epoch and each member with its
/// verification code (the same on every member's screen for the same key).
fn describe_group(event: &GroupEvent) -> String {
    match event {
        GroupEvent::Epoch { epoch, members } => {
            let codes: Vec<String> = members
                .iter()
                .map(|member| format!("{} [{}]", member.shown_name(), member.code))
                .collect();
            format!("🔒 epoch {epoch}: {}", codes.join(", "))
        }
        GroupEvent::Left { reason } => format!("🔓 out of the group ({reason}); asking again"),
        GroupEvent::Refused { from, reason } => {
            format!("! refused a handshake from participant {from}: {reason}")
        }
    }
}
