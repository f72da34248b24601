//! A provider's verified person becomes a user here with a login session: the policy decides
//! whether and as what, the first sign-in makes the user (linked by issuer and subject), later
//! ones bring their name, picture and role up to date.

use crate::auth::{open_session, NO_PASSWORD};
use crate::store::{now_ms, Linked, Store, StoreError, UserRecord};

use super::policy::{decide, username_candidate, SignInPolicy, VerifiedClaims};
use super::SignInError;

/// Usernames tried for a new person (`alice`, `alice-2`, … `alice-50`).
const MAX_USERNAME_TRIES: u32 = 50;

/// A person signed in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session token (what `Login` returns).
    pub session_token: String,
    /// When it expires (ms).
    pub expires_at_ms: i64,
    /// The user.
    pub user: UserRecord,
    /// Whether the user was made now.
    pub linked: Linked,
}

/// Signs the person `claims` name in under `policy`, with a session of `session_ttl_secs`.
pub async fn sign_in(
    store: &Store,
    policy: &SignInPolicy,
    claims: &VerifiedClaims,
    session_ttl_secs: u64,
) -> Result<SignedIn, SignInError> {
    let admitted = decide(policy, claims)?;
    let email = claims.email.clone().unwrap_or_default();
    let now = now_ms();
    let role = admitted.role.map(|role| role.as_str());
    let (username, linked) = match store.identity_user(&claims.issuer, &claims.subject).await? {
        Some(username) => {
            store
                .update_signed_in_user(
                    &username,
                    &admitted.display_name,
                    &admitted.picture_url,
                    role,
                    &claims.issuer,
                    &claims.subject,
                    &email,
                    now,
                )
                .await?;
            (username, Linked::Updated)
        }
        None => {
            let mut made = None;
            for n in 1..=MAX_USERNAME_TRIES {
                let user = UserRecord {
                    username: username_candidate(&admitted.username_base, n),
                    display_name: admitted.display_name.clone(),
                    password_hash: NO_PASSWORD.into(),
                    role: role.unwrap_or("user").into(),
                    created_at_ms: now,
                    picture_url: admitted.picture_url.clone(),
                };
                match store
                    .create_linked_user(&user, &claims.issuer, &claims.subject, &email)
                    .await
                {
                    Ok(()) => {
                        made = Some((user.username, Linked::Created));
                        break;
                    }
                    Err(StoreError::AlreadyExists(what)) if what.starts_with("user ") => continue,
                    // Linked meanwhile by a sign-in beside this one: that user it is.
                    Err(StoreError::AlreadyExists(_)) => {
                        if let Some(username) =
                            store.identity_user(&claims.issuer, &claims.subject).await?
                        {
                            made = Some((username, Linked::Updated));
                        }
                        break;
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            made.ok_or_else(|| SignInError::NoUsername(admitted.username_base.clone()))?
        }
    };
    let user = store
        .user(&username)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {username}")))?;
    let (session_token, expires_at_ms) = open_session(store, &username, session_ttl_secs).await?;
    tracing::info!(
        user = %username,
        issuer = %claims.issuer,
        new = linked == Linked::Created,
        role = %user.role,
        "signed in through OpenID Connect"
    );
    Ok(SignedIn {
        session_token,
        expires_at_ms,
        user,
        linked,
    })
}
