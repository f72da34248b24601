//! grpc-web unary calls as bytes: the request frame, and the data and trailer frames of the
//! answer (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md). The page sends them
//! with `fetch`; this crate has no I/O, so its rules are tested (and fuzzed) on the host.

#![warn(missing_docs)]

use bytes::Bytes;
use prost::Message;

/// The content type of binary grpc-web.
pub const CONTENT_TYPE: &str = "application/grpc-web+proto";

const DATA_FRAME: u8 = 0x00;
const TRAILER_FRAME: u8 = 0x80;
const COMPRESSED: u8 = 0x01;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server answered with a gRPC status other than OK.
    #[error("{message} (gRPC status {code})")]
    Status {
        /// gRPC status code.
        code: u32,
        /// Its message, percent-decoded.
        message: String,
    },
    /// The body is not grpc-web.
    #[error("malformed grpc-web answer: {0}")]
    Malformed(&'static str),
    /// The request never got an answer (network, CORS, server down).
    #[error("the server is unreachable: {0}")]
    Unreachable(String),
}

/// gRPC status codes the page tells apart.
pub mod code {
    /// Not found.
    pub const NOT_FOUND: u32 = 5;
    /// Permission denied.
    pub const PERMISSION_DENIED: u32 = 7;
    /// Resource exhausted (meeting full, rate limited).
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// Failed precondition (meeting ended).
    pub const FAILED_PRECONDITION: u32 = 9;
    /// Unavailable.
    pub const UNAVAILABLE: u32 = 14;
    /// Unauthenticated.
    pub const UNAUTHENTICATED: u32 = 16;
}

/// The body of a unary request carrying `message`.
pub fn request_body<M: Message>(message: &M) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut body = Vec::with_capacity(5 + payload.len());
    body.push(DATA_FRAME);
    body.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(&payload);
    body
}

/// Reads the answer of a unary call: `header_status` is the `grpc-status` (and
/// `grpc-message`) from the HTTP headers, present on trailers-only answers.
pub fn decode_unary<M: Message + Default>(
    header_status: Option<(u32, String)>,
    body: &[u8],
) -> Result<M, CallError> {
    if let Some((code, message)) = header_status {
        if code != 0 {
            return Err(CallError::Status {
                code,
                // grpc-message is percent-encoded (UTF-8).
                message: percent_decode(&message),
            });
        }
    }
    let mut data: Option<Bytes> = None;
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(CallError::Malformed("truncated frame header"));
        }
        let flags = rest[0];
        // Checked: on wasm32 a length near u32::MAX would overflow `5 + length`.
        let end = usize::try_from(u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]))
            .ok()
            .and_then(|length| length.checked_add(5))
            .filter(|&end| end <= rest.len())
            .ok_or(CallError::Malformed("truncated frame"))?;
        let frame = &rest[5..end];
        rest = &rest[end..];
        if flags & COMPRESSED != 0 {
            return Err(CallError::Malformed("compressed frames are not accepted"));
        }
        if flags & TRAILER_FRAME != 0 {
            let (code, message) = trailer_status(frame)?;
            if code != 0 {
                return Err(CallError::Status { code, message });
            }
        } else if data.is_none() {
            data = Some(Bytes::copy_from_slice(frame));
        }
    }
    let data = data.ok_or(CallError::Malformed("no message in the answer"))?;
    M::decode(data).map_err(|_| CallError::Malformed("the message does not decode"))
}

/// `grpc-status` and `grpc-message` of a trailer frame (HTTP/1-style header lines).
fn trailer_status(frame: &[u8]) -> Result<(u32, String), CallError> {
    let text =
        std::str::from_utf8(frame).map_err(|_| CallError::Malformed("trailers are not text"))?;
    let mut code = None;
    let mut message = String::new();
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "grpc-status" => code = value.trim().parse().ok(),
            "grpc-message" => message = percent_decode(value.trim()),
            _ => {}
        }
    }
    code.map(|c| (c, message))
        .ok_or(CallError::Malformed("trailers without grpc-status"))
}

/// Decodes `%XX` escapes (UTF-8, lossy): how grpc-message and URL path segments travel.
pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the control plane's request and grant, for the tests.
    #[derive(Clone, PartialEq, prost::Message)]
    struct JoinMeetingRequest {
        #[prost(string, tag = "1")]
        meeting_id: String,
        #[prost(string, tag = "2")]
        display_name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct JoinGrant {
        #[prost(string, tag = "1")]
        token: String,
        #[prost(string, tag = "2")]
        meeting_id: String,
    }

    fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flags];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_request_is_one_uncompressed_data_frame() {
        let request = JoinMeetingRequest {
            meeting_id: "demo".into(),
            display_name: "Ada".into(),
        };
        let body = request_body(&request);
        assert_eq!(body[0], 0);
        assert_eq!(&body[1..5], &(body.len() as u32 - 5).to_be_bytes());
        assert_eq!(JoinMeetingRequest::decode(&body[5..]).unwrap(), request);
    }

    #[test]
    fn an_answer_with_ok_trailers_decodes() {
        let grant = JoinGrant {
            token: "t".into(),
            meeting_id: "demo".into(),
        };
        let mut body = frame(0, &grant.encode_to_vec());
        body.extend(frame(0x80, b"grpc-status:0\r\ngrpc-message:\r\n"));
        assert_eq!(decode_unary::<JoinGrant>(None, &body).unwrap(), grant);
    }

    #[test]
    fn statuses_come_from_headers_or_trailers() {
        let error =
            decode_unary::<JoinGrant>(Some((8, "meeting%20is%20full".into())), b"").unwrap_err();
        assert_eq!(
            error,
            CallError::Status {
                code: code::RESOURCE_EXHAUSTED,
                message: "meeting is full".into()
            }
        );
        let body = frame(0x80, b"grpc-status: 7\r\ngrpc-message: not allowed\r\n");
        assert!(matches!(
            decode_unary::<JoinGrant>(None, &body),
            Err(CallError::Status { code: 7, .. })
        ));
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for body in [
            &b"\x00\x00"[..],
            &b"\x00\x00\x00\x00\x09abc"[..],
            &b"\x01\x00\x00\x00\x00"[..],
            &b""[..],
            &b"\x80\x00\x00\x00\x03abc"[..],
            &b"\x00\xff\xff\xff\xffabc"[..],
            &b"\x00\xff\xff\xff\xfb"[..],
        ] {
            assert!(
                matches!(
                    decode_unary::<JoinGrant>(None, body),
                    Err(CallError::Malformed(_))
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn percent_escapes_decode_and_stray_percents_stay() {
        assert_eq!(percent_decode("meeting%20is%20full"), "meeting is full");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%+1%zz%4"), "%+1%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
