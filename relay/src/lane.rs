//! A WebTransport lane: one subscriber's copy of one track, written to its own QUIC streams.
//!
//! Video opens a new unidirectional stream at every keyframe, so each group of pictures
//! travels alone: when the subscriber fell behind and frames were dropped, the stale
//! stream is reset (its unsent bytes discarded) instead of finished. Audio keeps one
//! stream at a higher priority. Nothing here waits on another lane.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wtransport::{Connection, SendStream, VarInt};

use crate::metrics::Metrics;
use crate::outbound::{Outgoing, QueueBudget};

/// Stream priority of audio lanes (quinn sends higher first).
const AUDIO_PRIORITY: i32 = 10;
/// Error code on a stream reset because its group of pictures was abandoned.
const RESET_STALE_GROUP: u32 = 1;

/// Starts a lane; it runs until the sender is dropped, the connection fails or `closing` fires.
pub fn spawn(
    connection: Connection,
    capacity: usize,
    audio: bool,
    budget: Option<Arc<QueueBudget>>,
    metrics: Metrics,
    closing: CancellationToken,
) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel(capacity);
    tokio::spawn(async move {
        tokio::select! {
            _ = closing.cancelled() => {}
            result = run(connection, &mut rx, audio, budget.as_deref(), &metrics) => {
                if let Err(error) = result {
                    tracing::debug!(%error, "lane ended");
                }
            }
        }
        // Give back what is still queued so the budget gauge stays true.
        if let Some(budget) = budget {
            rx.close();
            while let Ok(out) = rx.try_recv() {
                budget.release(out.frame.len());
            }
        }
    });
    tx
}

async fn run(
    connection: Connection,
    rx: &mut mpsc::Receiver<Outgoing>,
    audio: bool,
    budget: Option<&QueueBudget>,
    metrics: &Metrics,
) -> Result<(), LaneError> {
    let mut stream: Option<SendStream> = None;
    while let Some(out) = rx.recv().await {
        if out.keyframe && !audio {
            if let Some(mut old) = stream.take() {
                if out.after_gap {
                    let _ = old.reset(VarInt::from_u32(RESET_STALE_GROUP));
                } else {
                    // quinn's finish does not wait for the peer; the stream drains on its own.
                    let _ = old.quic_stream_mut().finish();
                }
            }
        }
        let writer = match &mut stream {
            Some(s) => s,
            None => {
                let opened = connection.open_uni().await?.await?;
                if audio {
                    opened.set_priority(AUDIO_PRIORITY);
                }
                stream.insert(opened)
            }
        };
        let bytes = out.frame.len() as u64;
        let written = write_frame(writer, out.frame).await;
        if let Some(budget) = budget {
            budget.release(bytes as usize);
        }
        written?;
        let counters = metrics.media_out(audio);
        counters.packets.inc();
        counters.bytes.inc_by(bytes);
        metrics
            .fanout_latency
            .observe(out.received_at.elapsed().as_secs_f64());
    }
    if let Some(mut s) = stream {
        let _ = s.quic_stream_mut().finish();
    }
    Ok(())
}

async fn write_frame(stream: &mut SendStream, frame: Bytes) -> Result<(), LaneError> {
    // write_chunk hands quinn the shared buffer itself: no copy per subscriber.
    stream
        .quic_stream_mut()
        .write_chunk(frame)
        .await
        .map_err(|e| LaneError(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LaneError(String);

impl From<wtransport::error::ConnectionError> for LaneError {
    fn from(e: wtransport::error::ConnectionError) -> Self {
        LaneError(e.to_string())
    }
}

impl From<wtransport::error::StreamOpeningError> for LaneError {
    fn from(e: wtransport::error::StreamOpeningError) -> Self {
        LaneError(e.to_string())
    }
}
