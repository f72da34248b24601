//! Calls to the control plane from the page: grpc-web over `fetch`, same origin.

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{Headers, RequestInit, Response};

use crate::account;
use crate::control::{
    Admission, CheckAdmissionRequest, DecideWaitingRequest, DecideWaitingResponse, JoinGrant,
    JoinMeetingRequest, ListWaitingRequest, ListWaitingResponse, LoginRequest, LoginResponse,
    LogoutRequest, LogoutResponse, SignInOptionsRequest, SignInOptionsResponse,
};
use crate::js;
use videocall_grpc_web::{self as grpc_web, CallError};

/// How people sign in here (`AuthService.SignInOptions`).
pub async fn sign_in_options() -> Result<SignInOptionsResponse, CallError> {
    unary(
        "/videocall.control.v1.AuthService/SignInOptions",
        grpc_web::request_body(&SignInOptionsRequest {}),
    )
    .await
}

/// Signs in with a local account's username and password (`AuthService.Login`).
pub async fn login(username: &str, password: &str) -> Result<LoginResponse, CallError> {
    let request = LoginRequest {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    unary(
        "/videocall.control.v1.AuthService/Login",
        grpc_web::request_body(&request),
    )
    .await
}

/// Ends the signed-in session at the server (`AuthService.Logout`).
pub async fn logout() -> Result<LogoutResponse, CallError> {
    unary(
        "/videocall.control.v1.AuthService/Logout",
        grpc_web::request_body(&LogoutRequest {}),
    )
    .await
}

/// `MeetingService.JoinMeeting` as the signed-in person (or a guest named `display_name`,
/// or, signed in with an empty name, under their own name), placed on a relay other
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

/// The people waiting to be let into `meeting_id`, oldest first (`HostService.ListWaiting`:
/// the signed-in person must host it).
pub async fn list_waiting(meeting_id: &str) -> Result<ListWaitingResponse, CallError> {
    let request = ListWaitingRequest {
        meeting_id: meeting_id.to_owned(),
    };
    unary(
        "/videocall.control.v1.HostService/ListWaiting",
        grpc_web::request_body(&request),
    )
    .await
}

/// Lets the waiters `ids` (or everyone waiting, with `all`) in, or turns them away with
/// `reason` (`HostService.DecideWaiting`).
pub async fn decide_waiting(
    meeting_id: &str,
    ids: Vec<String>,
    all: bool,
    admit: bool,
    reason: &str,
) -> Result<DecideWaitingResponse, CallError> {
    let request = DecideWaitingRequest {
        meeting_id: meeting_id.to_owned(),
        ids,
        all,
        admit,
        reason: reason.to_owned(),
    };
    unary(
        "/videocall.control.v1.HostService/DecideWaiting",
        grpc_web::request_body(&request),
    )
    .await
}

/// One call, as the signed-in person when there is one. A session the server no longer
/// knows (expired, revoked, signed out elsewhere) is forgotten and the call made again
/// without it.
async fn unary<M: prost::Message + Default>(path: &str, body: Vec<u8>) -> Result<M, CallError> {
    match account::authorization() {
        Some(authorization) => match unary_as(path, &body, Some(&authorization)).await {
            Err(CallError::Status { code, .. }) if code == grpc_web::code::UNAUTHENTICATED => {
                account::forget();
                unary_as(path, &body, None).await
            }
            other => other,
        },
        None => unary_as(path, &body, None).await,
    }
}

async fn unary_as<M: prost::Message + Default>(
    path: &str,
    body: &[u8],
    authorization: Option<&str>,
) -> Result<M, CallError> {
    let unreachable = |e: wasm_bindgen::JsValue| CallError::Unreachable(js::error_text(&e));
    let headers = Headers::new().map_err(unreachable)?;
    for (name, value) in [
        ("content-type", grpc_web::CONTENT_TYPE),
        ("accept", grpc_web::CONTENT_TYPE),
        ("x-grpc-web", "1"),
    ] {
        headers.set(name, value).map_err(unreachable)?;
    }
    if let Some(authorization) = authorization {
        headers
            .set("authorization", authorization)
            .map_err(unreachable)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    let body = Uint8Array::from(body);
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
