//! Bounded queues: the control queue, and a media queue as a [`MediaSink`]: a WebSocket's shared audio or video queue, or a
//! WebTransport lane's. Video also draws on the subscriber's byte budget.

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
    let depth = tx.max_capacity() - tx.capacity();
    let bytes = out.frame.len();
    if let Some(budget) = budget {
        if !budget.reserve(bytes) {
            return Offer::Full;
        }
    }
    let result = tx.try_send(out);
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
}
