//! Rules for identifiers that travel in URLs and tokens.

/// Longest meeting id.
pub const MAX_MEETING_ID_LEN: usize = 128;
/// Longest user name.
pub const MAX_USER_LEN: usize = 64;

/// Meeting ids: 1 to 128 letters, digits, `-`, `_` or `.` (safe in a URL path).
pub fn validate_meeting_id(id: &str) -> Result<(), String> {
    validate(id, MAX_MEETING_ID_LEN, "meeting id")
}

/// User names: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn validate_user(user: &str) -> Result<(), String> {
    validate(user, MAX_USER_LEN, "user name")
}

fn validate(s: &str, max: usize, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s != "."
        && s != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 1 to {max} characters of letters, digits, '-', '_' or '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_ids_and_refuses_the_rest() {
        assert!(validate_meeting_id("demo").is_ok());
        assert!(validate_meeting_id("team-42_x.y").is_ok());
        for bad in ["", "..", "a/b", "sp ace", "é", &"x".repeat(129)] {
            assert!(validate_meeting_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_user(&"u".repeat(65)).is_err());
    }
}
