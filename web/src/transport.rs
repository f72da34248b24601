//! The page's connection to its relay: WebTransport (control on the first bidirectional
//! stream, video on one unidirectional stream per track per group of pictures, audio in
//! datagrams) or WebSocket (one binary message per envelope). Both deliver decoded envelopes
//! to one inbox, so the session does not care which it got.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;
use js_sys::{ArrayBuffer, Uint8Array};
use tokio_util::codec::Decoder;
use videocall_protocol::wire::{envelope::Body, Envelope, MediaKind};
use videocall_protocol::{
    decode_envelope, encode_envelope, encode_length_prefixed, length_delimited_codec,
    DEFAULT_MAX_FRAME_SIZE,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    BinaryType, CloseEvent, MessageEvent, ReadableStream, WebSocket, WebTransport,
    WebTransportBidirectionalStream, WebTransportHash, WebTransportOptions, WritableStream,
    WritableStreamDefaultWriter,
};

use crate::control::JoinGrant;
use crate::js::{self, StreamReader};
use crate::route::TransportChoice;

/// How long WebTransport may take before the page falls back to WebSocket.
pub const WEBTRANSPORT_TIMEOUT_MS: i32 = 3000;
const WEBSOCKET_TIMEOUT_MS: i32 = 5000;

/// Which transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// QUIC.
    WebTransport,
    /// TCP.
    WebSocket,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::WebTransport => "WebTransport",
            TransportKind::WebSocket => "WebSocket",
        })
    }
}

/// What a connection delivers.
#[derive(Debug)]
pub enum Incoming {
    /// One envelope from the relay.
    Envelope(Envelope, usize),
    /// The connection is gone, and why.
    Closed(String),
}

/// Where a connection delivers.
pub type Inbox = UnboundedSender<Incoming>;

/// An open connection.
pub struct Connection {
    kind: TransportKind,
    sender: Sender,
}

enum Sender {
    WebSocket(WebSocketLink),
    WebTransport(Rc<WebTransportLink>),
}

struct WebSocketLink {
    socket: WebSocket,
    // Kept alive as long as the socket.
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

struct WebTransportLink {
    transport: WebTransport,
    control: WritableStreamDefaultWriter,
    datagrams: WritableStreamDefaultWriter,
    tracks: RefCell<HashMap<u32, UnboundedSender<(Bytes, bool)>>>,
}

/// Connects as `choice` says: WebTransport first (if the browser has it) and WebSocket when it
/// is missing or does not connect within [`WEBTRANSPORT_TIMEOUT_MS`].
pub async fn connect(
    grant: &JoinGrant,
    choice: TransportChoice,
    inbox: Inbox,
) -> Result<Connection, String> {
    let relay = grant.relay.clone().unwrap_or_default();
    let mut failures = Vec::new();
    if choice != TransportChoice::WebSocket {
        if !js::has_global("WebTransport") {
            failures.push("this browser has no WebTransport".to_owned());
        } else {
            let attempt = connect_webtransport(
                &relay.webtransport_url,
                &relay.certificate_sha256,
                inbox.clone(),
            );
            match with_timeout(attempt, WEBTRANSPORT_TIMEOUT_MS).await {
                Some(Ok(connection)) => return Ok(connection),
                Some(Err(error)) => failures.push(format!("WebTransport: {error}")),
                None => failures.push("WebTransport: no answer within 3 s".to_owned()),
            }
        }
    }
    if choice != TransportChoice::WebTransport {
        match with_timeout(
            connect_websocket(&relay.websocket_url, inbox),
            WEBSOCKET_TIMEOUT_MS,
        )
        .await
        {
            Some(Ok(connection)) => return Ok(connection),
            Some(Err(error)) => failures.push(format!("WebSocket: {error}")),
            None => failures.push("WebSocket: no answer within 5 s".to_owned()),
        }
    }
    Err(failures.join("; "))
}

async fn with_timeout<F: std::future::Future>(future: F, ms: i32) -> Option<F::Output> {
    use futures_util::future::{select, Either};
    match select(Box::pin(future), Box::pin(js::sleep(ms))).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

impl Connection {
    /// The transport in use.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// Sends a control envelope (join, state, chat, pings).
    pub fn send(&self, envelope: &Envelope) {
        match &self.sender {
            Sender::WebSocket(link) => {
                let _ = link.socket.send_with_u8_array(&encode_envelope(envelope));
            }
            Sender::WebTransport(link) => {
                write(&link.control, &encode_length_prefixed(envelope));
            }
        }
    }

    /// Sends media: audio as a datagram where it fits, video on its track's stream (a
    /// keyframe starts a new stream, so a stalled group never holds up the next one).
    pub fn send_media(&self, envelope: &Envelope) {
        let link = match &self.sender {
            Sender::WebSocket(_) => return self.send(envelope),
            Sender::WebTransport(link) => link,
        };
        let Some(Body::Media(media)) = &envelope.body else {
            return self.send(envelope);
        };
        if media.kind() == MediaKind::Audio {
            let bytes = encode_envelope(envelope);
            if bytes.len() <= link.transport.datagrams().max_datagram_size() as usize {
                write(&link.datagrams, &bytes);
                return;
            }
        }
        let frame = encode_length_prefixed(envelope);
        let mut tracks = link.tracks.borrow_mut();
        let queue = tracks.entry(media.track_id).or_insert_with(|| {
            let (queue, frames) = unbounded();
            spawn_local(track_writer(link.transport.clone(), frames));
            queue
        });
        let _ = queue.unbounded_send((frame, media.keyframe));
    }

    /// Closes the connection.
    pub fn close(&self) {
        match &self.sender {
            Sender::WebSocket(link) => {
                let _ = link.socket.close();
            }
            Sender::WebTransport(link) => link.transport.close(),
        }
    }
}

fn write(writer: &WritableStreamDefaultWriter, bytes: &[u8]) {
    // The stream queues writes in order and a failed write shows up as the transport closing,
    // so the result is only needed to keep a rejection from being reported as unhandled: one
    // shared handler for every packet rather than a task per packet.
    thread_local! {
        static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});
    }
    let promise = writer.write_with_chunk(&Uint8Array::from(bytes));
    IGNORE.with(|ignore| {
        let _ = promise.catch(ignore);
    });
}

