//! WebSocket transport: one binary message per envelope.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{close_text, GaugeGuard, TransportKind};
use crate::meeting::Refusal;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, Outgoing, SocketQueues};
use crate::participant::{CloseReason, Participant};
use crate::session::{admit, Session};
use crate::state::RelayState;
use videocall_protocol::envelope::{encode_envelope, envelope};
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason};
use videocall_protocol::LENGTH_PREFIX_BYTES;

/// Close codes 4000-4999 are the application's: 4000 + the wire error code.
const APP_CLOSE_BASE: u16 = 4000;
/// How long a closing session may take to flush its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Room above the frame limit in which an oversized message still gets a clean, non-fatal error.
const OVERSIZE_GRACE: usize = 64 * 1024;

type Sink = SplitSink<WebSocket, Message>;

/// `GET /ws`: upgrades to a WebSocket session.
pub async fn upgrade(State(state): State<Arc<RelayState>>, ws: WebSocketUpgrade) -> Response {
    let max = state.config.limits.max_frame_size + OVERSIZE_GRACE;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(state, socket))
}

async fn serve(state: Arc<RelayState>, socket: WebSocket) {
    let _gauge = GaugeGuard::new(state.metrics.connections(TransportKind::WebSocket));
    let (mut sink, mut stream) = socket.split();
    let join_timeout = state.config.timing.join_timeout();
    let first = tokio::select! {
        _ = state.shutdown.cancelled() => return,
        first = tokio::time::timeout(join_timeout, stream.next()) => first,
    };
    let frame = match first {
        Ok(Some(Ok(Message::Binary(frame)))) => frame,
        Ok(Some(Ok(Message::Text(_)))) => {
            let refusal = Refusal::new(
                ErrorCode::Malformed,
                "text messages are not part of the protocol; send binary envelopes",
            );
            state.metrics.refuse_join(refusal.code);
            return refuse(&mut sink, &refusal).await;
        }
        Ok(Some(Ok(_))) => {
            let refusal = Refusal::new(ErrorCode::NotJoined, "the first message must be Join");
            state.metrics.refuse_join(refusal.code);
            return refuse(&mut sink, &refusal).await;
        }
        Ok(Some(Err(error))) => {
            let refusal =
                Refusal::new(ErrorCode::Malformed, format!("unreadable message: {error}"));
            state.metrics.refuse_join(refusal.code);
            return refuse(&mut sink, &refusal).await;
        }
        Ok(None) => return,
        Err(_) => {
            let refusal = Refusal::join_timeout(join_timeout);
            state.metrics.refuse_join(refusal.code);
            return refuse(&mut sink, &refusal).await;
        }
    };

    let closing = state.shutdown.child_token();
    let (outbound, queues) = Outbound::socket(&state.config.limits, &state.metrics);
    let session = match admit(
        &state,
        frame,
        TransportKind::WebSocket,
        outbound,
        closing.clone(),
    ) {
        Ok(session) => session,
        Err(refusal) => return refuse(&mut sink, &refusal).await,
    };
    let writer = tokio::spawn(write(
        sink,
        queues,
        closing.clone(),
        state.metrics.clone(),
        session.me.clone(),
    ));
    read(&state, &session, &mut stream, &closing).await;
    session.finish();
    let _ = tokio::time::timeout(FLUSH_TIMEOUT * 2, writer).await;
}

async fn read(
    state: &RelayState,
    session: &Session,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    closing: &CancellationToken,
) {
    let mut heartbeat = tokio::time::interval(state.config.timing.heartbeat_interval());
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = closing.cancelled() => return,
            _ = heartbeat.tick() => session.tick(),
            message = stream.next() => match message {
                Some(Ok(Message::Binary(frame))) => session.handle_frame(frame),
                Some(Ok(Message::Text(_))) => session.reject(
                    ErrorCode::Malformed,
                    "text messages are not part of the protocol; send binary envelopes".into(),
                ),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => session.me.heard(state.now_ms()),
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(error)) => {
                    session.me.close(CloseReason::error(
                        LeaveReason::Error,
                        ErrorCode::Malformed,
                        format!("unreadable message: {error}"),
                    ));
                    return;
                }
            }
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
    loop {
        // Control first, then audio, then video: video is what a lagging socket loses.
        let first = tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            Some(frame) = queues.control.recv() => (Message::Binary(unprefixed(frame)), None),
            Some(out) = queues.audio.recv() => (Message::Binary(out.unprefixed()), Some(out)),
            Some(out) = queues.video.recv() => {
                queues.budget.release(out.frame.len());
                (Message::Binary(out.unprefixed()), Some(out))
            }
            else => break,
        };
        let sent = tokio::select! {
            sent = write_batch(&mut sink, &mut queues, first, &mut written) => sent,
            _ = closing.cancelled() => break,
        };
        if sent.is_err() {
            me.close(CloseReason {
                leave: LeaveReason::Disconnected,
                error: None,
            });
            break;
        }
        for out in written.drain(..) {
            let counters = metrics.media_out(out.audio);
            counters.packets.inc();
            counters.bytes.inc_by(out.frame.len() as u64);
            metrics
                .fanout_latency
                .observe(out.received_at.elapsed().as_secs_f64());
        }
    }
    queues.video.close();
    while let Ok(out) = queues.video.try_recv() {
        queues.budget.release(out.frame.len());
    }
    // Last words: pending control messages (the final error), then the close frame.
    let reason = me.close_reason();
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        while let Ok(frame) = queues.control.try_recv() {
            if sink.send(Message::Binary(unprefixed(frame))).await.is_err() {
                return;
            }
        }
        if let Some((code, message)) = &reason.error {
            let _ = sink
                .send(Message::Binary(error_message(*code, message)))
                .await;
        }
        let code = match &reason.error {
            Some((code, _)) => APP_CLOSE_BASE + *code as u16,
            None => 1000,
        };
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: close_text(&reason).into(),
            })))
            .await;
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
) -> Result<(), axum::Error> {
    let (message, media) = first;
    sink.feed(message).await?;
    written.extend(media);
    for _ in 1..WRITE_BATCH {
        let (message, media) = if let Ok(frame) = queues.control.try_recv() {
            (Message::Binary(unprefixed(frame)), None)
        } else if let Ok(out) = queues.audio.try_recv() {
            (Message::Binary(out.unprefixed()), Some(out))
        } else if let Ok(out) = queues.video.try_recv() {
            queues.budget.release(out.frame.len());
            (Message::Binary(out.unprefixed()), Some(out))
        } else {
            break;
        };
        sink.feed(message).await?;
        written.extend(media);
    }
    sink.flush().await
}

async fn refuse(sink: &mut Sink, refusal: &Refusal) {
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        let _ = sink
            .send(Message::Binary(error_message(
                refusal.code,
                &refusal.message,
            )))
            .await;
        let reason = CloseReason::error(LeaveReason::Error, refusal.code, refusal.message.clone());
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: APP_CLOSE_BASE + refusal.code as u16,
                reason: close_text(&reason).into(),
            })))
            .await;
    })
    .await;
}

fn error_message(code: ErrorCode, message: &str) -> Bytes {
    encode_envelope(&envelope(Body::Error(wire::Error {
        code: code as i32,
        message: message.to_owned(),
        fatal: true,
    })))
}

fn unprefixed(frame: Bytes) -> Bytes {
    frame.slice(LENGTH_PREFIX_BYTES.min(frame.len())..)
}
