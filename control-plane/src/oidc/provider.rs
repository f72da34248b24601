//! One OpenID Connect provider, with `openidconnect`: discovery (kept for an hour, fetched
//! again when an ID token names a key it does not know), the authorization request (code flow,
//! PKCE S256, `state`, `nonce`), the code exchange, the ID token's checks (signature against
//! the provider's JWKS, issuer, audience, expiry, nonce) and the userinfo endpoint for claims the
//! ID token leaves out.

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::reqwest;
use openidconnect::{
    AccessToken, AdditionalClaims, AuthorizationCode, ClaimsVerificationError, Client, ClientId,
    ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdToken, IdTokenClaims, IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::policy::{SignInPolicy, VerifiedClaims};
use super::SignInError;

/// How long discovery's answer (endpoints and keys) is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The soonest discovery is fetched again for an ID token whose key is unknown.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Timeout of each request to the provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `groups` claim, which the standard claims leave out.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupsClaim {
    /// Group names.
    #[serde(default, deserialize_with = "groups_or_nothing")]
    pub groups: Vec<String>,
}

impl AdditionalClaims for GroupsClaim {}

/// A `groups` claim that is not a list of strings counts as no groups.
fn groups_or_nothing<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        serde_json::Value::String(one) => vec![one],
        _ => Vec::new(),
    })
}

type IdFields = IdTokenFields<
    GroupsClaim,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;
type ProviderIdToken = IdToken<
    GroupsClaim,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type DiscoveredClient = Client<
    GroupsClaim,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What one provider is and how this server is registered with it.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Short id used in addresses (`oidc`).
    pub id: String,
    /// Shown on the button: "Sign in with <name>".
    pub name: String,
    /// Issuer URL.
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// Its client secret (none for a public client).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back (`<public url>/auth/oidc/callback`).
    pub redirect_url: String,
    /// Who is let in and as what.
    pub policy: SignInPolicy,
}

/// An authorization request on its way to the provider, and what its answer is checked with.
pub struct Started {
    /// Where to send the browser.
    pub url: String,
    /// The `state` sent (compared with the one that comes back).
    pub state: String,
    /// The `nonce` sent (the ID token must carry it).
    pub nonce: String,
    /// The PKCE verifier (the code is exchanged with it).
    pub pkce_verifier: String,
}

/// One configured provider.
pub struct OidcProvider {
    settings: ProviderSettings,
    http: reqwest::Client,
    discovered: Mutex<Option<(Instant, DiscoveredClient)>>,
}