/// Writes one track's frames, a new unidirectional stream per keyframe.
async fn track_writer(
    transport: WebTransport,
    mut frames: futures_channel::mpsc::UnboundedReceiver<(Bytes, bool)>,
) {
    let mut writer: Option<WritableStreamDefaultWriter> = None;
    while let Some((frame, keyframe)) = frames.next().await {
        if keyframe || writer.is_none() {
            if let Some(previous) = writer.take() {
                let _ = previous.close();
            }
            match js::wait(transport.create_unidirectional_stream()).await {
                Ok(stream) => {
                    writer = stream
                        .dyn_into::<WritableStream>()
                        .ok()
                        .and_then(|s| s.get_writer().ok());
                }
                Err(_) => return,
            }
        }
        if let Some(writer) = &writer {
            write(writer, &frame);
        }
    }
}

async fn connect_webtransport(
    url: &str,
    certificate_hashes: &[String],
    inbox: Inbox,
) -> Result<Connection, String> {
    let text = |e: JsValue| js::error_text(&e);
    let options = WebTransportOptions::new();
    let hashes: Vec<WebTransportHash> = certificate_hashes
        .iter()
        .filter_map(|hex| decode_hex(hex))
        .map(|bytes| {
            let hash = WebTransportHash::new();
            hash.set_algorithm("sha-256");
            hash.set_value_u8_array(&Uint8Array::from(bytes.as_slice()));
            hash
        })
        .collect();
    if !hashes.is_empty() {
        options.set_server_certificate_hashes(&hashes);
    }
    let transport = WebTransport::new_with_options(url, &options).map_err(text)?;
    // Closed unless this attempt completes (a timed-out attempt must not connect later).
    let mut abandon = Abandon::WebTransport(Some(transport.clone()));
    // A failed session rejects `closed` too; nobody else awaits it yet.
    let closed = transport.closed();
    if let Err(error) = js::wait(transport.ready()).await {
        let _ = js::wait(closed).await;
        return Err(text(error));
    }
    let control: WebTransportBidirectionalStream =
        js::wait(transport.create_bidirectional_stream())
            .await
            .map_err(text)?
            .dyn_into()
            .map_err(text)?;
    let control_writer = control.writable().get_writer().map_err(text)?;
    let datagrams = transport
        .datagrams()
        .writable()
        .get_writer()
        .map_err(text)?;

    abandon.keep();
    spawn_local(read_framed(
        control.readable().unchecked_into(),
        inbox.clone(),
    ));
    let incoming = transport.incoming_unidirectional_streams();
    let streams_inbox = inbox.clone();
    spawn_local(async move {
        let Ok(reader) = StreamReader::new(&incoming) else {
            return;
        };
        while let Ok(Some(stream)) = reader.next().await {
            spawn_local(read_framed(stream.unchecked_into(), streams_inbox.clone()));
        }
    });
    let datagram_stream = transport.datagrams().readable();
    let datagram_inbox = inbox.clone();
    spawn_local(async move {
        let Ok(reader) = StreamReader::new(&datagram_stream) else {
            return;
        };
        while let Ok(Some(chunk)) = reader.next().await {
            deliver(
                &datagram_inbox,
                Bytes::from(Uint8Array::new(&chunk).to_vec()),
            );
        }
    });
    spawn_local(async move {
        let reason = match js::wait(closed).await {
            Ok(info) => js::get(&info, "reason")
                .as_string()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "the relay closed the session".into()),
            Err(error) => js::error_text(&error),
        };
        let _ = inbox.unbounded_send(Incoming::Closed(reason));
    });
    Ok(Connection {
        kind: TransportKind::WebTransport,
        sender: Sender::WebTransport(Rc::new(WebTransportLink {
            transport,
            control: control_writer,
            datagrams,
            tracks: RefCell::new(HashMap::new()),
        })),
    })
}

