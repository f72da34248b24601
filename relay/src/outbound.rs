//! How frames reach one participant: a control queue plus media queues shaped by the transport.
//!
//! A WebSocket has one byte stream, so its media shares two bounded queues (audio, video)
//! drained by one writer that always prefers control, then audio. WebTransport gets a
//! lane per subscribed track ([`crate::lane`]): each lane writes its own QUIC streams, so a
//! stalled video lane never delays audio or another track. Audio goes out as datagrams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wtransport::Connection;

use crate::config::Limits;
use crate::lane;
use crate::metrics::Metrics;
use videocall_protocol::LENGTH_PREFIX_BYTES;

/// A media frame on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The length-prefixed envelope, shared by every subscriber (never copied per subscriber).
    pub frame: Bytes,
    /// When the relay received the packet.
    pub received_at: Instant,
    /// The packet starts a group of pictures.
    pub keyframe: bool,
    /// Earlier packets of this track were dropped for this subscriber.
    pub after_gap: bool,
    /// Audio (counted apart from video).
    pub audio: bool,
}

impl Outgoing {
    /// The envelope without its length prefix (WebSocket message, datagram).
    pub fn unprefixed(&self) -> Bytes {
        self.frame
            .slice(LENGTH_PREFIX_BYTES.min(self.frame.len())..)
    }
}

/// Bytes of video one subscriber may have queued: a subscriber that lags holds at most
/// this much memory, whatever the packet sizes.
pub struct QueueBudget {
    used: AtomicUsize,
    max: usize,
    gauge: prometheus::IntGauge,
}

impl QueueBudget {
    /// A budget of `max` bytes reported into `gauge`.
    pub fn new(max: usize, gauge: prometheus::IntGauge) -> Arc<Self> {
        Arc::new(QueueBudget {
            used: AtomicUsize::new(0),
            max,
            gauge,
        })
    }

    /// Reserves `bytes`; false when that would exceed the budget.
    fn reserve(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used + bytes > self.max {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.gauge.add(bytes as i64);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Returns `bytes` once they left the queue.
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.sub(bytes as i64);
    }
}

/// The control queue is full: the participant stopped reading and must go.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("control queue is full")]
pub struct ControlQueueFull;

/// Receivers of a WebSocket participant's queues, owned by its writer task.
pub struct SocketQueues {
    /// Length-prefixed control envelopes.
    pub control: mpsc::Receiver<Bytes>,
    /// Audio frames.
    pub audio: mpsc::Receiver<Outgoing>,
    /// Video frames of every subscribed track.
    pub video: mpsc::Receiver<Outgoing>,
    /// Budget the video frames were reserved from.
    pub budget: Arc<QueueBudget>,
}

/// Sending side of everything that goes to one participant.
pub struct Outbound {
    control: mpsc::Sender<Bytes>,
    media: MediaOutbound,
}

enum MediaOutbound {
    Socket {
        audio: mpsc::Sender<Outgoing>,
        video: mpsc::Sender<Outgoing>,
        budget: Arc<QueueBudget>,
    },
    Streams(Box<StreamsOutbound>),
}

struct StreamsOutbound {
    connection: Connection,
    lane_capacity: usize,
    metrics: Metrics,
    closing: CancellationToken,
    budget: Arc<QueueBudget>,
}

impl Outbound {
    /// Queues for a WebSocket participant.
    pub fn socket(limits: &Limits, metrics: &Metrics) -> (Self, SocketQueues) {
        let budget = QueueBudget::new(limits.subscriber_queue_bytes, metrics.queued_bytes.clone());
        let (control_tx, control) = mpsc::channel(limits.control_queue_messages.max(1));
        let (audio_tx, audio) = mpsc::channel(limits.audio_queue_packets.max(1));
        let (video_tx, video) = mpsc::channel(limits.socket_queue_packets.max(1));
        let outbound = Outbound {
            control: control_tx,
            media: MediaOutbound::Socket {
                audio: audio_tx,
                video: video_tx,
                budget: budget.clone(),
            },
        };
        (
            outbound,
            SocketQueues {
                control,
                audio,
                video,
                budget,
            },
        )
    }

