//! Subjects: dot-separated tokens, as NATS has them. Patterns may use `*` for one token and
//! `>` (last) for one or more. Pure.

use crate::BusError;

/// Checks a subject to publish on: non-empty tokens, no wildcards, no whitespace.
pub fn check_subject(subject: &str) -> Result<(), BusError> {
    check(subject, false)
}

/// Checks a pattern to subscribe to: like a subject, with `*` tokens and a final `>`.
pub fn check_pattern(pattern: &str) -> Result<(), BusError> {
    check(pattern, true)
}

fn check(subject: &str, wildcards: bool) -> Result<(), BusError> {
    let bad = |reason| {
        Err(BusError::Subject {
            subject: subject.to_owned(),
            reason,
        })
    };
    if subject.is_empty() {
        return bad("empty");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return bad("empty token");
        }
        if token.chars().any(|c| c.is_whitespace()) {
            return bad("whitespace");
        }
        let wild = *token == "*" || *token == ">";
        if !wild && (token.contains('*') || token.contains('>')) {
            return bad("a wildcard must be a whole token");
        }
        if wild && !wildcards {
            return bad("wildcards are for subscriptions only");
        }
        if *token == ">" && i + 1 != tokens.len() {
            return bad("`>` must be the last token");
        }
    }
    Ok(())
}

/// Whether `subject` matches `pattern`.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut want = pattern.split('.');
    let mut have = subject.split('.');
    loop {
        match (want.next(), have.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(w), Some(h)) if w == h => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_token_or_the_rest() {
        assert!(matches("vc.m.*.media", "vc.m.abc.media"));
        assert!(!matches("vc.m.*.media", "vc.m.abc.def.media"));
        assert!(matches("vc.m.abc.>", "vc.m.abc.media.7"));
        assert!(!matches("vc.m.abc.>", "vc.m.abc"));
        assert!(matches("vc.m.abc", "vc.m.abc"));
        assert!(!matches("vc.m.abc", "vc.m.abcd"));
        assert!(!matches("vc.m.abc", "vc.m"));
    }

    #[test]
    fn bad_subjects_say_why() {
        assert!(check_subject("vc.meeting.a-b_c").is_ok());
        assert!(check_pattern("vc.*.x.>").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        for bad in ["a.>.b", "a.b*", "a.>x"] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
