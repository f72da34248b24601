//! Splicing a proxied WebSocket: bytes both ways, with the relay's last words always
//! delivered.
//!
//! The two directions end apart. The relay may close while the client is still sending (it
//! refused a frame too large to read, say): writing to it then fails, but what it sent
//! before closing (an Error and its close frame) still goes to the client, followed by an
//! orderly end of stream; the client's remaining bytes are read and dropped for a moment so
//! that the client's socket is not reset before it reads them. A client that ends first has
//! its end passed on, and the relay gets a moment to answer.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the client's bytes are still read (and dropped) after the relay's side ended.
const LINGER: Duration = Duration::from_secs(2);
/// How long the relay may take to end after the client's side ended.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Read size of the client-to-relay direction.
const CHUNK: usize = 16 * 1024;

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spliced {
    /// Bytes the relay sent, all delivered to the client.
    pub to_client: u64,
    /// Bytes of the client's the relay took.
    pub to_relay: u64,
    /// Bytes of the client's dropped because the relay no longer took them.
    pub dropped: u64,
    /// The relay ended its side first.
    pub relay_ended_first: bool,
}

/// Copies between `client` and `relay` until both directions end (see the module's header).
pub async fn splice<C, R>(client: C, relay: R) -> Spliced
where
    C: AsyncRead + AsyncWrite,
    R: AsyncRead + AsyncWrite,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut relay_read, mut relay_write) = tokio::io::split(relay);
    let mut outcome = Spliced::default();
    let mut upstream = Upstream::default();
    let from_relay = async {
        let copied = tokio::io::copy(&mut relay_read, &mut client_write).await;
        if let Err(error) = &copied {
            tracing::debug!(%error, "relay side of a proxied WebSocket ended");
        }
        let _ = client_write.shutdown().await;
        copied.unwrap_or(0)
    };
    {
        let from_client = upstream.pump(&mut client_read, &mut relay_write);
        tokio::pin!(from_relay, from_client);
        tokio::select! {
            to_client = &mut from_relay => {
                outcome.to_client = to_client;
                outcome.relay_ended_first = true;
                let _ = tokio::time::timeout(LINGER, &mut from_client).await;
            }
            () = &mut from_client => {
                if let Ok(to_client) = tokio::time::timeout(CLOSE_WAIT, &mut from_relay).await {
                    outcome.to_client = to_client;
                }
            }
        }
    }
    outcome.to_relay = upstream.taken;
    outcome.dropped = upstream.dropped;
    outcome
}

/// The client-to-relay direction's count.
#[derive(Default)]
struct Upstream {
    taken: u64,
    dropped: u64,
}

impl Upstream {
    /// Reads the client until its end; passes bytes on while the relay takes them, drops
    /// them after.
    async fn pump<I, O>(&mut self, client: &mut I, relay: &mut O)
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
    {
        let mut buffer = vec![0u8; CHUNK];
        let mut relay_open = true;
        loop {
            let n = match client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if relay_open && relay.write_all(&buffer[..n]).await.is_ok() {
                self.taken += n as u64;
            } else {
                relay_open = false;
                self.dropped += n as u64;
            }
        }
        if relay_open {
            let _ = relay.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn the_relays_last_words_reach_a_client_that_is_still_sending() {
        // The relay reads 4 bytes, says its last words and closes with the client mid-send.
        let (client, client_far) = duplex(64);
        let (relay_near, mut relay) = duplex(64);
        let relay_task = tokio::spawn(async move {
            let mut head = [0u8; 4];
            relay.read_exact(&mut head).await.expect("head");
            relay.write_all(b"error+close").await.expect("last words");
            drop(relay);
        });
        let splice_task = tokio::spawn(splice(client_far, relay_near));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let sender = tokio::spawn(async move {
            // Far more than the pipes hold: the rest is still on its way when the relay closes.
            let mut sent = 0;
            while sent < 1 << 20 {
                if client_write.write_all(&[7u8; 4096]).await.is_err() {
                    break;
                }
                sent += 4096;
            }
            let _ = client_write.shutdown().await;
        });
        let mut heard = Vec::new();
        client_read.read_to_end(&mut heard).await.expect("read");
        assert_eq!(
            heard, b"error+close",
            "the client heard the relay, then an end"
        );
        relay_task.await.expect("relay");
        sender.await.expect("sender");
        let spliced = splice_task.await.expect("splice");
        assert!(spliced.relay_ended_first);
        assert_eq!(spliced.to_client, 11);
        assert!(spliced.dropped > 0, "{spliced:?}");
        assert_eq!(spliced.to_relay + spliced.dropped, 1 << 20, "{spliced:?}");
    }

    #[tokio::test]
    async fn a_client_that_ends_first_lets_the_relay_answer() {
        let (mut client, client_far) = duplex(1024);
        let (relay_near, mut relay) = duplex(1024);
        let splice_task = tokio::spawn(splice(client_far, relay_near));
        client.write_all(b"close").await.expect("write");
        client.shutdown().await.expect("end");
        let mut got = Vec::new();
        relay
            .read_to_end(&mut got)
            .await
            .expect("relay reads to the end");
        assert_eq!(got, b"close");
        relay.write_all(b"close too").await.expect("answer");
        drop(relay);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.expect("answer read");
        assert_eq!(answer, b"close too");
        let spliced = splice_task.await.expect("splice");
        assert_eq!((spliced.to_relay, spliced.to_client), (5, 9));
        assert!(!spliced.relay_ended_first);
    }
}
