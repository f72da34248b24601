//! A participant of a videocall-rs meeting, as its browser client connects: a WebSocket to
//! `/lobby/<user>/<room>`, one binary message per packet; or a WebTransport session on the
//! same path, one unidirectional stream per packet each way (and datagrams from the server).

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use videocall_client::Transport;

/// Messages received, in arrival order.
pub type Inbox = mpsc::Receiver<Bytes>;

/// Receives beyond this many unread messages are dropped (the reader is the bench's).
const INBOX: usize = 4096;
/// Largest message read from a stream.
const MAX_MESSAGE: usize = 1 << 20;

/// One connected participant.
pub enum Participant {
    WebSocket(mpsc::Sender<Bytes>),
    WebTransport(wtransport::Connection),
}

impl Participant {
    /// Joins `room` as `user` on the server at `port` (WebTransport: whose certificate has
    /// `certificate_sha256`); what arrives goes to the returned inbox until `stop`.
    pub async fn join(
        transport: Transport,
        port: u16,
        certificate_sha256: [u8; 32],
        user: &str,
        room: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<(Participant, Inbox)> {
        let (inbox_tx, inbox) = mpsc::channel(INBOX);
        let participant = match transport {
            Transport::WebSocket => join_websocket(port, user, room, inbox_tx, stop).await?,
            Transport::WebTransport => {
                join_webtransport(port, certificate_sha256, user, room, inbox_tx, stop).await?
            }
        };
        Ok((participant, inbox))
    }

    /// Sends one message (WebTransport: on a stream of its own, as its client does).
    pub async fn send(&self, message: Bytes) -> anyhow::Result<()> {
        match self {
            Participant::WebSocket(tx) => tx
                .send(message)
                .await
                .map_err(|_| anyhow::anyhow!("WebSocket closed")),
            Participant::WebTransport(connection) => {
                let mut stream = connection.open_uni().await?.await?;
                stream.quic_stream_mut().write_chunk(message).await?;
                stream.quic_stream_mut().finish()?;
                Ok(())
            }
        }
    }
}

/// A WebSocket to its `/lobby/<user>/<room>`: one binary message per packet.
async fn join_websocket(
    port: u16,
    user: &str,
    room: &str,
    inbox_tx: mpsc::Sender<Bytes>,
    stop: CancellationToken,
) -> anyhow::Result<Participant> {
    let url = format!("ws://127.0.0.1:{port}/lobby/{user}/{room}");
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("WebSocket {url}"))?;
    let (mut write, mut read) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let writer_stop = stop.clone();
    tokio::spawn(async move {
        while let Some(Some(message)) = writer_stop.run_until_cancelled(rx.recv()).await {
            if write.send(Message::Binary(message)).await.is_err() {
                break;
            }
        }
        let _ = write.close().await;
    });
    tokio::spawn(async move {
        while let Some(Some(Ok(message))) = stop.run_until_cancelled(read.next()).await {
            if let Message::Binary(data) = message {
                let _ = inbox_tx.try_send(data);
            }
        }
    });
    Ok(Participant::WebSocket(tx))
}

/// A WebTransport session on the same path: a stream per packet, datagrams from its server.
async fn join_webtransport(
    port: u16,
    certificate_sha256: [u8; 32],
    user: &str,
    room: &str,
    inbox_tx: mpsc::Sender<Bytes>,
    stop: CancellationToken,
) -> anyhow::Result<Participant> {
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(certificate_sha256)]);
    let mut config = config.build();
    let mut quic = wtransport::quinn::TransportConfig::default();
    // A stream per packet: as many open at once as a browser allows.
    quic.max_concurrent_uni_streams(wtransport::quinn::VarInt::from_u32(1024));
    quic.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    config.quic_config_mut().transport_config(Arc::new(quic));
    let endpoint = wtransport::Endpoint::client(config)?;
    let url = format!("https://127.0.0.1:{port}/lobby/{user}/{room}");
    let connection = endpoint
        .connect(url.as_str())
        .await
        .with_context(|| format!("WebTransport {url}"))?;
    let streams = connection.clone();
    let streams_tx = inbox_tx.clone();
    let streams_stop = stop.clone();
    tokio::spawn(async move {
        let _endpoint = endpoint;
        while let Some(Ok(mut stream)) =
            streams_stop.run_until_cancelled(streams.accept_uni()).await
        {
            let tx = streams_tx.clone();
            tokio::spawn(async move {
                if let Ok(data) = stream.quic_stream_mut().read_to_end(MAX_MESSAGE).await {
                    let _ = tx.try_send(Bytes::from(data));
                }
            });
        }
    });
    let datagrams = connection.clone();
    tokio::spawn(async move {
        while let Some(Ok(datagram)) = stop.run_until_cancelled(datagrams.receive_datagram()).await
        {
            let _ = inbox_tx.try_send(datagram.payload());
        }
    });
    Ok(Participant::WebTransport(connection))
}
