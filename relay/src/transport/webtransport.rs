//! WebTransport transport.
//!
//! The client opens one bidirectional control stream and sends `Join` on it; control
//! messages travel there with a 4-byte length prefix. Media travels on unidirectional
//! streams (one per video group of pictures) and, for audio, in datagrams holding one
//! envelope each, written by one writer per subscriber ([`super::media_writer`]). The relay
//! reads media from any of them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use wtransport::endpoint::{endpoint_side::Server, IncomingSession};
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use super::datagram::{send_datagram, DatagramHeader, DatagramRefused};
use super::media_writer::write_media;
use super::outbox::{Outbox, OutboxSink};
use super::queue::send_control;
use crate::client_address::{webtransport_client, ClientKey};
use crate::core::{
    ControlQueueFull, LinkSample, MediaSink, Now, Offer, Outgoing, Outlet, QueueBudget, Session,
};
use crate::driver::{drive, ClientLink, FirstFrame, Inbound};
use crate::ids::TransportKind;
use crate::reason::{CloseReason, Refusal};
use crate::state::RelayState;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason};
use videocall_protocol::{encode_length_prefixed, length_delimited_codec};

/// How long a closing session may take to flush its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a session closed with an error waits for the client, told why, to close it.
const PEER_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Accepts WebTransport sessions until the relay shuts down.
pub(crate) async fn serve(state: Arc<RelayState>, endpoint: Endpoint<Server>) {
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
    let public_url = state.config().public_webtransport_url.as_deref();
    if !super::session_path::is_session_path(request.path(), public_url) {
        tracing::debug!(path = %request.path(), "WebTransport session for an unknown path: 404");
        state.metrics().refuse_session("unknown_path");
        request.not_found().await;
        return;
    }
    let connection = match request.accept().await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, "WebTransport session not established");
            return;
        }
    };
    let max_frame = state.config().limits.max_frame_size;
    let client = webtransport_client(
        connection.remote_address(),
        &state.config().limits.trusted_proxies,
    );
    drive(
        state,
        StreamsLink {
            client,
            connection,
            max_frame,
            send: None,
            control: None,
            control_rx: None,
            outbox: None,
            writer: None,
        },
    )
    .await;
}

/// One WebTransport session.
struct StreamsLink {
    client: ClientKey,
    connection: Connection,
    max_frame: usize,
    send: Option<SendStream>,
    control: Option<FramedRead<RecvStream, LengthDelimitedCodec>>,
    control_rx: Option<mpsc::Receiver<Bytes>>,
    outbox: Option<Arc<Outbox>>,
    writer: Option<JoinHandle<()>>,
}

/// The core's way to a WebTransport participant: its tracks' queues in one outbox.
struct StreamsOutlet {
    control: mpsc::Sender<Bytes>,
    connection: Connection,
    outbox: Arc<Outbox>,
    closing: CancellationToken,
}

impl Outlet for StreamsOutlet {
    fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull> {
        send_control(&self.control, frame)
    }

    fn media_sink(&self, audio: bool) -> Box<dyn MediaSink> {
        let sink = self.outbox.sink(audio);
        if audio {
            Box::new(DatagramSink {
                sink,
                connection: self.connection.clone(),
                header: DatagramHeader::of(&self.connection),
            })
        } else {
            Box::new(sink)
        }
    }

    fn close(&self) {
        self.closing.cancel();
    }

    fn link_sample(&self) -> Option<LinkSample> {
        // QUIC's own figures: what left and what of it was lost, and the round trip; and the
        // video waiting in this relay's outbox.
        let stats = self.connection.quic_connection().stats();
        let path = stats.path;
        Some(LinkSample {
            at_ms: 0,
            delivered_bytes: stats.udp_tx.bytes.saturating_sub(path.lost_bytes),
            sent_bytes: stats.udp_tx.bytes,
            lost_bytes: path.lost_bytes,
            backlog_bytes: self.outbox.queued_bytes() as u64,
            rtt_ms: Some(path.rtt.as_secs_f64() * 1000.0),
            min_rtt_ms: Some(path.min_rtt.as_secs_f64() * 1000.0),
        })
    }
}

/// Audio: a datagram at once when none of the subscriber's audio waits (no wake-up of its
/// writer; the fan-out counts it as written), else into its outbox behind the rest.
struct DatagramSink {
    sink: OutboxSink,
    connection: Connection,
    header: Option<DatagramHeader>,
}

impl MediaSink for DatagramSink {
    fn offer(&self, out: Outgoing) -> Offer {
        self.sink.offer_or_send(
            out,
            &|out| match send_datagram(&self.connection, self.header, out) {
                Ok(_) => Ok(Offer::Written),
                // The writer sends it on a stream, or finds the connection gone.
                Err(DatagramRefused::Unfit(out)) => Err(out),
                Err(DatagramRefused::NotConnected) => Ok(Offer::Closed),
            },
        )
    }
}