impl OidcProvider {
    /// A provider from its settings; nothing is fetched until the first sign-in.
    pub fn new(settings: ProviderSettings) -> Result<Self, SignInError> {
        IssuerUrl::new(settings.issuer.clone()).map_err(|_| SignInError::Config {
            what: "issuer",
            value: settings.issuer.clone(),
        })?;
        RedirectUrl::new(settings.redirect_url.clone()).map_err(|_| SignInError::Config {
            what: "redirect URL",
            value: settings.redirect_url.clone(),
        })?;
        // The provider's answers never redirect (SSRF: openidconnect's advice).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|source| SignInError::Http(Box::new(source)))?;
        Ok(OidcProvider {
            settings,
            http,
            discovered: Mutex::new(None),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// The client from discovery, fetched when missing, older than an hour or `refresh`.
    async fn client(&self, refresh: bool) -> Result<DiscoveredClient, SignInError> {
        let mut discovered = self.discovered.lock().await;
        if let Some((at, client)) = discovered.as_ref() {
            // A refresh asked for soon after the last fetch is not made: tokens naming unknown
            // keys must not make this server hammer the provider.
            let fresh_enough = if refresh {
                at.elapsed() < MIN_REFRESH_INTERVAL
            } else {
                at.elapsed() < DISCOVERY_TTL
            };
            if fresh_enough {
                return Ok(client.clone());
            }
        }
        let issuer =
            IssuerUrl::new(self.settings.issuer.clone()).map_err(|_| SignInError::Config {
                what: "issuer",
                value: self.settings.issuer.clone(),
            })?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|source| SignInError::Discovery {
                issuer: self.settings.issuer.clone(),
                source: Box::new(source),
            })?;
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone()).map_err(|_| {
            SignInError::Config {
                what: "redirect URL",
                value: self.settings.redirect_url.clone(),
            }
        })?;
        let client = DiscoveredClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        tracing::info!(issuer = %self.settings.issuer, "OpenID Connect provider discovered");
        *discovered = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Starts a sign-in: the provider's authorization URL with a fresh state, nonce and PKCE
    /// challenge.
    pub async fn start(&self) -> Result<Started, SignInError> {
        let client = self.client(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code the provider sent back, checks the ID token (with `nonce`) and
    /// returns who signed in.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<VerifiedClaims, SignInError> {
        let client = self.client(false).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|source| SignInError::Exchange(Box::new(source)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|source| SignInError::Exchange(Box::new(source)))?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or(SignInError::NoIdToken)?
            .clone();
        let nonce = Nonce::new(nonce.to_owned());
        let mut claims = self
            .verify(&client, &id_token, |client, token| {
                token.claims(&client.id_token_verifier(), &nonce).cloned()
            })
            .await?;
        if claims.email.is_none() || claims.name.is_none() {
            self.add_user_info(&client, response.access_token(), &mut claims)
                .await;
        }
        Ok(claims)
    }

    /// Checks an ID token this provider issued to this server's client id (signature, issuer,
    /// audience, expiry; a native client's sign-in has no nonce of ours) and returns who it
    /// names.
    pub async fn verify_id_token(&self, id_token: &str) -> Result<VerifiedClaims, SignInError> {
        let token: ProviderIdToken = id_token.parse().map_err(SignInError::MalformedIdToken)?;
        let client = self.client(false).await?;
        self.verify(&client, &token, |client, token| {
            token
                .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
                .cloned()
        })
        .await
    }

    /// Runs `check`; when the token names a key the cached JWKS lacks (the provider rotated its
    /// keys), fetches discovery again and checks once more.
    async fn verify<F>(
        &self,
        client: &DiscoveredClient,
        token: &ProviderIdToken,
        check: F,
    ) -> Result<VerifiedClaims, SignInError>
    where
        F: Fn(
            &DiscoveredClient,
            &ProviderIdToken,
        )
            -> Result<IdTokenClaims<GroupsClaim, CoreGenderClaim>, ClaimsVerificationError>,
    {
        let claims = match check(client, token) {
            Ok(claims) => claims,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                tracing::info!("ID token's key unknown; fetching the provider's keys again");
                let fresh = self.client(true).await?;
                check(&fresh, token).map_err(SignInError::IdToken)?
            }
            Err(other) => return Err(SignInError::IdToken(other)),
        };
        Ok(from_id_token(&claims))
    }

    /// Fills in the claims the ID token left out from the userinfo endpoint, when there is
    /// one (a failure there is logged: the ID token alone still signs the person in).
    async fn add_user_info(
        &self,
        client: &DiscoveredClient,
        access_token: &AccessToken,
        claims: &mut VerifiedClaims,
    ) {
        let subject = openidconnect::SubjectIdentifier::new(claims.subject.clone());
        let request = match client.user_info(access_token.clone(), Some(subject)) {
            Ok(request) => request,
            Err(_) => return,
        };
        let info: Result<UserInfoClaims<GroupsClaim, CoreGenderClaim>, _> =
            request.request_async(&self.http).await;
        match info {
            Ok(info) => {
                if claims.email.is_none() {
                    claims.email = info.email().map(|email| email.as_str().to_owned());
                    claims.email_verified = info.email_verified().unwrap_or(false);
                }
                if claims.name.is_none() {
                    claims.name = info
                        .name()
                        .and_then(|name| name.get(None))
                        .map(|name| name.as_str().to_owned());
                }
                if claims.preferred_username.is_none() {
                    claims.preferred_username = info
                        .preferred_username()
                        .map(|name| name.as_str().to_owned());
                }
                if claims.picture.is_none() {
                    claims.picture = info
                        .picture()
                        .and_then(|picture| picture.get(None))
                        .map(|picture| picture.as_str().to_owned());
                }
                if claims.groups.is_empty() {
                    claims.groups = info.additional_claims().groups.clone();
                }
            }
            Err(error) => {
                tracing::warn!(issuer = %self.settings.issuer, %error, "userinfo request failed")
            }
        }
    }
}

fn from_id_token(claims: &IdTokenClaims<GroupsClaim, CoreGenderClaim>) -> VerifiedClaims {
    VerifiedClaims {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|email| email.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|name| name.get(None))
            .map(|name| name.as_str().to_owned()),
        preferred_username: claims
            .preferred_username()
            .map(|name| name.as_str().to_owned()),
        picture: claims
            .picture()
            .and_then(|picture| picture.get(None))
            .map(|picture| picture.as_str().to_owned()),
        groups: claims.additional_claims().groups.clone(),
    }
}
