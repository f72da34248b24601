//! The control-plane API (`videocall.control.v1`): messages, tonic clients and server traits.
//!
//! The `.proto` lives beside the media wire protocol in `protocol/proto/videocall/control/v1`.

#![allow(
    missing_docs,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]

/// Generated messages, clients (`*_client`) and servers (`*_server`).
pub mod v1 {
    tonic::include_proto!("videocall.control.v1");
}

/// The encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/control_descriptor.bin"));

/// The `authorization` metadata value for an API key.
pub fn api_key_authorization(key_id: &str, secret: &str) -> String {
    format!("ApiKey {key_id}:{secret}")
}

/// The `authorization` metadata value for a session token.
pub fn bearer_authorization(session_token: &str) -> String {
    format!("Bearer {session_token}")
}
