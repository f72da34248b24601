//! The words a relay closes a connection with (the WebTransport session's or WebSocket close
//! frame's reason): `ERROR_CODE_<NAME>: <message>` when an error closed it. Clients read the
//! code back: a connection closed because a host removed the person, or the meeting ended, is
//! not one to reconnect, even when the error message before the close was lost with it.

use crate::wire::ErrorCode;

/// The close reason for `code` and `message`.
pub fn format(code: ErrorCode, message: &str) -> String {
    format!("{}: {message}", code.as_str_name())
}

/// The error code and message of a close reason made by [`format`]; `None` for any other
/// reason (a plain leave, a transport's own words).
pub fn parse(reason: &str) -> Option<(ErrorCode, &str)> {
    let (name, message) = reason.split_once(": ")?;
    Some((ErrorCode::from_str_name(name)?, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_reason_reads_back() {
        let text = format(ErrorCode::Forbidden, "please: take this elsewhere");
        assert_eq!(text, "ERROR_CODE_FORBIDDEN: please: take this elsewhere");
        assert_eq!(
            parse(&text),
            Some((ErrorCode::Forbidden, "please: take this elsewhere"))
        );
    }

    #[test]
    fn other_reasons_are_not_errors() {
        assert_eq!(parse("LEAVE_REASON_LEFT"), None);
        assert_eq!(parse("connection closed (code 1006)"), None);
        assert_eq!(parse("ERROR_CODE_NOT_A_CODE: x"), None);
    }
}