    /// Queues for a WebTransport participant; lanes end when `closing` is cancelled.
    pub fn streams(
        connection: Connection,
        limits: &Limits,
        metrics: Metrics,
        closing: CancellationToken,
    ) -> (Self, mpsc::Receiver<Bytes>) {
        let (control_tx, control) = mpsc::channel(limits.control_queue_messages.max(1));
        let budget = QueueBudget::new(limits.subscriber_queue_bytes, metrics.queued_bytes.clone());
        let outbound = Outbound {
            control: control_tx,
            media: MediaOutbound::Streams(Box::new(StreamsOutbound {
                connection,
                lane_capacity: limits.track_queue_packets.max(1),
                metrics,
                closing,
                budget,
            })),
        };
        (outbound, control)
    }

    /// Queues a length-prefixed control envelope.
    pub fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull> {
        match self.control.try_send(frame) {
            Ok(()) => Ok(()),
            // A closed queue means the session is ending anyway.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ControlQueueFull),
        }
    }

    /// Where media of one subscribed track goes.
    pub fn down_sink(&self, audio: bool) -> DownSink {
        match &self.media {
            MediaOutbound::Socket {
                audio: a,
                video: v,
                budget,
            } => {
                if audio {
                    DownSink::Queue(a.clone(), None)
                } else {
                    DownSink::Queue(v.clone(), Some(budget.clone()))
                }
            }
            MediaOutbound::Streams(streams) => {
                let StreamsOutbound {
                    connection,
                    lane_capacity,
                    metrics,
                    closing,
                    budget,
                } = streams.as_ref();
                let budget = (!audio).then(|| budget.clone());
                let lane = lane::spawn(
                    connection.clone(),
                    *lane_capacity,
                    audio,
                    budget.clone(),
                    metrics.clone(),
                    closing.clone(),
                );
                if audio {
                    DownSink::Datagram {
                        connection: connection.clone(),
                        fallback: lane,
                    }
                } else {
                    DownSink::Queue(lane, budget)
                }
            }
        }
    }
}

/// Where one subscriber's copy of one track goes.
pub enum DownSink {
    /// A bounded queue (a WebSocket queue or a WebTransport lane); video also draws
    /// on the subscriber's byte budget.
    Queue(mpsc::Sender<Outgoing>, Option<Arc<QueueBudget>>),
    /// WebTransport datagrams, with a lane for packets too large for a datagram.
    Datagram {
        /// The subscriber's connection.
        connection: Connection,
        /// Lane for packets that do not fit in a datagram.
        fallback: mpsc::Sender<Outgoing>,
    },
}

/// Result of offering a frame to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued or sent.
    Accepted {
        /// Queue depth seen before queuing (0 for datagrams).
        depth: usize,
    },
    /// The queue is full.
    Full,
    /// The subscriber is gone.
    Closed,
}

impl DownSink {
    /// Hands `out` to the subscriber without waiting.
    pub fn offer(&self, out: Outgoing, metrics: &Metrics) -> Offer {
        match self {
            DownSink::Queue(tx, budget) => offer_queue(tx, budget.as_deref(), out),
            DownSink::Datagram {
                connection,
                fallback,
            } => {
                // send_datagram itself reports a packet too large for a datagram;
                // asking quinn first would take its connection lock twice per packet.
                let bytes = out.frame.len() as u64;
                match connection.send_datagram(out.unprefixed()) {
                    Ok(()) => {
                        let counters = metrics.media_out(true);
                        counters.packets.inc();
                        counters.bytes.inc_by(bytes);
                        metrics
                            .fanout_latency
                            .observe(out.received_at.elapsed().as_secs_f64());
                        Offer::Accepted { depth: 0 }
                    }
                    Err(wtransport::error::SendDatagramError::TooLarge) => {
                        offer_queue(fallback, None, out)
                    }
                    Err(_) => Offer::Closed,
                }
            }
        }
    }
}

fn offer_queue(tx: &mpsc::Sender<Outgoing>, budget: Option<&QueueBudget>, out: Outgoing) -> Offer {
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
    use super::*;

    #[test]
    fn the_budget_bounds_queued_bytes_and_reports_them() {
        let gauge = prometheus::IntGauge::new("queued", "test").expect("gauge");
        let budget = QueueBudget::new(1000, gauge.clone());
        assert!(budget.reserve(600));
        assert!(!budget.reserve(600), "over budget");
        assert!(budget.reserve(400));
        assert_eq!(gauge.get(), 1000);
        budget.release(600);
        assert_eq!(gauge.get(), 400);
        assert!(budget.reserve(600));
    }

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
