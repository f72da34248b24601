//! Who this browser is signed in as: the session a sign-in left in `localStorage` (through
//! the OpenID Connect provider, `/auth/oidc/callback` puts it there; with a password, the
//! lobby does), used as `authorization: Bearer` on calls to the control plane.

use wasm_bindgen::JsValue;

use crate::js;

/// Where the session is kept (the control plane's sign-in page writes the same key).
const STORAGE_KEY: &str = "videocall.session";

/// A signed-in person.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// Session token.
    pub token: String,
    /// When it expires (ms since the epoch).
    pub expires_at_ms: f64,
    /// Username.
    pub username: String,
    /// The name others see.
    pub display_name: String,
    /// Picture from the provider, or empty.
    pub picture_url: String,
}

fn storage() -> Option<web_sys::Storage> {
    js::window().local_storage().ok().flatten()
}

/// The signed-in person, if a live session is kept (an expired one is forgotten).
pub fn current() -> Option<Account> {
    let text = storage()?.get_item(STORAGE_KEY).ok().flatten()?;
    let value = js_sys::JSON::parse(&text).ok()?;
    let text_of = |key: &str| js::get(&value, key).as_string().unwrap_or_default();
    let account = Account {
        token: text_of("token"),
        expires_at_ms: js::get(&value, "expires_at_ms").as_f64().unwrap_or(0.0),
        username: text_of("username"),
        display_name: text_of("display_name"),
        picture_url: text_of("picture_url"),
    };
    if account.token.is_empty() || account.expires_at_ms <= js::now_ms() {
        forget();
        return None;
    }
    Some(account)
}

/// Keeps `account` as this browser's session.
pub fn remember(account: &Account) {
    let value = js_sys::Object::new();
    js::set(&value, "token", &JsValue::from_str(&account.token));
    js::set(
        &value,
        "expires_at_ms",
        &JsValue::from_f64(account.expires_at_ms),
    );
    js::set(&value, "username", &JsValue::from_str(&account.username));
    js::set(
        &value,
        "display_name",
        &JsValue::from_str(&account.display_name),
    );
    js::set(
        &value,
        "picture_url",
        &JsValue::from_str(&account.picture_url),
    );
    if let (Some(storage), Ok(text)) = (storage(), js_sys::JSON::stringify(&value)) {
        if let Some(text) = text.as_string() {
            let _ = storage.set_item(STORAGE_KEY, &text);
        }
    }
}

/// Forgets the session (signing out, or the server no longer knows it).
pub fn forget() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(STORAGE_KEY);
    }
}

/// `Bearer <token>` for the signed-in person.
pub fn authorization() -> Option<String> {
    current().map(|account| format!("Bearer {}", account.token))
}
