//! The browser's way through an OpenID Connect provider: `/auth/oidc/start` sends it to the
//! provider (state, nonce and PKCE kept here, the state tied to this browser by a cookie) and
//! `/auth/oidc/callback` takes it back, exchanges the code, signs the person in and hands the
//! page its session. Every failure is a page that says what went wrong, and is logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::{random_token, sha256_hex};
use crate::oidc::policy::safe_return_to;
use crate::oidc::{sign_in, SignInError, SignedIn};
use crate::service::ControlPlane;
use crate::store::{now_ms, PendingSignIn};

/// The cookie that ties a sign-in to the browser that started it.
const BROWSER_COOKIE: &str = "videocall_sign_in";
/// How long a person may take at the provider.
const SIGN_IN_TTL: Duration = Duration::from_secs(600);
/// Where the page finds the session (`localStorage`), as the browser client reads it.
pub const SESSION_STORAGE_KEY: &str = "videocall.session";

/// `/auth/oidc/start` and `/auth/oidc/callback`.
pub fn routes(control_plane: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/auth/oidc/start", get(start))
        .route("/auth/oidc/callback", get(callback))
        .with_state(control_plane)
}

async fn start(
    State(control_plane): State<Arc<ControlPlane>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let return_to = safe_return_to(query.get("return_to").map(String::as_str));
    let Some(provider) = control_plane.oidc.clone() else {
        return failure_page(
            StatusCode::NOT_FOUND,
            "Sign-in through a provider is not set up on this server.",
            &return_to,
        );
    };
    let started = match provider.start().await {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(%error, "sign-in could not start");
            return failure_page(error.http_status(), &error.to_string(), &return_to);
        }
    };
    let browser = random_token(32);
    let now = now_ms();
    let pending = PendingSignIn {
        state_hash: sha256_hex(&started.state),
        browser_hash: sha256_hex(&browser),
        provider: provider.settings().id.clone(),
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        return_to: return_to.clone(),
        expires_at_ms: now.saturating_add(SIGN_IN_TTL.as_millis() as i64),
    };
    if let Err(error) = control_plane.store.save_sign_in(&pending, now).await {
        tracing::error!(%error, "sign-in could not be stored");
        return failure_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The sign-in could not be started; try again.",
            &return_to,
        );
    }
    let secure = control_plane
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let cookie = format!(
        "{BROWSER_COOKIE}={browser}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SIGN_IN_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(&started.url),
        HeaderValue::from_str(&cookie),
    ) {
        headers.insert(header::LOCATION, location);
        headers.insert(header::SET_COOKIE, cookie);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    } else {
        failure_page(
            StatusCode::BAD_GATEWAY,
            "The provider's sign-in address is not usable.",
            &return_to,
        )
    }
}

async fn callback(
    State(control_plane): State<Arc<ControlPlane>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut return_to = "/".to_owned();
    match finish(&control_plane, &headers, &query, &mut return_to).await {
        Ok(signed_in) => signed_in_page(&signed_in, &return_to),
        Err(error) => {
            tracing::warn!(%error, "sign-in through OpenID Connect failed");
            failure_page(error.http_status(), &error.to_string(), &return_to)
        }
    }
}

async fn finish(
    control_plane: &ControlPlane,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    return_to: &mut String,
) -> Result<SignedIn, SignInError> {
    let provider = control_plane
        .oidc
        .as_ref()
        .ok_or(SignInError::UnknownState)?;
    let state = query.get("state").ok_or(SignInError::UnknownState)?;
    let pending = control_plane
        .store
        .take_sign_in(&sha256_hex(state), now_ms())
        .await?
        .ok_or(SignInError::UnknownState)?;
    *return_to = pending.return_to.clone();
    let browser = cookie(headers, BROWSER_COOKIE).map(|value| sha256_hex(&value));
    if browser.as_deref() != Some(pending.browser_hash.as_str())
        || pending.provider != provider.settings().id
    {
        return Err(SignInError::OtherBrowser);
    }
    // RFC 9207: a provider that names itself in its answer must be the one asked.
    if let Some(issuer) = query.get("iss") {
        if issuer.trim_end_matches('/') != provider.settings().issuer.trim_end_matches('/') {
            return Err(SignInError::OtherIssuer(issuer.chars().take(256).collect()));
        }
    }
    if let Some(error) = query.get("error") {
        return Err(SignInError::Provider {
            error: error.chars().take(64).collect(),
            description: query
                .get("error_description")
                .map(|d| d.chars().take(256).collect()),
        });
    }
    let code = query.get("code").ok_or_else(|| SignInError::Provider {
        error: "no code".into(),
        description: None,
    })?;
    let claims = provider
        .finish(code, &pending.pkce_verifier, &pending.nonce)
        .await?;
    sign_in(
        &control_plane.store,
        &provider.settings().policy,
        &claims,
        control_plane.config.session_ttl_secs,
    )
    .await
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// JSON that is safe inside a `<script>` element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page the provider's answer lands on: it leaves the session where the browser client
/// reads it and goes back to where the person started (the token is never in an address).
fn signed_in_page(signed_in: &SignedIn, return_to: &str) -> Response {
    let session = serde_json::json!({
        "token": signed_in.session_token,
        "expires_at_ms": signed_in.expires_at_ms,
        "username": signed_in.user.username,
        "display_name": signed_in.user.display_name,
        "picture_url": signed_in.user.picture_url,
        "return_to": return_to,
    });
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed in · videocall</title>\
         <link rel=\"icon\" href=\"data:,\"></head><body>\
         <p>Signed in as {name}. <a href=\"{href}\">Continue</a></p>\
         <script type=\"application/json\" id=\"videocall-sign-in\">{json}</script>\
         <script>(function(){{var s=JSON.parse(document.getElementById('videocall-sign-in').textContent);\
         try{{localStorage.setItem('{key}',JSON.stringify(s));}}catch(e){{}}location.replace(s.return_to);}})();</script>\
         </body></html>",
        name = html_escape(&signed_in.user.display_name),
        href = html_escape(return_to),
        json = script_json(&session),
        key = SESSION_STORAGE_KEY,
    );
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::SET_COOKIE,
                format!("{BROWSER_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0"),
            ),
        ],
        Html(page),
    )
        .into_response()
}

fn failure_page(status: StatusCode, why: &str, return_to: &str) -> Response {
    let retry = format!("/auth/oidc/start?return_to={}", percent_encode(return_to));
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed · videocall</title>\
         <link rel=\"icon\" href=\"data:,\"></head><body><h1>Sign-in failed</h1>\
         <p role=\"alert\" id=\"why\">{why}</p>\
         <p><a href=\"{retry}\">Try again</a> · <a href=\"{back}\">Go back and join as a guest</a></p></body></html>",
        why = html_escape(why),
        retry = html_escape(&retry),
        back = html_escape(return_to),
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// `value` for a query string: unreserved characters and `/` kept, the rest `%XX`.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; videocall_sign_in=xyz"),
        );
        assert_eq!(cookie(&headers, BROWSER_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn json_in_a_script_cannot_close_it() {
        let json = script_json(&serde_json::json!({"name": "</script><script>alert(1)</script>&"}));
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script>&");
    }

    #[test]
    fn return_paths_are_encoded_for_the_retry_link() {
        assert_eq!(percent_encode("/meeting/a b/c&d"), "/meeting/a%20b/c%26d");
    }
}
