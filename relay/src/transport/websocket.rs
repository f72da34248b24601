//! WebSocket transport: one binary message per envelope. Media shares two bounded queues
//! (audio, video) drained by one writer that always prefers control, then audio: video is
//! what a lagging socket loses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::queue::{send_control, QueueSink, QueuedVideo, SharedVideoSink};
use crate::client_address::{websocket_client, ClientKey};
use crate::core::{
    unprefixed, ControlQueueFull, LinkSample, MediaSink, Outgoing, Outlet, Participant,
    QueueBudget, Session,
};
use crate::driver::{drive, ClientLink, FirstFrame, Inbound};
use crate::ids::TransportKind;
use crate::metrics::Metrics;
use crate::reason::{CloseReason, DropReason, Refusal};
use crate::state::RelayState;
use videocall_protocol::envelope::{encode_envelope, envelope};
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason};

/// Close codes 4000-4999 are the application's: 4000 + the wire error code.
const APP_CLOSE_BASE: u16 = 4000;
/// How long a closing session may take to flush its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;
/// tungstenite zero-fills its read buffer up to this size before every read of the socket
/// (128 KiB by default: 6 % of the relay's CPU at 50 publishers, BENCHMARKS.md). A larger
/// message still arrives whole, over more reads.
const READ_BUFFER: usize = 16 * 1024;
/// Room above the frame limit in which an oversized message still gets a clean, non-fatal error.
const OVERSIZE_GRACE: usize = 64 * 1024;
const TEXT_REFUSED: &str = "text messages are not part of the protocol; send binary envelopes";

type Sink = SplitSink<WebSocket, Message>;

/// `GET /ws`: upgrades to a WebSocket session.
pub(crate) async fn upgrade(
    State(state): State<Arc<RelayState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    let client = websocket_client(peer, forwarded_for, &state.config().limits.trusted_proxies);
    let max = state.config().limits.max_frame_size + OVERSIZE_GRACE;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            drive(
                state,
                SocketLink {
                    client,
                    sink: Some(sink),
                    stream,
                    queues: None,
                    writer: None,
                },
            )
        })
}

/// Receivers of a participant's queues, owned by its writer task.
struct SocketQueues {
    control: mpsc::Receiver<Bytes>,
    audio: mpsc::Receiver<Outgoing>,
    video: mpsc::Receiver<QueuedVideo>,
    budget: Arc<QueueBudget>,
    /// Bytes written and flushed to the socket so far.
    delivered: Arc<AtomicU64>,
}

/// One WebSocket connection.
struct SocketLink {
    client: ClientKey,
    sink: Option<Sink>,
    stream: SplitStream<WebSocket>,
    queues: Option<SocketQueues>,
    writer: Option<JoinHandle<()>>,
}

/// The core's way to a WebSocket participant.
struct SocketOutlet {
    control: mpsc::Sender<Bytes>,
    audio: mpsc::Sender<Outgoing>,
    video: mpsc::Sender<QueuedVideo>,
    budget: Arc<QueueBudget>,
    delivered: Arc<AtomicU64>,
    closing: CancellationToken,
}

impl Outlet for SocketOutlet {
    fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull> {
        send_control(&self.control, frame)
    }

    fn media_sink(&self, audio: bool) -> Box<dyn MediaSink> {
        if audio {
            Box::new(QueueSink {
                tx: self.audio.clone(),
                budget: None,
            })
        } else {
            Box::new(SharedVideoSink {
                tx: self.video.clone(),
                budget: self.budget.clone(),
                starts: Arc::default(),
            })
        }
    }

    fn close(&self) {
        self.closing.cancel();
    }

    fn link_sample(&self) -> Option<LinkSample> {
        // What the writer got into the socket, and the video still waiting for it: the
        // socket's own buffer is kept small (`TCP_NOTSENT_LOWAT`), so a slow link shows here.
        Some(LinkSample {
            delivered_bytes: self.delivered.load(Ordering::Relaxed),
            backlog_bytes: self.budget.used() as u64,
            ..LinkSample::default()
        })
    }
}

