//! Join tokens: Ed25519-signed JWTs (`alg: EdDSA`) that admit one participant to one meeting.
//!
//! The issuer (development issuer now, control plane later) signs with a private key
//! named by a key id (`kid`); relays verify with the matching public key. Several
//! keys may be trusted at once so keys can rotate.
//!
//! The same keys sign end-to-end encryption credentials ([`E2eeCredential`]): who holds which
//! MLS signing key in a meeting, for the other members to check.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

mod credential;
pub use credential::{E2eeCredential, CREDENTIAL_TYPE};

/// What a participant may do in the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// May send media.
    pub publish: bool,
    /// May receive media.
    pub subscribe: bool,
    /// May moderate (end the meeting, remove people): a host. Kept for tokens without a
    /// `role`; [`Grants::role`] is what counts.
    #[serde(default)]
    pub admin: bool,
    /// The participant's role in the meeting (absent: host with `admin`, else participant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            publish: true,
            subscribe: true,
            admin: false,
            role: None,
        }
    }
}

impl Grants {
    /// The role these grants give: `role` when set, else host with `admin`, else participant.
    pub fn role(&self) -> Role {
        self.role.unwrap_or(if self.admin {
            Role::Host
        } else {
            Role::Participant
        })
    }
}

/// What a participant may do in a meeting, most first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Moderates, changes roles, ends the meeting for all.
    Host,
    /// Moderates (mute, remove, lock, lower hands) but changes no roles and ends nothing.
    Cohost,
    /// Takes part.
    Participant,
    /// Takes part without an account; never promoted.
    Guest,
}

impl Role {
    /// Whether the role moderates (host or co-host).
    pub fn moderates(self) -> bool {
        matches!(self, Role::Host | Role::Cohost)
    }
}

/// The claims of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User identity.
    pub sub: String,
    /// Name shown to the others.
    pub name: String,
    /// The one meeting this token admits to.
    pub meeting: String,
    /// Permissions.
    pub grants: Grants,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Expiry (seconds since the Unix epoch).
    pub exp: u64,
    /// The meeting's participant limit, enforced by the relay too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<u32>,
    /// The meeting is end-to-end encrypted: the relay forwards only sealed media and chat
    /// from this participant, and carries its handshake messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub e2ee: bool,
}

impl Claims {
    /// Claims for `user` in `meeting`, valid for `ttl` from now.
    pub fn new(
        user: &str,
        display_name: &str,
        meeting: &str,
        grants: Grants,
        ttl: Duration,
    ) -> Self {
        let now = unix_now();
        Claims {
            sub: user.to_owned(),
            name: display_name.to_owned(),
            meeting: meeting.to_owned(),
            grants,
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
            max_participants: None,
            e2ee: false,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was presented.
    #[error("no join token was presented")]
    Missing,
    /// The token is not a well-formed EdDSA JWT with our claims.
    #[error("join token is malformed: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("join token signature is invalid")]
    BadSignature,
    /// The token names a key this verifier does not trust.
    #[error("join token is signed with unknown key id {0:?}")]
    UnknownKey(String),
    /// The token has expired.
    #[error("join token has expired")]
    Expired,
    /// The token admits to another meeting.
    #[error("join token is for meeting {token_meeting:?}, not {requested:?}")]
    WrongMeeting {
        /// Meeting in the token.
        token_meeting: String,
        /// Meeting asked for.
        requested: String,
    },
    /// A key could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// Signs join tokens with one Ed25519 private key.
pub struct TokenIssuer {
    kid: String,
    encoding_key: EncodingKey,
    public_key: [u8; 32],
}

impl TokenIssuer {
    /// An issuer with a freshly generated key.
    pub fn generate(kid: &str) -> Self {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_signing_key(kid, &signing).unwrap_or_else(|_| unreachable!("fresh key encodes"))
    }

    /// An issuer from a 32-byte Ed25519 seed (the private key), base64url without padding.
    pub fn from_seed_base64(kid: &str, seed: &str) -> Result<Self, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(seed.trim())
            .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| TokenError::InvalidKey("an Ed25519 seed is 32 bytes".into()))?;
        Self::from_signing_key(kid, &SigningKey::from_bytes(&seed))
    }

    fn from_signing_key(kid: &str, signing: &SigningKey) -> Result<Self, TokenError> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        Ok(TokenIssuer {
            kid: kid.to_owned(),
            encoding_key: EncodingKey::from_ed_der(der.as_bytes()),
            public_key: signing.verifying_key().to_bytes(),
        })
    }

