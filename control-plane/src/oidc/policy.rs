//! Who a provider's verified claims make a person here, and who is turned away: allowed email
//! domains and groups, groups that make admins, the username a new person gets, where the
//! browser may be sent back to. Claims in, decisions out; no I/O.

use crate::auth::CallerRole;

/// Longest username made from a provider's claims (leaves room for a `-N` suffix).
const MAX_USERNAME_BASE: usize = 40;

/// What a provider says about the person, after its ID token was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's stable id for the person (`sub`).
    pub subject: String,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified` (absent counts as not verified).
    pub email_verified: bool,
    /// `name`.
    pub name: Option<String>,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `picture`.
    pub picture: Option<String>,
    /// `groups`.
    pub groups: Vec<String>,
}

/// The rules one provider's sign-ins pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Only people whose verified email is in one of these domains (lower case); empty: any.
    pub allowed_domains: Vec<String>,
    /// Only members of one of these groups; empty: any.
    pub allowed_groups: Vec<String>,
    /// Members of one of these groups are admins; the others are users. When it is empty,
    /// a new person is a user and a returning one keeps the role they have.
    pub admin_groups: Vec<String>,
}

/// Why a verified person is turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Domains are checked and the provider gave no verified email.
    #[error("the provider did not give a verified email address, and this server admits only addresses in {allowed}")]
    NoVerifiedEmail {
        /// The allowed domains, for the message.
        allowed: String,
    },
    /// The email's domain is not allowed.
    #[error("{email} is not in a domain this server admits ({allowed})")]
    DomainNotAllowed {
        /// The person's address.
        email: String,
        /// The allowed domains.
        allowed: String,
    },
    /// Not in any allowed group.
    #[error("you are not in a group this server admits ({allowed})")]
    GroupNotAllowed {
        /// The allowed groups.
        allowed: String,
    },
}

/// A person the policy lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Their role, when the policy decides it (admin groups are configured).
    pub role: Option<CallerRole>,
    /// The name others see.
    pub display_name: String,
    /// Their picture (an `https:` or `http:` URL), or empty.
    pub picture_url: String,
    /// The username a new person gets (a suffix is added when it is taken).
    pub username_base: String,
}

/// Applies `policy` to `claims`.
pub fn decide(policy: &SignInPolicy, claims: &VerifiedClaims) -> Result<Admitted, Refusal> {
    if !policy.allowed_domains.is_empty() {
        let allowed = policy.allowed_domains.join(", ");
        let email = match (&claims.email, claims.email_verified) {
            (Some(email), true) => email,
            _ => return Err(Refusal::NoVerifiedEmail { allowed }),
        };
        let domain = email
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_ascii_lowercase())
            .unwrap_or_default();
        if !policy
            .allowed_domains
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&domain))
        {
            return Err(Refusal::DomainNotAllowed {
                email: email.clone(),
                allowed,
            });
        }
    }
    let member_of = |groups: &[String]| groups.iter().any(|group| claims.groups.contains(group));
    if !policy.allowed_groups.is_empty() && !member_of(&policy.allowed_groups) {
        return Err(Refusal::GroupNotAllowed {
            allowed: policy.allowed_groups.join(", "),
        });
    }
    let role = if policy.admin_groups.is_empty() {
        None
    } else if member_of(&policy.admin_groups) {
        Some(CallerRole::Admin)
    } else {
        Some(CallerRole::User)
    };
    let username_base = username_base(claims);
    Ok(Admitted {
        role,
        display_name: display_name(claims, &username_base),
        picture_url: claims
            .picture
            .as_deref()
            .filter(|url| {
                (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= 2048
            })
            .unwrap_or_default()
            .to_owned(),
        username_base,
    })
}

/// The name shown to others: `name`, else the username; bounded, no control characters.
fn display_name(claims: &VerifiedClaims, username: &str) -> String {
    let name: String = claims
        .name
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let name = name.trim();
    if name.is_empty() {
        username.to_owned()
    } else {
        name.to_owned()
    }
}

/// A username from `preferred_username`, the email's local part or the name: letters, digits,
/// `-`, `_` and `.` only; `user` when nothing is left.
pub fn username_base(claims: &VerifiedClaims) -> String {
    let email_local = claims
        .email
        .as_deref()
        .and_then(|email| email.split_once('@').map(|(local, _)| local));
    let candidates = [
        claims.preferred_username.as_deref(),
        email_local,
        claims.name.as_deref(),
    ];
    for candidate in candidates.into_iter().flatten() {
        let cleaned = clean_username(candidate);
        if !cleaned.is_empty() {
            return cleaned;
        }
    }
    "user".into()
}

fn clean_username(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else if c.is_whitespace() || c == '@' {
                '.'
            } else {
                '\0'
            }
        })
        .filter(|c| *c != '\0')
        .collect();
    let trimmed = mapped.trim_matches(|c| c == '.' || c == '-' || c == '_');
    trimmed.chars().take(MAX_USERNAME_BASE).collect::<String>()
}

/// The `n`th username to try for `base` (`base`, `base-2`, `base-3`, …).
pub fn username_candidate(base: &str, n: u32) -> String {
    if n <= 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

/// Where the browser goes after signing in: a path on this server (`/…`, not `//…` or
/// `/\…`, no control characters), else the site's root.
pub fn safe_return_to(requested: Option<&str>) -> String {
    match requested {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && path.len() <= 1024
                && !path.chars().any(|c| c.is_control() || c == '#') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> VerifiedClaims {
        VerifiedClaims {
            issuer: "http://127.0.0.1:1".into(),
            subject: "alice-sub".into(),
            email: Some("Alice.Smith@Example.org".into()),
            email_verified: true,
            name: Some("Alice Smith".into()),
            preferred_username: None,
            picture: Some("https://127.0.0.1/alice.png".into()),
            groups: vec!["staff".into()],
        }
    }

    #[test]
    fn any_verified_person_is_a_user_when_nothing_is_restricted() {
        let admitted = decide(&SignInPolicy::default(), &alice()).unwrap();
        assert_eq!(admitted.role, None);
        assert_eq!(admitted.display_name, "Alice Smith");
        assert_eq!(admitted.username_base, "alice.smith");
        assert_eq!(admitted.picture_url, "https://127.0.0.1/alice.png");
    }

    #[test]
    fn domains_need_a_verified_email_in_one_of_them() {
        let policy = SignInPolicy {
            allowed_domains: vec!["example.org".into()],
            ..Default::default()
        };
        assert!(decide(&policy, &alice()).is_ok());
        let unverified = VerifiedClaims {
            email_verified: false,
            ..alice()
        };
        assert!(matches!(
            decide(&policy, &unverified),
            Err(Refusal::NoVerifiedEmail { .. })
        ));
        let elsewhere = VerifiedClaims {
            email: Some("mallory@example.org.evil.test".into()),
            ..alice()
        };
        let refusal = decide(&policy, &elsewhere).unwrap_err();
        assert!(matches!(refusal, Refusal::DomainNotAllowed { .. }));
        assert!(refusal.to_string().contains("example.org.evil.test"));
        let no_email = VerifiedClaims {
            email: None,
            ..alice()
        };
        assert!(decide(&policy, &no_email).is_err());
    }

    #[test]
    fn groups_admit_and_make_admins() {
        let policy = SignInPolicy {
            allowed_groups: vec!["staff".into(), "guests".into()],
            admin_groups: vec!["it".into()],
            ..Default::default()
        };
        assert_eq!(
            decide(&policy, &alice()).unwrap().role,
            Some(CallerRole::User)
        );
        let admin = VerifiedClaims {
            groups: vec!["staff".into(), "it".into()],
            ..alice()
        };
        assert_eq!(
            decide(&policy, &admin).unwrap().role,
            Some(CallerRole::Admin)
        );
        let outsider = VerifiedClaims {
            groups: vec!["contractors".into()],
            ..alice()
        };
        assert!(matches!(
            decide(&policy, &outsider),
            Err(Refusal::GroupNotAllowed { .. })
        ));
    }

    #[test]
    fn usernames_are_made_safe_and_never_empty() {
        let preferred = VerifiedClaims {
            preferred_username: Some("Bob Jones!".into()),
            ..alice()
        };
        assert_eq!(username_base(&preferred), "bob.jones");
        let nothing_usable = VerifiedClaims {
            preferred_username: Some("日本".into()),
            email: None,
            name: Some("…".into()),
            ..alice()
        };
        assert_eq!(username_base(&nothing_usable), "user");
        let long = VerifiedClaims {
            preferred_username: Some("x".repeat(300)),
            ..alice()
        };
        assert_eq!(username_base(&long).len(), MAX_USERNAME_BASE);
        for base in ["alice", "user", &username_base(&long)] {
            for n in 1..4 {
                videocall_protocol::ids::validate_user(&username_candidate(base, n)).unwrap();
            }
        }
        assert_eq!(username_candidate("alice", 3), "alice-3");
    }

    #[test]
    fn pictures_must_be_web_addresses_and_names_are_bounded() {
        let odd = VerifiedClaims {
            picture: Some("javascript:alert(1)".into()),
            name: Some(format!("{}\u{7}", "n".repeat(100))),
            ..alice()
        };
        let admitted = decide(&SignInPolicy::default(), &odd).unwrap();
        assert_eq!(admitted.picture_url, "");
        assert_eq!(admitted.display_name, "n".repeat(64));
    }

    #[test]
    fn only_paths_on_this_server_are_returned_to() {
        assert_eq!(
            safe_return_to(Some("/meeting/alice/standup")),
            "/meeting/alice/standup"
        );
        for bad in [
            "https://evil.test/",
            "//evil.test/",
            "/\\evil.test",
            "meeting",
            "/a\nb",
            "/a#b",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
