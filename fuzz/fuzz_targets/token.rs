//! The join-token parser and verifier (`TokenVerifier::verify`): any string is refused with
//! a clear error unless it is a token the trusted key signed; a real token with any part
//! replaced (header, claims, signature) is never accepted.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use videocall_token::{Claims, Grants, TokenIssuer, TokenVerifier};

struct Keys {
    verifier: TokenVerifier,
    token: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let issuer = TokenIssuer::generate("k1");
        let mut verifier = TokenVerifier::new();
        verifier
            .add_key_base64("k1", &issuer.public_key_base64())
            .expect("own key");
        let claims = Claims::new(
            "ada",
            "Ada",
            "m",
            Grants::default(),
            Duration::from_secs(1 << 30),
        );
        let token = issuer.issue(&claims).expect("token");
        Keys { verifier, token }
    })
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any string as a token.
    Raw(String, bool),
    /// The real token with one of its three parts replaced: by these bytes (base64url
    /// encoded) or by this JSON text (encoded).
    Replaced {
        part: u8,
        bytes: Vec<u8>,
        json: Option<String>,
    },
}

fuzz_target!(|input: Input| {
    let keys = keys();
    match input {
        Input::Raw(token, right_meeting) => {
            let meeting = if right_meeting { "m" } else { "other" };
            if keys.verifier.verify(&token, meeting).is_ok() {
                assert_eq!(
                    token.trim(),
                    keys.token,
                    "only the signed token is accepted"
                );
            }
        }
        Input::Replaced { part, bytes, json } => {
            let mut parts: Vec<String> = keys.token.split('.').map(str::to_owned).collect();
            let part = usize::from(part) % parts.len();
            let encoded = match json {
                Some(text) => URL_SAFE_NO_PAD.encode(text.as_bytes()),
                None => URL_SAFE_NO_PAD.encode(&bytes),
            };
            if encoded == parts[part] {
                return;
            }
            parts[part] = encoded;
            let forged = parts.join(".");
            assert!(
                keys.verifier.verify(&forged, "m").is_err(),
                "a forged token was accepted: {forged}"
            );
        }
    }
});