impl ClientLink for StreamsLink {
    const KIND: TransportKind = TransportKind::WebTransport;

    fn client(&self) -> ClientKey {
        self.client
    }

    async fn first_frame(&mut self) -> FirstFrame {
        let (send, recv) = match self.connection.accept_bi().await {
            Ok(streams) => streams,
            Err(_) => return FirstFrame::Gone,
        };
        self.send = Some(send);
        let control = self.control.insert(FramedRead::new(
            recv,
            length_delimited_codec(self.max_frame),
        ));
        match control.next().await {
            Some(Ok(frame)) => FirstFrame::Frame(frame.freeze()),
            Some(Err(error)) => FirstFrame::Refused(Refusal::new(
                ErrorCode::FrameTooLarge,
                format!("unreadable Join: {error}"),
            )),
            None => FirstFrame::Gone,
        }
    }

    fn outlet(&mut self, state: &RelayState, closing: &CancellationToken) -> Box<dyn Outlet> {
        let limits = &state.config().limits;
        let (control, control_rx) = mpsc::channel(limits.control_queue_messages.max(1));
        self.control_rx = Some(control_rx);
        let budget = QueueBudget::new(
            limits.subscriber_queue_bytes,
            state.metrics().queued_bytes.clone(),
        );
        let outbox = Outbox::new(
            budget,
            limits.track_queue_packets,
            limits.audio_queue_packets,
        );
        self.outbox = Some(outbox.clone());
        Box::new(StreamsOutlet {
            control,
            connection: self.connection.clone(),
            outbox,
            closing: closing.clone(),
        })
    }

    fn start(&mut self, state: &RelayState, session: &Arc<Session>, closing: &CancellationToken) {
        if let (Some(send), Some(rx)) = (self.send.take(), self.control_rx.take()) {
            self.writer = Some(tokio::spawn(write_control(send, rx, closing.clone())));
        }
        if let Some(outbox) = self.outbox.take() {
            tokio::spawn(write_media(
                self.connection.clone(),
                outbox,
                state.metrics().clone(),
                closing.clone(),
            ));
        }
        tokio::spawn(accept_media_streams(
            session.clone(),
            self.connection.clone(),
            closing.clone(),
        ));
        tokio::spawn(read_datagrams(
            session.clone(),
            self.connection.clone(),
            closing.clone(),
        ));
    }

    async fn next(&mut self) -> Inbound {
        let Some(control) = self.control.as_mut() else {
            return Inbound::Ended;
        };
        tokio::select! {
            _ = self.connection.closed() => Inbound::Ended,
            frame = control.next() => match frame {
                Some(Ok(frame)) => Inbound::Frame(frame.freeze()),
                Some(Err(error)) if !is_oversized(&error) => Inbound::Ended,
                // The length prefix cannot be trusted any more: the control stream is lost.
                Some(Err(error)) => Inbound::Broken(CloseReason::error(
                    LeaveReason::Error,
                    ErrorCode::FrameTooLarge,
                    format!("control stream framing broken: {error}"),
                )),
                None => Inbound::Ended,
            }
        }
    }

    async fn refuse(mut self, refusal: Refusal) {
        if let Some(mut send) = self.send.take() {
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
        }
        close(&self.connection, &refusal.close_reason());
    }

    async fn close(self, reason: CloseReason) {
        if let Some(writer) = self.writer {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer).await;
        }
        // An error that ends the session (a host's removal, the meeting's end) was written
        // last on the control stream: the client reads it and closes. Closing first could
        // lose it in flight (a browser drops a closed session's unread stream data), and a
        // client that never read why would reconnect.
        if reason.error.is_some() {
            let _ = tokio::time::timeout(PEER_CLOSE_GRACE, self.connection.closed()).await;
        }
        close(&self.connection, &reason);
    }
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

/// Whether a framing error is a length prefix over the limit (the client's fault), not a
/// stream or connection that went away.
fn is_oversized(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
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
            Some(Ok(frame)) => session.handle_frame(frame.freeze(), Now::system()),
            // The stream (or the whole connection) went away: nothing the client did wrong.
            Some(Err(error)) if !is_oversized(&error) => {
                tracing::debug!(%error, "media stream ended");
                return;
            }
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
        session.handle_frame(datagram.payload(), Now::system());
    }
}

fn close(connection: &Connection, reason: &CloseReason) {
    connection.close(VarInt::from_u32(reason.code()), reason.text().as_bytes());
}
