//! The browser client's grpc-web answer reader (`videocall_grpc_web::decode_unary`): any body
//! and status header give a message or a clear error, and a request body is read back as
//! the message it carries.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use videocall_grpc_web::{decode_unary, percent_decode, request_body, CallError};

/// The shape of the control plane's join grant.
#[derive(Clone, PartialEq, prost::Message)]
struct Grant {
    #[prost(string, tag = "1")]
    token: String,
    #[prost(string, tag = "2")]
    meeting_id: String,
    #[prost(uint64, tag = "3")]
    expires_at: u64,
    #[prost(string, repeated, tag = "4")]
    relays: Vec<String>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// An answer as it arrived.
    Answer {
        header_status: Option<(u32, String)>,
        body: Vec<u8>,
    },
    /// A message, framed and read back.
    RoundTrip { token: String, relays: Vec<String> },
}

fuzz_target!(|input: Input| {
    match input {
        Input::Answer {
            header_status,
            body,
        } => {
            if let Some((_, message)) = &header_status {
                let _ = percent_decode(message);
            }
            match decode_unary::<Grant>(header_status, &body) {
                Ok(_) | Err(CallError::Status { .. }) | Err(CallError::Malformed(_)) => {}
                Err(e @ CallError::Unreachable(_)) => panic!("no network here: {e}"),
            }
        }
        Input::RoundTrip { token, relays } => {
            let grant = Grant {
                token,
                meeting_id: "m".into(),
                expires_at: 7,
                relays,
            };
            let mut body = request_body(&grant);
            let trailers = b"grpc-status:0\r\n";
            body.extend_from_slice(&[0x80, 0, 0, 0, trailers.len() as u8]);
            body.extend_from_slice(trailers);
            let read = decode_unary::<Grant>(None, &body).expect("a framed message reads back");
            assert_eq!(read, grant);
            assert_eq!(read.encode_to_vec(), grant.encode_to_vec());
        }
    }
});
