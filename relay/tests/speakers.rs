//! Active speakers over real connections: publishers put their audio level in each packet;
//! everyone is told who speaks, loudest first, and told again when that changes.

mod common;

use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, MediaPattern};
use videocall_client::{Client, Transport};
use videocall_protocol::wire::envelope::Body;

/// A publisher of audio only at `level`, until `stop`.
fn speaker(client: Client, level: u32, stop: &CancellationToken) {
    let pattern = MediaPattern {
        video_fps: 0,
        audio_level: level,
        ..MediaPattern::conference()
    };
    synthetic::spawn_publisher(client, pattern, stop.clone());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_is_told_who_speaks_loudest_first() {
    let relay = RelayProcess::start(&[]).await;
    for transport in TRANSPORTS {
        let meeting = format!("speakers-{transport:?}");
        let mut listener = relay.join(transport, &meeting, "listener").await;
        let loud = relay.join(Transport::WebTransport, &meeting, "loud").await;
        let quiet = relay.join(Transport::WebSocket, &meeting, "quiet").await;
        let hum = relay.join(Transport::WebSocket, &meeting, "hum").await;
        let (loud_id, quiet_id) = (loud.participant_id(), quiet.participant_id());
        let stop = CancellationToken::new();
        // -17, -37 and -97 dBov: two speak, the third is a room's hum.
        speaker(loud, 110, &stop);
        speaker(quiet, 90, &stop);
        speaker(hum, 30, &stop);
        let said = videocall_testkit::wait_for_message(
            &mut listener,
            Duration::from_secs(3),
            |m| match m {
                Body::ActiveSpeakers(s) if s.participant_ids.len() == 2 => {
                    Some(s.participant_ids.clone())
                }
                _ => None,
            },
        )
        .await;
        assert_eq!(said, Some(vec![loud_id, quiet_id]), "{transport:?}");
        // They stop: the list empties (said once more when the next packet comes: the hum's).
        stop.cancel();
        let stop = CancellationToken::new();
        let hum_again = relay
            .join(Transport::WebSocket, &meeting, "hum-again")
            .await;
        speaker(hum_again, 30, &stop);
        let emptied = videocall_testkit::wait_for_message(
            &mut listener,
            Duration::from_secs(3),
            |m| match m {
                Body::ActiveSpeakers(s) if s.participant_ids.is_empty() => Some(()),
                _ => None,
            },
        )
        .await;
        assert!(emptied.is_some(), "{transport:?}: never told nobody speaks");
        stop.cancel();
    }
}
