//! The in-process bus: relays in one process (`videocall up --relays N`) share meetings
//! without a server. Same rules as NATS: no echo to the publishing connection, at most once
//! per matching subscription, order kept, and a subscriber that does not keep up loses
//! messages (counted) instead of slowing the publisher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::log::{Appended, MemoryLog};
use crate::subject::{check_pattern, check_subject, matches};
use crate::{Bus, BusCounters, BusError, BusMessage, LogFollow, Subscription};

/// Messages a subscription holds before it loses the newest.
const SUBSCRIPTION_CAPACITY: usize = 65_536;

struct Sub {
    origin: u64,
    pattern: String,
    tx: mpsc::Sender<BusMessage>,
    counters: Arc<BusCounters>,
}

/// The shared switchboard; cheap to clone. Each relay connects once.
#[derive(Clone, Default)]
pub struct MemoryHub {
    subs: Arc<Mutex<Vec<Sub>>>,
    next_origin: Arc<AtomicU64>,
    log: Arc<Mutex<MemoryLog>>,
}

impl MemoryHub {
    /// An empty hub.
    pub fn new() -> Self {
        MemoryHub::default()
    }

    /// A new connection to the hub.
    pub fn connect(&self) -> MemoryBus {
        MemoryBus {
            hub: self.clone(),
            origin: self.next_origin.fetch_add(1, Ordering::Relaxed),
            counters: Arc::new(BusCounters::default()),
        }
    }
}

/// One relay's connection to a [`MemoryHub`].
pub struct MemoryBus {
    hub: MemoryHub,
    origin: u64,
    counters: Arc<BusCounters>,
}

impl Bus for MemoryBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            check_subject(&subject)?;
            self.counters.sent(payload.len());
            let mut subs = self.hub.subs.lock().unwrap_or_else(|p| p.into_inner());
            subs.retain(|s| !s.tx.is_closed());
            for sub in subs.iter() {
                if sub.origin == self.origin || !matches(&sub.pattern, &subject) {
                    continue;
                }
                let message = BusMessage {
                    subject: subject.clone(),
                    payload: payload.clone(),
                };
                match sub.tx.try_send(message) {
                    Ok(()) => sub.counters.received(payload.len()),
                    Err(_) => {
                        sub.counters
                            .slow_consumer_drops
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
    }

    fn subscribe(&self, subject: String) -> BoxFuture<'_, Result<Subscription, BusError>> {
        Box::pin(async move {
            check_pattern(&subject)?;
            let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
            self.hub
                .subs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Sub {
                    origin: self.origin,
                    pattern: subject,
                    tx,
                    counters: self.counters.clone(),
                });
            Ok(Subscription::new(ReceiverStream::new(rx)))
        })
    }

    fn append(
        &self,
        subject: String,
        expect_last: Option<u64>,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<Appended, BusError>> {
        Box::pin(async move {
            check_subject(&subject)?;
            let mut log = self.hub.log.lock().unwrap_or_else(|p| p.into_inner());
            Ok(log.append(&subject, expect_last, payload))
        })
    }

    fn follow(&self, pattern: String) -> BoxFuture<'_, Result<LogFollow, BusError>> {
        Box::pin(async move {
            check_pattern(&pattern)?;
            let mut log = self.hub.log.lock().unwrap_or_else(|p| p.into_inner());
            let entries = log.follow(&pattern);
            Ok(LogFollow::new(
                tokio_stream::wrappers::UnboundedReceiverStream::new(entries),
            ))
        })
    }

    fn connected(&self) -> bool {
        true
    }

    fn counters(&self) -> Arc<BusCounters> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;

    async fn next(sub: &mut Subscription) -> Option<BusMessage> {
        tokio::time::timeout(Duration::from_millis(200), sub.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn messages_reach_other_connections_once_in_order_and_never_echo() {
        let hub = MemoryHub::new();
        let (a, b, c) = (hub.connect(), hub.connect(), hub.connect());
        let mut on_a = a.subscribe("vc.m.x.>".into()).await.expect("a");
        let mut on_b = b.subscribe("vc.m.x.>".into()).await.expect("b");
        let mut other = c.subscribe("vc.m.y.>".into()).await.expect("c");
        for i in 0..100u8 {
            a.publish("vc.m.x.media".into(), Bytes::from(vec![i]))
                .await
                .expect("publish");
        }
        for i in 0..100u8 {
            assert_eq!(next(&mut on_b).await.map(|m| m.payload[0]), Some(i));
        }
        assert!(next(&mut on_b).await.is_none(), "delivered once");
        assert!(next(&mut on_a).await.is_none(), "no echo to the publisher");
        assert!(
            next(&mut other).await.is_none(),
            "another meeting hears nothing"
        );
        assert_eq!(b.counters().messages_in.load(Ordering::Relaxed), 100);
        assert_eq!(a.counters().messages_out.load(Ordering::Relaxed), 100);
    }

    #[tokio::test]
    async fn a_dropped_subscription_unsubscribes_and_bad_subjects_are_refused() {
        let hub = MemoryHub::new();
        let (a, b) = (hub.connect(), hub.connect());
        let sub = b.subscribe("vc.m.x.>".into()).await.expect("b");
        drop(sub);
        a.publish("vc.m.x.media".into(), Bytes::from_static(b"x"))
            .await
            .expect("publish");
        assert_eq!(b.counters().messages_in.load(Ordering::Relaxed), 0);
        assert_eq!(hub.subs.lock().map(|s| s.len()).unwrap_or(9), 0);
        assert!(a.publish("vc.*".into(), Bytes::new()).await.is_err());
        assert!(a.subscribe("vc..x".into()).await.is_err());
    }
}
