//! Sign-in through an OpenID Connect provider: the provider (`provider`, with `openidconnect`),
//! who its people are here (`policy`, pure), and their users and sessions (`accounts`).

pub mod accounts;
pub mod policy;
pub mod provider;

pub use accounts::{sign_in, SignedIn};
pub use policy::{Refusal, SignInPolicy, VerifiedClaims};
pub use provider::{OidcProvider, ProviderSettings, Started};

use crate::store::StoreError;

/// Boxed errors of the HTTP requests to a provider (their types name `reqwest`'s internals).
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// A setting is not usable.
    #[error("the OpenID Connect {what} is not a valid URL: {value}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[source] ProviderError),
    /// The provider's discovery document could not be read.
    #[error(
        "the sign-in provider {issuer} could not be reached or described itself wrongly: {source}"
    )]
    Discovery {
        /// Issuer URL.
        issuer: String,
        /// What failed.
        #[source]
        source: ProviderError,
    },
    /// The browser came back with a state this server did not send, sent already, or long ago.
    #[error("this sign-in is unknown or has expired; start it again")]
    UnknownState,
    /// The browser that came back is not the one that started the sign-in.
    #[error("this sign-in was started in another browser; start it again here")]
    OtherBrowser,
    /// The answer came from a provider other than the one the sign-in went to.
    #[error("the answer came from {0}, not the provider this sign-in went to")]
    OtherIssuer(String),
    /// The provider answered the browser with an error.
    #[error("the sign-in provider said {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Provider {
        /// OAuth error code (`access_denied`, …).
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// The provider would not exchange the code (expired, used, or not its own).
    #[error("the sign-in provider did not accept the code (expired or used already?): {0}")]
    Exchange(#[source] ProviderError),
    /// The provider's answer had no ID token.
    #[error("the sign-in provider sent no ID token")]
    NoIdToken,
    /// The ID token is not a JWT.
    #[error("not an ID token: {0}")]
    MalformedIdToken(#[source] serde_json::Error),
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce).
    #[error("the ID token was refused: {0}")]
    IdToken(#[source] openidconnect::ClaimsVerificationError),
    /// The person is not let in here.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// No free username was found for a new person.
    #[error("no free username for {0}")]
    NoUsername(String),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl SignInError {
    /// The gRPC status for it.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            SignInError::Refused(_) => tonic::Status::permission_denied(self.to_string()),
            SignInError::Config { .. } | SignInError::Http(_) | SignInError::Discovery { .. } => {
                tonic::Status::unavailable(self.to_string())
            }
            SignInError::NoUsername(_) | SignInError::Store(_) => {
                tonic::Status::internal(self.to_string())
            }
            _ => tonic::Status::unauthenticated(self.to_string()),
        }
    }

    /// The HTTP status for it.
    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            SignInError::Refused(_) => StatusCode::FORBIDDEN,
            SignInError::Config { .. } | SignInError::Http(_) | SignInError::Discovery { .. } => {
                StatusCode::BAD_GATEWAY
            }
            SignInError::NoUsername(_) | SignInError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
