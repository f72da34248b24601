//! Bounded queues: the control queue, and a media queue as a [`MediaSink`]: a WebSocket's shared audio or video queue, or a
//! WebTransport lane's. Video also draws on the subscriber's byte budget. A WebSocket's video
//! queue is shared by its tracks, so each queued frame says which start of its track it
//! belongs to ([`QueuedVideo`]): the writer skips frames a later keyframe superseded.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::core::{ControlQueueFull, MediaSink, Offer, Outgoing, QueueBudget};

/// Sends into a bounded queue without waiting.
pub(crate) struct QueueSink {
    pub(crate) tx: mpsc::Sender<Outgoing>,
    pub(crate) budget: Option<Arc<QueueBudget>>,
}

impl MediaSink for QueueSink {
    fn offer(&self, out: Outgoing) -> Offer {
        offer_queue(&self.tx, self.budget.as_deref(), out)
    }
}

/// A video frame in a queue shared by a subscriber's tracks, with the start of its track it
/// follows.
pub(crate) struct QueuedVideo {
    pub(crate) out: Outgoing,
    starts: Arc<AtomicU32>,
    start: u32,
}

impl QueuedVideo {
    /// A keyframe that starts the track again (after a move or a drop) was queued behind
    /// this frame: the subscriber's decoder starts there, and this one is only late.
    pub(crate) fn superseded(&self) -> bool {
        self.starts.load(Ordering::Relaxed) != self.start
    }
}

/// One video track's way into a subscriber's shared video queue.
pub(crate) struct SharedVideoSink {
    pub(crate) tx: mpsc::Sender<QueuedVideo>,
    pub(crate) budget: Arc<QueueBudget>,
    /// Keyframes queued so far that start the track again.
    pub(crate) starts: Arc<AtomicU32>,
}

impl MediaSink for SharedVideoSink {
    fn offer(&self, out: Outgoing) -> Offer {
        // A restart supersedes what is queued even when it does not fit: the track then
        // waits for the next keyframe, and what is queued is as late.
        let start = if out.keyframe && out.after_gap {
            self.starts.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
        } else {
            self.starts.load(Ordering::Relaxed)
        };
        let bytes = out.frame.len();
        let queued = QueuedVideo {
            out,
            starts: self.starts.clone(),
            start,
        };
        offer_item(&self.tx, Some(&self.budget), bytes, queued)
    }
}

/// Queues a control frame; a closed queue means the session is ending anyway.
pub(crate) fn send_control(
    tx: &mpsc::Sender<bytes::Bytes>,
    frame: bytes::Bytes,
) -> Result<(), ControlQueueFull> {
    match tx.try_send(frame) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => Err(ControlQueueFull),
    }
}

/// Offers `out` to `tx`, reserving its bytes from `budget` first.
pub(crate) fn offer_queue(
    tx: &mpsc::Sender<Outgoing>,
    budget: Option<&QueueBudget>,
    out: Outgoing,
) -> Offer {
    let bytes = out.frame.len();
    offer_item(tx, budget, bytes, out)
}

/// Offers `item` (of `bytes` media bytes) to `tx`, reserving them from `budget` first and
/// giving them back when the queue does not take it.
fn offer_item<T>(
    tx: &mpsc::Sender<T>,
    budget: Option<&QueueBudget>,
    bytes: usize,
    item: T,
) -> Offer {
    let depth = tx.max_capacity() - tx.capacity();
    if let Some(budget) = budget {
        if !budget.reserve(bytes) {
            return Offer::Full;
        }
    }
    let result = tx.try_send(item);
    if result.is_err() {
        if let Some(budget) = budget {
            budget.release(bytes);
        }
    }
    match result {
        Ok(()) => Offer::Accepted { depth },
        Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
        Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_full_queue_refuses_without_waiting_and_returns_the_budget() {
        let gauge = prometheus::IntGauge::new("queued", "test").expect("gauge");
        let budget = QueueBudget::new(1_000_000, gauge.clone());
        let (tx, _rx) = mpsc::channel(1);
        let out = || Outgoing {
            frame: Bytes::from_static(&[0, 0, 0, 4, 1, 2, 3, 4]),
            received_at: Instant::now(),
            keyframe: false,
            after_gap: false,
            audio: false,
        };
        assert_eq!(
            offer_queue(&tx, Some(&budget), out()),
            Offer::Accepted { depth: 0 }
        );
        assert_eq!(offer_queue(&tx, Some(&budget), out()), Offer::Full);
        assert_eq!(gauge.get(), 8, "the refused frame's bytes were given back");
        assert_eq!(out().unprefixed().as_ref(), &[1, 2, 3, 4]);
    }

    #[test]
    fn a_keyframe_that_restarts_a_track_supersedes_its_queued_frames_only() {
        let gauge = prometheus::IntGauge::new("queued", "test").expect("gauge");
        let budget = QueueBudget::new(1_000_000, gauge);
        let (tx, mut rx) = mpsc::channel(16);
        let sink = |budget: &Arc<QueueBudget>| SharedVideoSink {
            tx: tx.clone(),
            budget: budget.clone(),
            starts: Arc::default(),
        };
        let (one, other) = (sink(&budget), sink(&budget));
        let frame = |keyframe, after_gap| Outgoing {
            frame: Bytes::from_static(&[0, 0, 0, 1, 9]),
            received_at: Instant::now(),
            keyframe,
            after_gap,
            audio: false,
        };
        for out in [frame(true, true), frame(false, false)] {
            one.offer(out);
        }
        other.offer(frame(false, false));
        // A keyframe of the same GOP goes on; one after a move starts the track again.
        one.offer(frame(true, false));
        one.offer(frame(true, true));
        one.offer(frame(false, false));
        let superseded: Vec<bool> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|q| q.superseded())
            .collect();
        assert_eq!(superseded, vec![true, true, false, true, false, false]);
    }
}
