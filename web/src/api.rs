//! Calls to the control plane from the page: grpc-web over `fetch`, same origin.

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{Headers, RequestInit, Response};

use crate::control::{Admission, CheckAdmissionRequest, JoinGrant, JoinMeetingRequest};
use crate::js;
use videocall_grpc_web::{self as grpc_web, CallError};

/// `MeetingService.JoinMeeting` as a guest named `display_name`, placed on a relay other
/// than those in `avoid` (relays just lost or unreachable) when another can take us, with the
/// public half of this person's end-to-end encryption key (an encrypted meeting's grant then
/// carries its credential).
pub async fn join_meeting(
    meeting_id: &str,
    display_name: &str,
    avoid: &[String],
    e2ee_signature_key: Vec<u8>,
    admission_ticket: &str,
) -> Result<JoinGrant, CallError> {
    let request = JoinMeetingRequest {
        meeting_id: meeting_id.to_owned(),
        display_name: display_name.to_owned(),
        avoid_relay_ids: avoid.to_vec(),
        e2ee_signature_key,
        admission_ticket: admission_ticket.to_owned(),
        ..Default::default()
    };
    unary(
        "/videocall.control.v1.MeetingService/JoinMeeting",
        grpc_web::request_body(&request),
    )
    .await
}

/// Whether a host let this waiting person in (then with the grant) or turned them away.
pub async fn check_admission(
    meeting_id: &str,
    ticket: &str,
    avoid: &[String],
) -> Result<Admission, CallError> {
    let request = CheckAdmissionRequest {
        meeting_id: meeting_id.to_owned(),
        ticket: ticket.to_owned(),
        avoid_relay_ids: avoid.to_vec(),
    };
    unary(
        "/videocall.control.v1.MeetingService/CheckAdmission",
        grpc_web::request_body(&request),
    )
    .await
}

async fn unary<M: prost::Message + Default>(path: &str, body: Vec<u8>) -> Result<M, CallError> {
    let unreachable = |e: wasm_bindgen::JsValue| CallError::Unreachable(js::error_text(&e));
    let headers = Headers::new().map_err(unreachable)?;
    for (name, value) in [
        ("content-type", grpc_web::CONTENT_TYPE),
        ("accept", grpc_web::CONTENT_TYPE),
        ("x-grpc-web", "1"),
    ] {
        headers.set(name, value).map_err(unreachable)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    let body = Uint8Array::from(body.as_slice());
    init.set_body(&body);
    let response = js::wait(js::window().fetch_with_str_and_init(path, &init))
        .await
        .map_err(unreachable)?;
    let response: Response = response.dyn_into().map_err(unreachable)?;
    if !response.ok() {
        return Err(CallError::Unreachable(format!(
            "HTTP {} from the control plane",
            response.status()
        )));
    }
    let header = |name: &str| response.headers().get(name).ok().flatten();
    let header_status = header("grpc-status")
        .and_then(|code| code.parse().ok())
        .map(|code| (code, header("grpc-message").unwrap_or_default()));
    let buffer = js::wait(response.array_buffer().map_err(unreachable)?)
        .await
        .map_err(unreachable)?;
    let bytes = Uint8Array::new(&buffer).to_vec();
    grpc_web::decode_unary(header_status, &bytes)
}