impl ClientLink for SocketLink {
    const KIND: TransportKind = TransportKind::WebSocket;

    fn client(&self) -> ClientKey {
        self.client
    }

    async fn first_frame(&mut self) -> FirstFrame {
        match self.stream.next().await {
            Some(Ok(Message::Binary(frame))) => FirstFrame::Frame(frame),
            Some(Ok(Message::Text(_))) => {
                FirstFrame::Refused(Refusal::new(ErrorCode::Malformed, TEXT_REFUSED))
            }
            Some(Ok(_)) => FirstFrame::Refused(Refusal::new(
                ErrorCode::NotJoined,
                "the first message must be Join",
            )),
            Some(Err(error)) => {
                let (code, message) = unreadable(&error);
                FirstFrame::Refused(Refusal::new(code, message))
            }
            None => FirstFrame::Gone,
        }
    }

    fn outlet(&mut self, state: &RelayState, closing: &CancellationToken) -> Box<dyn Outlet> {
        let limits = &state.config().limits;
        let budget = QueueBudget::new(
            limits.subscriber_queue_bytes,
            state.metrics().queued_bytes.clone(),
        );
        let (control_tx, control) = mpsc::channel(limits.control_queue_messages.max(1));
        let (audio_tx, audio) = mpsc::channel(limits.audio_queue_packets.max(1));
        let (video_tx, video) = mpsc::channel(limits.socket_queue_packets.max(1));
        let delivered = Arc::new(AtomicU64::new(0));
        self.queues = Some(SocketQueues {
            control,
            audio,
            video,
            budget: budget.clone(),
            delivered: delivered.clone(),
        });
        Box::new(SocketOutlet {
            control: control_tx,
            audio: audio_tx,
            video: video_tx,
            budget,
            delivered,
            closing: closing.clone(),
        })
    }

    fn start(&mut self, state: &RelayState, session: &Arc<Session>, closing: &CancellationToken) {
        if let (Some(sink), Some(queues)) = (self.sink.take(), self.queues.take()) {
            self.writer = Some(tokio::spawn(write(
                sink,
                queues,
                closing.clone(),
                state.metrics().clone(),
                session.me.clone(),
            )));
        }
    }

    async fn next(&mut self) -> Inbound {
        match self.stream.next().await {
            Some(Ok(Message::Binary(frame))) => Inbound::Frame(frame),
            Some(Ok(Message::Text(_))) => Inbound::Bad(ErrorCode::Malformed, TEXT_REFUSED.into()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Heard,
            Some(Ok(Message::Close(_))) | None => Inbound::Ended,
            Some(Err(error)) => {
                let (code, message) = unreadable(&error);
                Inbound::Broken(CloseReason::error(LeaveReason::Error, code, message))
            }
        }
    }

    async fn refuse(mut self, refusal: Refusal) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
            let _ = sink
                .send(Message::Binary(error_message(
                    refusal.code,
                    &refusal.message,
                )))
                .await;
            let _ = sink.send(close_message(&refusal.close_reason())).await;
        })
        .await;
    }

    async fn close(self, _reason: CloseReason) {
        // The writer says the last words: pending control messages, then the close frame.
        if let Some(writer) = self.writer {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT * 2, writer).await;
        }
    }
}

