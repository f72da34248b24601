//! The relays' message bus. Relays of one pool share meetings by publishing on subjects and
//! subscribing to the subjects of the meetings they host.
//!
//! One trait, [`Bus`], and two implementations: [`NatsBus`] (a real NATS server, through
//! `async-nats`) and [`MemoryHub`] (relays in one process). Each is one relay's connection:
//! a message never comes back to the connection that published it, arrives at most once per
//! matching subscription, and keeps its order per publisher and subject. A message larger
//! than the server's `max_payload` is split into chunks and put together again on the other
//! side ([`chunk`]); one too large even for that is refused with [`BusError::TooLarge`].

#![warn(missing_docs)]

pub mod chunk;
pub mod log;
mod memory;
mod nats;
pub mod subject;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;

pub use log::{Appended, LogEntry, MemoryLog};
pub use memory::{MemoryBus, MemoryHub};
pub use nats::{NatsBus, NatsOptions};

/// One message delivered to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Its payload, whole (chunks already put together).
    pub payload: Bytes,
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The subject is not a valid subject (or, for a subscription, pattern).
    #[error("invalid subject {subject:?}: {reason}")]
    Subject {
        /// The subject given.
        subject: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message cannot be sent even in chunks.
    #[error("message of {size} bytes is larger than the bus allows ({max} bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The most the bus carries.
        max: usize,
    },
    /// Connecting to the server failed.
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// A credentials file could not be read.
    #[error("NATS credentials file {path}: {source}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Publishing failed.
    #[error("publishing on {subject}: {source}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::PublishError,
    },
    /// Subscribing failed.
    #[error("subscribing to {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
    /// The connection is closed for good.
    #[error("the bus connection is closed")]
    Closed,
    /// The ordered log (a JetStream stream on NATS) failed.
    #[error("the bus's ordered log ({operation} on {subject}): {source}")]
    Log {
        /// What was done: append, follow, last.
        operation: &'static str,
        /// The subject or pattern.
        subject: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Counters of one connection.
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Messages published (a chunked message counts once).
    pub messages_out: AtomicU64,
    /// Payload bytes published.
    pub bytes_out: AtomicU64,
    /// Messages delivered to subscriptions.
    pub messages_in: AtomicU64,
    /// Payload bytes delivered.
    pub bytes_in: AtomicU64,
    /// Times the connection was lost and made again.
    pub reconnects: AtomicU64,
    /// Chunked messages dropped because a chunk went missing.
    pub incomplete: AtomicU64,
    /// Times this connection's subscriptions did not keep up and lost messages: each lost
    /// message on the in-process bus, each slow-consumer event NATS reports.
    pub slow_consumer_drops: AtomicU64,
}

impl BusCounters {
    fn sent(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// One relay's connection to the bus.
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` on `subject`. Waits only while the connection's own send buffer
    /// is full; callers that must never wait put a bounded queue in front.
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<(), BusError>>;
    /// Subscribes to `subject` (`*` matches one token, `>` the rest); when it returns, what
    /// other connections publish reaches the subscription. Dropping it unsubscribes.
    fn subscribe(&self, subject: String) -> BoxFuture<'_, Result<Subscription, BusError>>;
    /// Appends `payload` to the ordered log on `subject`; with `expect_last`, only when that
    /// is the sequence of the subject's last entry (0: none). See [`log`].
    fn append(
        &self,
        subject: String,
        expect_last: Option<u64>,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<Appended, BusError>>;
    /// Follows the log's subjects matching `pattern`: the last entry of each, then every
    /// entry appended from now on, in the log's order (the same for every follower).
    fn follow(&self, pattern: String) -> BoxFuture<'_, Result<LogFollow, BusError>>;
    /// The connection's counters.
    fn counters(&self) -> Arc<BusCounters>;
    /// Whether the connection is up now (what others publish can reach it).
    fn connected(&self) -> bool;
}

/// The entries of the log a [`Bus::follow`] follows. Ends when the connection closes for good.
pub struct LogFollow {
    inner: Pin<Box<dyn Stream<Item = LogEntry> + Send>>,
}

impl LogFollow {
    fn new(inner: impl Stream<Item = LogEntry> + Send + 'static) -> Self {
        LogFollow {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for LogFollow {
    type Item = LogEntry;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LogEntry>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for LogFollow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogFollow")
    }
}

/// A stream of the messages of one subscription.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = BusMessage> + Send>>,
}

impl Subscription {
    fn new(inner: impl Stream<Item = BusMessage> + Send + 'static) -> Self {
        Subscription {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Subscription {
    type Item = BusMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusMessage>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}
