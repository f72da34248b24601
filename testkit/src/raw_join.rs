//! One join over a raw WebSocket from a chosen loopback source address (all of 127.0.0.0/8
//! is loopback on Linux): for tests of per-address limits, where the flood and the people
//! must come from different addresses.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use videocall_protocol::decode_envelope;
use videocall_protocol::envelope::{encode_envelope, envelope};
use videocall_protocol::wire::{self, envelope::Body, ErrorCode};

/// How long an answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A `Join` envelope carrying `token`.
pub fn join_frame(token: &str, meeting: &str) -> Bytes {
    encode_envelope(&envelope(Body::Join(wire::Join {
        token: token.into(),
        meeting_id: meeting.into(),
        client: "test".into(),
    })))
}

/// Sends `join` on a new WebSocket to `url` (`ws://host:port/path`) from `from`, and returns
/// the code it was refused with, or `None` if it was admitted. Anything short of an answer
/// (no connection, no reply) is `UNSPECIFIED`, never admitted.
pub async fn join_from(url: &str, from: [u8; 4], join: Bytes) -> Option<ErrorCode> {
    let Some(addr) = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    else {
        panic!("not a ws:// URL with an IP address: {url}");
    };
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((from, 0).into())
        .expect("bind a loopback source");
    let Ok(stream) = socket.connect(addr).await else {
        return Some(ErrorCode::Unspecified);
    };
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(url, stream).await else {
        return Some(ErrorCode::Unspecified);
    };
    if ws.send(Message::Binary(join)).await.is_err() {
        return Some(ErrorCode::Unspecified);
    }
    while let Ok(Some(Ok(message))) = tokio::time::timeout(ANSWER_WITHIN, ws.next()).await {
        if let Message::Binary(b) = message {
            match decode_envelope(b, usize::MAX).map(|e| e.body) {
                Ok(Some(Body::Error(e))) => return ErrorCode::try_from(e.code).ok(),
                Ok(Some(Body::Joined(_))) => return None,
                _ => {}
            }
        }
    }
    Some(ErrorCode::Unspecified)
}