    /// Key id written into every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, base64url without padding, as relays are configured with it.
    pub fn public_key_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_key)
    }

    /// Signs the claims of an end-to-end encryption credential (a token of its own type, never
    /// taken for a join token).
    pub fn issue_credential(&self, credential: &E2eeCredential) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(CREDENTIAL_TYPE.to_owned());
        jsonwebtoken::encode(&header, credential, &self.encoding_key)
            .map_err(|e| TokenError::Malformed(e.to_string()))
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key)
            .map_err(|e| TokenError::Malformed(e.to_string()))
    }
}

/// Generates a new Ed25519 seed, base64url without padding (for storing an issuer key).
pub fn generate_seed_base64() -> String {
    URL_SAFE_NO_PAD.encode(SigningKey::generate(&mut rand::rngs::OsRng).to_bytes())
}

/// Verifies join tokens against a set of trusted public keys, by `kid`.
#[derive(Clone, Default)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    leeway_secs: u64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier that trusts no key yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `public_key` (32 bytes, base64url without padding) under `kid`.
    pub fn add_key_base64(&mut self, kid: &str, public_key: &str) -> Result<(), TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(public_key.trim())
            .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| TokenError::InvalidKey("an Ed25519 public key is 32 bytes".into()))?;
        ed25519_dalek::VerifyingKey::from_bytes(&raw)
            .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        self.keys
            .insert(kid.to_owned(), DecodingKey::from_ed_der(&raw));
        Ok(())
    }

    /// Parses `kid=publickey` as given on a command line.
    pub fn add_key_spec(&mut self, spec: &str) -> Result<(), TokenError> {
        let (kid, key) = spec.split_once('=').ok_or_else(|| {
            TokenError::InvalidKey(format!("expected kid=publickey, got {spec:?}"))
        })?;
        self.add_key_base64(kid, key)
    }

    /// Number of trusted keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token` and that it admits to `meeting`.
    pub fn verify(&self, token: &str, meeting: &str) -> Result<Claims, TokenError> {
        let claims: Claims = self.decode(token, None)?;
        if claims.meeting != meeting {
            return Err(TokenError::WrongMeeting {
                token_meeting: claims.meeting,
                requested: meeting.to_owned(),
            });
        }
        Ok(claims)
    }

    /// Checks the signature, algorithm, key id, expiry and type (`typ`: `None` for join tokens,
    /// which must not carry another type) of `token` and decodes its claims.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: Option<&str>,
    ) -> Result<T, TokenError> {
        if token.trim().is_empty() {
            return Err(TokenError::Missing);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed(format!(
                "algorithm {:?} is not accepted, only EdDSA",
                header.alg
            )));
        }
        let typed = header.typ.as_deref().filter(|t| *t != "JWT");
        if typed != typ {
            return Err(TokenError::Malformed(format!(
                "a token of type {} where {} was expected",
                typed.unwrap_or("join token"),
                typ.unwrap_or("a join token")
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Malformed("token header has no kid".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = self.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<T>(token, key, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            })?;
        Ok(data.claims)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An issuer and a verifier that trusts it (shared with the credential tests).
    pub(crate) fn setup() -> (TokenIssuer, TokenVerifier) {
        let issuer = TokenIssuer::generate("k1");
        let mut verifier = TokenVerifier::new();
        verifier
            .add_key_base64("k1", &issuer.public_key_base64())
            .expect("key");
        (issuer, verifier)
    }

    fn claims(meeting: &str, ttl: Duration) -> Claims {
        Claims::new("alice", "Alice", meeting, Grants::default(), ttl)
    }

    #[test]
    fn valid_token_verifies() {
        let (issuer, verifier) = setup();
        let token = issuer
            .issue(&claims("demo", Duration::from_secs(60)))
            .expect("sign");
        let got = verifier.verify(&token, "demo").expect("valid");
        assert_eq!(got.sub, "alice");
        assert!(got.grants.publish && got.grants.subscribe);
    }

    #[test]
    fn the_role_travels_in_the_token_and_older_tokens_get_one_from_admin() {
        let (issuer, verifier) = setup();
        let mut cohost = claims("demo", Duration::from_secs(60));
        cohost.grants.role = Some(Role::Cohost);
        let token = issuer.issue(&cohost).expect("sign");
        let got = verifier.verify(&token, "demo").expect("valid");
        assert_eq!(got.grants.role(), Role::Cohost);
        assert!(got.grants.role().moderates());
        let old: Grants = serde_json::from_str(r#"{"publish":true,"subscribe":true,"admin":true}"#)
            .expect("json");
        assert_eq!(old.role(), Role::Host);
        let plain: Grants =
            serde_json::from_str(r#"{"publish":true,"subscribe":true}"#).expect("json");
        assert_eq!(plain.role(), Role::Participant);
        assert!(!Role::Guest.moderates() && Role::Host < Role::Guest);
        let guest = serde_json::to_string(&Grants {
            role: Some(Role::Guest),
            ..Grants::default()
        })
        .expect("json");
        assert!(guest.contains(r#""role":"guest""#), "{guest}");
    }

    #[test]
    fn every_bad_token_is_refused_with_its_reason() {
        let (issuer, verifier) = setup();
        let good = issuer
            .issue(&claims("demo", Duration::from_secs(60)))
            .expect("sign");
        assert_eq!(verifier.verify("", "demo"), Err(TokenError::Missing));
        assert!(matches!(
            verifier.verify("abc", "demo"),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verifier.verify(&good, "other"),
            Err(TokenError::WrongMeeting { .. })
        ));

        let mut expired = claims("demo", Duration::from_secs(0));
        expired.exp = expired.iat - 120;
        let expired = issuer.issue(&expired).expect("sign");
        assert_eq!(verifier.verify(&expired, "demo"), Err(TokenError::Expired));

        // Same kid, different key: a forgery.
        let forger = TokenIssuer::generate("k1");
        let forged = forger
            .issue(&claims("demo", Duration::from_secs(60)))
            .expect("sign");
        assert_eq!(
            verifier.verify(&forged, "demo"),
            Err(TokenError::BadSignature)
        );

        let stranger = TokenIssuer::generate("k2");
        let unknown = stranger
            .issue(&claims("demo", Duration::from_secs(60)))
            .expect("sign");
        assert_eq!(
            verifier.verify(&unknown, "demo"),
            Err(TokenError::UnknownKey("k2".into()))
        );

        // Tampered payload with the original signature.
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"mallory","name":"M","meeting":"demo","grants":{"publish":true,"subscribe":true,"admin":true},"iat":1,"exp":99999999999}"#,
        );
        parts[1] = &evil;
        assert_eq!(
            verifier.verify(&parts.join("."), "demo"),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn issuer_round_trips_through_its_seed() {
        let seed = generate_seed_base64();
        let a = TokenIssuer::from_seed_base64("k", &seed).expect("seed");
        let b = TokenIssuer::from_seed_base64("k", &seed).expect("seed");
        assert_eq!(a.public_key_base64(), b.public_key_base64());
        assert!(TokenIssuer::from_seed_base64("k", "short").is_err());
    }
}
