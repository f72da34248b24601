//! Field validation: every RPC checks its fields first and answers INVALID_ARGUMENT naming
//! the field, so bad input never reaches the database.

use tonic::Status;

/// Longest display name.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest meeting title.
pub const MAX_TITLE: usize = 200;
/// Shortest password.
pub const MIN_PASSWORD: usize = 8;
/// Longest password (argon2 input stays small).
pub const MAX_PASSWORD: usize = 256;
/// Longest allow-list.
pub const MAX_ALLOWED_USERS: usize = 1000;
/// Most waiters one DecideWaiting names.
pub const MAX_WAITER_IDS: usize = 1000;
/// Longest reason a host gives (turning someone away, removing them).
pub const MAX_REASON: usize = 200;
/// Most host actions one heartbeat reports.
pub const MAX_REPORTED_HOST_ACTIONS: usize = 1000;
/// Most commands one heartbeat reports done.
pub const MAX_DONE_COMMANDS: usize = 1000;
/// Most relays a join may ask placement to avoid.
pub const MAX_AVOID_RELAYS: usize = videocall_protocol::avoid::MAX_AVOIDED_RELAYS;

/// INVALID_ARGUMENT for `field`.
pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

/// An end-to-end encryption signing key: none, or an Ed25519 public key.
pub fn e2ee_signature_key(field: &str, key: &[u8]) -> Result<(), Status> {
    if !key.is_empty() && key.len() != 32 {
        return Err(invalid(field, "an Ed25519 public key is 32 bytes"));
    }
    Ok(())
}

/// A username (also the `sub` of tokens).
pub fn username(field: &str, value: &str) -> Result<(), Status> {
    videocall_protocol::ids::validate_user(value).map_err(|e| invalid(field, e))
}

/// A meeting id.
pub fn meeting_id(field: &str, value: &str) -> Result<(), Status> {
    videocall_protocol::ids::validate_meeting_id(value).map_err(|e| invalid(field, e))
}

/// A password.
pub fn password(field: &str, value: &str) -> Result<(), Status> {
    let chars = value.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return Err(invalid(
            field,
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// Free text shown to people: bounded, no control characters.
pub fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), Status> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A display name.
pub fn display_name(field: &str, value: &str, required: bool) -> Result<(), Status> {
    text(field, value, MAX_DISPLAY_NAME, required)
}

/// An id that is only looked up (API key id, relay id): bounded printable ASCII.
pub fn lookup_id(field: &str, value: &str) -> Result<(), Status> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1 to 128 letters, digits, '-', '_' or '.'",
        ))
    }
}

/// Relays a client asks to be kept off: at most [`MAX_AVOID_RELAYS`] relay ids.
pub fn avoid_relay_ids(field: &str, ids: &[String]) -> Result<(), Status> {
    if ids.len() > MAX_AVOID_RELAYS {
        return Err(invalid(field, format!("at most {MAX_AVOID_RELAYS} relays")));
    }
    for id in ids {
        lookup_id(field, id)?;
    }
    Ok(())
}

/// A waiting-room ticket as JoinMeeting hands them out (random URL-safe base64).
pub fn ticket(field: &str, value: &str) -> Result<(), Status> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "not a ticket from JoinMeeting"))
    }
}

/// Ids of waiters (WaitingPerson.id): at most [`MAX_WAITER_IDS`].
pub fn waiter_ids(field: &str, ids: &[String]) -> Result<(), Status> {
    if ids.len() > MAX_WAITER_IDS {
        return Err(invalid(field, format!("at most {MAX_WAITER_IDS} ids")));
    }
    for (i, id) in ids.iter().enumerate() {
        lookup_id(&format!("{field}[{i}]"), id)?;
    }
    Ok(())
}

/// An absolute URL with one of `schemes`.
pub fn url(field: &str, value: &str, schemes: &[&str], required: bool) -> Result<(), Status> {
    if value.is_empty() && !required {
        return Ok(());
    }
    let scheme_ok = schemes.iter().any(|s| {
        value
            .strip_prefix(s)
            .is_some_and(|rest| rest.starts_with("://"))
    });
    if !scheme_ok || value.len() > 2048 || value.chars().any(|c| c.is_control() || c == ' ') {
        return Err(invalid(
            field,
            format!("must be a {} URL", schemes.join(" or ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        let e = username("username", "bad name'; DROP TABLE users;--").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("username:"), "{}", e.message());
        assert!(password("password", "short").is_err());
        assert!(text("title", "a\u{7}b", 10, false).is_err());
        assert!(text("title", " ", 10, true).is_err());
        assert!(url(
            "endpoints.websocket_url",
            "ws://127.0.0.1:1/ws",
            &["ws", "wss"],
            true
        )
        .is_ok());
        assert!(url("endpoints.websocket_url", "http://x", &["ws", "wss"], true).is_err());
    }
}
