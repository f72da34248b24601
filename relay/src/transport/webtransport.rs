//! WebTransport transport.
//!
//! The client opens one bidirectional control stream and sends `Join` on it; control
//! messages travel there with a 4-byte length prefix. Media travels on unidirectional
//! streams (one per video group of pictures, see [`crate::lane`]) and, for audio, in
//! datagrams holding one envelope each. The relay reads media from any of them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use wtransport::endpoint::{endpoint_side::Server, IncomingSession};
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use super::{close_code, close_text, GaugeGuard, TransportKind};
use crate::meeting::Refusal;
use crate::outbound::Outbound;
use crate::participant::CloseReason;
use crate::session::{admit, Session};
use crate::state::RelayState;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason};
use videocall_protocol::{encode_length_prefixed, length_delimited_codec};

/// How long a closing session may take to flush its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts WebTransport sessions until the relay shuts down.
pub async fn serve(state: Arc<RelayState>, endpoint: Endpoint<Server>) {
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            incoming = endpoint.accept() => {
                tokio::spawn(handle(state.clone(), incoming));
            }
        }
    }
    endpoint.close(VarInt::from_u32(0), b"relay stopped");
}

async fn handle(state: Arc<RelayState>, incoming: IncomingSession) {
    let request = match incoming.await {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(%error, "WebTransport handshake failed");
            return;
        }
    };
    let connection = match request.accept().await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, "WebTransport session not established");
            return;
        }
    };
    let _gauge = GaugeGuard::new(state.metrics.connections(TransportKind::WebTransport));
    let join_timeout = state.config.timing.join_timeout();
    let (send, recv) = tokio::select! {
        _ = state.shutdown.cancelled() => return,
        opened = tokio::time::timeout(join_timeout, connection.accept_bi()) => match opened {
            Ok(Ok(streams)) => streams,
            Ok(Err(_)) => return,
            Err(_) => {
                let refusal = Refusal::new(ErrorCode::Timeout, "no control stream opened in time");
                state.metrics.refuse_join(refusal.code);
                close(&connection, refusal.code as u32, &refusal.message);
                return;
            }
        }
    };
    let mut control = FramedRead::new(
        recv,
        length_delimited_codec(state.config.limits.max_frame_size),
    );
    let first = match tokio::time::timeout(join_timeout, control.next()).await {
        Ok(Some(Ok(frame))) => frame.freeze(),
        Ok(Some(Err(error))) => {
            let refusal = Refusal::new(
                ErrorCode::FrameTooLarge,
                format!("unreadable Join: {error}"),
            );
            state.metrics.refuse_join(refusal.code);
            return refuse(send, &connection, &refusal).await;
        }
        Ok(None) => return,
        Err(_) => {
            let refusal = Refusal::join_timeout(join_timeout);
            state.metrics.refuse_join(refusal.code);
            return refuse(send, &connection, &refusal).await;
        }
    };

    let closing = state.shutdown.child_token();
    let (outbound, control_rx) = Outbound::streams(
        connection.clone(),
        &state.config.limits,
        state.metrics.clone(),
        closing.clone(),
    );
    let session = match admit(
        &state,
        first,
        TransportKind::WebTransport,
        outbound,
        closing.clone(),
    ) {
        Ok(session) => Arc::new(session),
        Err(refusal) => return refuse(send, &connection, &refusal).await,
    };
    let writer = tokio::spawn(write_control(send, control_rx, closing.clone()));
    tokio::spawn(accept_media_streams(
        session.clone(),
        connection.clone(),
        closing.clone(),
    ));
    tokio::spawn(read_datagrams(
        session.clone(),
        connection.clone(),
        closing.clone(),
    ));

    let mut heartbeat = tokio::time::interval(state.config.timing.heartbeat_interval());
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = closing.cancelled() => break,
            _ = heartbeat.tick() => session.tick(),
            _ = connection.closed() => break,
            frame = control.next() => match frame {
                Some(Ok(frame)) => session.handle_frame(frame.freeze()),
                Some(Err(error)) => {
                    // The length prefix cannot be trusted any more: the control stream is lost.
                    session.me.close(CloseReason::error(
                        LeaveReason::Error,
                        ErrorCode::FrameTooLarge,
                        format!("control stream framing broken: {error}"),
                    ));
                    break;
                }
                None => break,
            }
        }
    }
    let reason = session.finish();
    if let Some((code, message)) = &reason.error {
        session.me.send(Body::Error(wire::Error {
            code: *code as i32,
            message: message.clone(),
            fatal: true,
        }));
    }
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer).await;
    close(&connection, close_code(&reason), &close_text(&reason));
}

async fn write_control(
    mut send: SendStream,
    mut rx: mpsc::Receiver<Bytes>,
    closing: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            biased;
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            _ = closing.cancelled() => break,
        };
        if send.quic_stream_mut().write_chunk(frame).await.is_err() {
            return;
        }
    }
    // Flush what is queued (the final error) and wait until the peer has it.
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        while let Ok(frame) = rx.try_recv() {
            if send.quic_stream_mut().write_chunk(frame).await.is_err() {
                return;
            }
        }
        let _ = send.finish().await;
    })
    .await;
}

async fn accept_media_streams(
    session: Arc<Session>,
    connection: Connection,
    closing: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = closing.cancelled() => return,
            stream = connection.accept_uni() => match stream {
                Ok(stream) => stream,
                Err(_) => return,
            }
        };
        tokio::spawn(read_media_stream(session.clone(), stream, closing.clone()));
    }
}

async fn read_media_stream(session: Arc<Session>, stream: RecvStream, closing: CancellationToken) {
    let max = session.max_frame_size();
    let mut frames = FramedRead::new(stream, length_delimited_codec(max));
    loop {
        let frame = tokio::select! {
            _ = closing.cancelled() => return,
            frame = frames.next() => frame,
        };
        match frame {
            Some(Ok(frame)) => session.handle_frame(frame.freeze()),
            Some(Err(error)) => {
                // Only this stream is lost; the session and its other streams go on.
                session.reject(
                    ErrorCode::FrameTooLarge,
                    format!("media stream dropped: {error}"),
                );
                frames
                    .into_inner()
                    .stop(VarInt::from_u32(ErrorCode::FrameTooLarge as u32));
                return;
            }
            None => return,
        }
    }
}

async fn read_datagrams(session: Arc<Session>, connection: Connection, closing: CancellationToken) {
    loop {
        let datagram = tokio::select! {
            _ = closing.cancelled() => return,
            datagram = connection.receive_datagram() => match datagram {
                Ok(datagram) => datagram,
                Err(_) => return,
            }
        };
        session.handle_frame(datagram.payload());
    }
}

async fn refuse(mut send: SendStream, connection: &Connection, refusal: &Refusal) {
    let frame = encode_length_prefixed(&envelope(Body::Error(wire::Error {
        code: refusal.code as i32,
        message: refusal.message.clone(),
        fatal: true,
    })));
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        if send.quic_stream_mut().write_chunk(frame).await.is_ok() {
            let _ = send.finish().await;
        }
    })
    .await;
    let reason = CloseReason::error(LeaveReason::Error, refusal.code, refusal.message.clone());
    close(connection, refusal.code as u32, &close_text(&reason));
}

fn close(connection: &Connection, code: u32, reason: &str) {
    connection.close(VarInt::from_u32(code), reason.as_bytes());
}