async fn write(
    mut sink: Sink,
    mut queues: SocketQueues,
    closing: CancellationToken,
    metrics: Metrics,
    me: Arc<Participant>,
) {
    let mut written: Vec<Outgoing> = Vec::with_capacity(WRITE_BATCH);
    let writes = metrics.media_writes();
    loop {
        let first = tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            Some(frame) = queues.control.recv() => (Message::Binary(unprefixed(&frame)), None),
            Some(out) = queues.audio.recv() => (Message::Binary(out.unprefixed()), Some(out)),
            Some(queued) = queues.video.recv() => {
                let Some(out) = take_video(queued, &queues.budget, &metrics) else {
                    continue;
                };
                (Message::Binary(out.unprefixed()), Some(out))
            }
            else => break,
        };
        let sent = tokio::select! {
            sent = write_batch(&mut sink, &mut queues, first, &mut written, &metrics) => sent,
            _ = closing.cancelled() => break,
        };
        if sent.is_err() {
            me.close(CloseReason::disconnected());
            break;
        }
        let now = Instant::now();
        for out in written.drain(..) {
            writes.written(out.audio, out.frame.len(), out.received_at, now);
        }
        writes.flush();
    }
    queues.video.close();
    while let Ok(queued) = queues.video.try_recv() {
        queues.budget.release(queued.out.frame.len());
    }
    // Last words: pending control messages (the final error among them), then the close frame.
    let reason = me.close_reason();
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        while let Ok(frame) = queues.control.try_recv() {
            if sink
                .send(Message::Binary(unprefixed(&frame)))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sink.send(close_message(&reason)).await;
    })
    .await;
}

/// Writes `first` and every frame already queued behind it (up to [`WRITE_BATCH`], in
/// priority order), then flushes once: one system call for a burst instead of one per frame.
async fn write_batch(
    sink: &mut Sink,
    queues: &mut SocketQueues,
    first: (Message, Option<Outgoing>),
    written: &mut Vec<Outgoing>,
    metrics: &Metrics,
) -> Result<(), axum::Error> {
    let (message, media) = first;
    let mut bytes = message_len(&message);
    sink.feed(message).await?;
    written.extend(media);
    for _ in 1..WRITE_BATCH {
        let (message, media) = if let Ok(frame) = queues.control.try_recv() {
            (Message::Binary(unprefixed(&frame)), None)
        } else if let Ok(out) = queues.audio.try_recv() {
            (Message::Binary(out.unprefixed()), Some(out))
        } else if let Ok(queued) = queues.video.try_recv() {
            let Some(out) = take_video(queued, &queues.budget, metrics) else {
                continue;
            };
            (Message::Binary(out.unprefixed()), Some(out))
        } else {
            break;
        };
        bytes += message_len(&message);
        sink.feed(message).await?;
        written.extend(media);
    }
    sink.flush().await?;
    queues.delivered.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

/// A video frame out of the queue, its bytes given back to the budget; `None` (counted) when
/// a keyframe behind it superseded it.
fn take_video(queued: QueuedVideo, budget: &QueueBudget, metrics: &Metrics) -> Option<Outgoing> {
    budget.release(queued.out.frame.len());
    if queued.superseded() {
        metrics.drop_packet(DropReason::Superseded);
        return None;
    }
    Some(queued.out)
}

fn message_len(message: &Message) -> u64 {
    match message {
        Message::Binary(bytes) => bytes.len() as u64,
        _ => 0,
    }
}

/// Why a message could not be read: a frame or message beyond the limit (the WebSocket
/// library stops at its header, before reading it) is `FRAME_TOO_LARGE`, like a smaller
/// oversized one; anything else is `MALFORMED`.
fn unreadable(error: &axum::Error) -> (ErrorCode, String) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(tungstenite::Error::Capacity(capacity)) = e.downcast_ref::<tungstenite::Error>()
        {
            return (
                ErrorCode::FrameTooLarge,
                format!("message too large: {capacity}"),
            );
        }
        cause = e.source();
    }
    (ErrorCode::Malformed, format!("unreadable message: {error}"))
}

fn close_message(reason: &CloseReason) -> Message {
    let code = match &reason.error {
        Some((code, _)) => APP_CLOSE_BASE + *code as u16,
        None => 1000,
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.text().into(),
    }))
}

fn error_message(code: ErrorCode, message: &str) -> Bytes {
    encode_envelope(&envelope(Body::Error(wire::Error {
        code: code as i32,
        message: message.to_owned(),
        fatal: true,
    })))
}
