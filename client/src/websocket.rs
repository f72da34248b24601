//! WebSocket side of the client: one binary message per envelope.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use videocall_protocol::encode_envelope;
use videocall_protocol::wire::envelope::Body;

use crate::{deliver, envelope, ClientError, ConnectOptions, Event, SenderInner};

/// Outgoing messages queued for the socket writer.
const OUTGOING_QUEUE: usize = 1024;

#[derive(Clone)]
pub(crate) struct WsSender {
    tx: mpsc::Sender<Message>,
}

impl WsSender {
    pub(crate) async fn send(&self, body: Body) -> Result<(), ClientError> {
        self.send_raw(encode_envelope(&envelope(body))).await
    }

    pub(crate) async fn send_raw(&self, frame: Bytes) -> Result<(), ClientError> {
        self.tx
            .send(Message::Binary(frame))
            .await
            .map_err(|_| ClientError::Closed {
                code: 0,
                reason: "connection closed".into(),
            })
    }
}

/// Connects to the relay and sends `join` first.
pub(crate) async fn connect(
    options: &ConnectOptions,
    join: Body,
) -> Result<(SenderInner, mpsc::Receiver<Event>), ClientError> {
    // Nagle off: small media frames must leave at once.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(
        options.relay.websocket_url.as_str(),
        None,
        true,
    )
    .await
    .map_err(|e| ClientError::Connect(e.to_string()))?;
    let (tx, rx) = mpsc::channel::<Message>(OUTGOING_QUEUE);
    let (events_tx, events) = mpsc::channel(options.event_buffer.max(1));
    // One task owns the socket: reads and writes never wait on each other's lock.
    tokio::spawn(drive(
        socket,
        rx,
        tx.clone(),
        events_tx,
        options.answer_pings,
    ));

    let sender = WsSender { tx };
    sender.send(join).await?;
    Ok((SenderInner::WebSocket(sender), events))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn drive(
    mut socket: Socket,
    mut outgoing: mpsc::Receiver<Message>,
    pong_tx: mpsc::Sender<Message>,
    events_tx: mpsc::Sender<Event>,
    answer_pings: bool,
) {
    let closed = loop {
        tokio::select! {
            // The application dropped the client: the session ends now (answering pings
            // here would keep the relay waiting for a participant who is gone).
            _ = events_tx.closed() => {
                let _ = socket.close(None).await;
                return;
            }
            message = outgoing.recv() => match message {
                Some(message) => {
                    if let Err(error) = socket.send(message).await {
                        break Event::Closed { code: 1006, reason: error.to_string() };
                    }
                }
                None => {
                    let _ = socket.close(None).await;
                    return;
                }
            },
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Binary(frame))) => {
                    let pong = |body: Body| {
                        let _ = pong_tx.try_send(Message::Binary(encode_envelope(&envelope(body))));
                    };
                    if !deliver(frame, &events_tx, pong, answer_pings).await {
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(frame) => Event::Closed {
                            code: u16::from(frame.code) as u32,
                            reason: frame.reason.to_string(),
                        },
                        None => Event::Closed { code: 1005, reason: String::new() },
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break Event::Closed { code: 1006, reason: error.to_string() },
                None => break Event::Closed { code: 1006, reason: "connection ended".into() },
            }
        }
    };
    let _ = events_tx.send(closed).await;
}
