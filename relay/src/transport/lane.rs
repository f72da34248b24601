//! A WebTransport lane: one subscriber's copy of one track, written to its own QUIC streams.
//!
//! Video opens a new unidirectional stream at every keyframe, so each group of pictures
//! travels alone: when the subscriber fell behind and frames were dropped, the stale
//! stream is reset (its unsent bytes discarded) instead of finished. Audio keeps one
//! stream at a higher priority. Nothing here waits on another lane. A lane's task starts
//! with its first packet, so subscribing (under the core's meeting lock) starts nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wtransport::{Connection, SendStream, VarInt};

use super::queue::offer_queue;
use crate::core::{MediaSink, Offer, Outgoing, QueueBudget};
use crate::metrics::Metrics;

/// Stream priority of audio lanes (quinn sends higher first).
const AUDIO_PRIORITY: i32 = 10;
/// Error code on a stream reset because its group of pictures was abandoned.
const RESET_STALE_GROUP: u32 = 1;

/// What a lane's task needs, kept until the first packet.
struct Pending {
    rx: mpsc::Receiver<Outgoing>,
    connection: Connection,
    metrics: Metrics,
    closing: CancellationToken,
}

/// The sending side of one lane.
pub(crate) struct Lane {
    tx: mpsc::Sender<Outgoing>,
    audio: bool,
    budget: Option<Arc<QueueBudget>>,
    started: AtomicBool,
    pending: Mutex<Option<Pending>>,
}

impl Lane {
    /// A lane of `capacity` packets on `connection`; it ends when `closing` fires.
    pub(crate) fn new(
        connection: Connection,
        capacity: usize,
        audio: bool,
        budget: Option<Arc<QueueBudget>>,
        metrics: Metrics,
        closing: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Lane {
            tx,
            audio,
            budget,
            started: AtomicBool::new(false),
            pending: Mutex::new(Some(Pending {
                rx,
                connection,
                metrics,
                closing,
            })),
        }
    }

    fn start(&self) {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(pending) = pending {
            tokio::spawn(run_lane(pending, self.audio, self.budget.clone()));
        }
    }
}

impl MediaSink for Lane {
    fn offer(&self, out: Outgoing) -> Offer {
        if !self.started.load(Ordering::Acquire) && !self.started.swap(true, Ordering::AcqRel) {
            self.start();
        }
        offer_queue(&self.tx, self.budget.as_deref(), out)
    }
}

async fn run_lane(pending: Pending, audio: bool, budget: Option<Arc<QueueBudget>>) {
    let Pending {
        mut rx,
        connection,
        metrics,
        closing,
    } = pending;
    tokio::select! {
        _ = closing.cancelled() => {}
        result = write_lane(connection, &mut rx, audio, budget.as_deref(), &metrics) => {
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
}

async fn write_lane(
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
        let bytes = out.frame.len();
        let written = write_frame(writer, out.frame).await;
        if let Some(budget) = budget {
            budget.release(bytes);
        }
        written?;
        metrics.media_written(audio, bytes, out.received_at);
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
        .map_err(LaneError::Write)
}

/// Why a lane stopped writing.
#[derive(Debug, thiserror::Error)]
enum LaneError {
    #[error("connection: {0}")]
    Connection(#[from] wtransport::error::ConnectionError),
    #[error("opening a stream: {0}")]
    Opening(#[from] wtransport::error::StreamOpeningError),
    #[error("writing: {0}")]
    Write(wtransport::quinn::WriteError),
}