/// Reads length-prefixed envelopes from one stream.
async fn read_framed(stream: ReadableStream, inbox: Inbox) {
    let Ok(reader) = StreamReader::new(&stream) else {
        return;
    };
    let mut codec = length_delimited_codec(DEFAULT_MAX_FRAME_SIZE);
    let mut buffer = BytesMut::new();
    while let Ok(Some(chunk)) = reader.next().await {
        // Straight from the JS chunk into the frame buffer: one copy.
        let chunk = Uint8Array::new(&chunk);
        let start = buffer.len();
        buffer.resize(start + chunk.length() as usize, 0);
        chunk.copy_to(&mut buffer[start..]);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => deliver(&inbox, frame.freeze()),
                Ok(None) => break,
                Err(error) => {
                    web_sys::console::warn_1(&format!("bad frame from the relay: {error}").into());
                    reader.cancel();
                    return;
                }
            }
        }
    }
}

fn deliver(inbox: &Inbox, frame: Bytes) {
    let size = frame.len();
    match decode_envelope(frame, DEFAULT_MAX_FRAME_SIZE) {
        Ok(envelope) => {
            let _ = inbox.unbounded_send(Incoming::Envelope(envelope, size));
        }
        Err(error) => {
            web_sys::console::warn_1(
                &format!("undecodable envelope from the relay: {error}").into(),
            );
        }
    }
}

async fn connect_websocket(url: &str, inbox: Inbox) -> Result<Connection, String> {
    let socket = WebSocket::new(url).map_err(|e| js::error_text(&e))?;
    socket.set_binary_type(BinaryType::Arraybuffer);
    let (opened_tx, mut opened) = unbounded::<Result<(), String>>();
    let open_tx = opened_tx.clone();
    let on_open = Closure::<dyn FnMut()>::new(move || {
        let _ = open_tx.unbounded_send(Ok(()));
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    let message_inbox = inbox.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
            deliver(
                &message_inbox,
                Bytes::from(Uint8Array::new(&buffer).to_vec()),
            );
        }
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
        let reason = if event.reason().is_empty() {
            format!("connection closed (code {})", event.code())
        } else {
            event.reason()
        };
        let _ = opened_tx.unbounded_send(Err(reason.clone()));
        let _ = inbox.unbounded_send(Incoming::Closed(reason));
    });
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    // Declared after the handlers so that, if this attempt is abandoned at the await below,
    // it is dropped first: it unhooks them before they are freed and closes the socket.
    let mut abandon = Abandon::WebSocket(Some(socket.clone()));
    match opened.next().await {
        Some(Ok(())) => {}
        Some(Err(reason)) => return Err(reason),
        None => return Err("connection failed".into()),
    }
    socket.set_onopen(None);
    abandon.keep();
    drop(on_open);
    Ok(Connection {
        kind: TransportKind::WebSocket,
        sender: Sender::WebSocket(WebSocketLink {
            socket,
            _on_message: on_message,
            _on_close: on_close,
        }),
    })
}

/// Closes a connection attempt that is dropped before it completes (the fallback timer won),
/// and unhooks a socket's handlers before they are freed.
enum Abandon {
    WebSocket(Option<WebSocket>),
    WebTransport(Option<WebTransport>),
}

impl Abandon {
    /// The attempt succeeded: leave the connection open.
    fn keep(&mut self) {
        match self {
            Abandon::WebSocket(socket) => *socket = None,
            Abandon::WebTransport(transport) => *transport = None,
        }
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        match self {
            Abandon::WebSocket(Some(socket)) => {
                socket.set_onopen(None);
                socket.set_onmessage(None);
                socket.set_onclose(None);
                let _ = socket.close();
            }
            Abandon::WebTransport(Some(transport)) => transport.close(),
            _ => {}
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
