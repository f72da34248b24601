//! Sign-in through OpenID Connect against a real, certified provider (the npm package
//! `oidc-provider`, started on loopback by `web/e2e/oidc-provider.mjs`), with the real
//! control-plane binary: a browser's way through `/auth/oidc/start` and back (PKCE, state,
//! nonce, the provider's keys, its userinfo), who people become (new users linked by issuer
//! and subject, never by a matching local name; admin groups; the meeting's owner joins as its
//! host), and what is refused: a wrong or replayed state, another browser, an expired code, a
//! provider's error, an answer or a token from another issuer, a person outside the allowed
//! domain, no password for people of the provider. The server keeps serving throughout.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use reqwest::Url;
use sha2::{Digest, Sha256};
use tonic::Code;
use videocall_control_api::v1::*;
use videocall_testkit::free_tcp_port;
use videocall_testkit::oidc::{ProviderOptions, TestProvider, CLIENT_ID, CLIENT_SECRET};

on_both_databases! {
    people_sign_in_through_the_provider_and_become_users_here => sign_in,
}

/// The people the provider knows.
fn people() -> serde_json::Value {
    serde_json::json!({
        "alice": {"email": "alice@example.org", "email_verified": true, "name": "Alice Liddell",
                  "picture": "http://127.0.0.1:9/alice.png", "groups": ["staff"]},
        "bob": {"email": "bob@example.org", "email_verified": true, "name": "Bob from the provider",
                "preferred_username": "bob", "groups": ["staff"]},
        "carol": {"email": "carol@example.org", "email_verified": true, "name": "Carol",
                  "groups": ["staff", "it"]},
        "mallory": {"email": "mallory@elsewhere.test", "email_verified": true, "name": "Mallory"},
    })
}

/// Starts the test provider, its client sending browsers back to `redirect_uri`.
async fn provider(
    redirect_uri: &str,
    code_ttl_secs: u32,
    claims_in_id_token: bool,
) -> TestProvider {
    TestProvider::start(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
        &ProviderOptions {
            redirect_uri: redirect_uri.to_owned(),
            people: people(),
            code_ttl_secs,
            claims_in_id_token,
        },
    )
    .await
}

/// The control plane with a provider, at a port chosen first (the redirect URI names it).
struct Setup {
    control_plane: ControlPlane,
    provider: TestProvider,
    base: String,
}

async fn setup(
    db: &Database,
    code_ttl_secs: u32,
    claims_in_id_token: bool,
    extra: &[&str],
) -> Setup {
    let port = free_tcp_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = provider(
        &format!("{base}/auth/oidc/callback"),
        code_ttl_secs,
        claims_in_id_token,
    )
    .await;
    let provider_args = provider.control_plane_args();
    let mut args = vec!["--public-url", &base];
    args.extend(provider_args.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let control_plane = ControlPlane::start_at(db, &format!("127.0.0.1:{port}"), &args).await;
    Setup {
        control_plane,
        provider,
        base,
    }
}

/// A browser: cookies kept, redirects followed one at a time.
struct Browser {
    http: reqwest::Client,
}

/// What a request ended with.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    async fn page(&self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Page {
            status,
            location,
            body: response.text().await.unwrap_or_default(),
        }
    }

    async fn get(&self, url: &str) -> Page {
        let response = self.http.get(url).send().await.expect("GET");
        self.page(response).await
    }

    /// Follows redirects from `url` until one leads to `stop_prefix` (returned, not followed)
    /// or a page that is not a redirect (`Err`).
    async fn follow_until(&self, url: &str, stop_prefix: &str) -> Result<String, Page> {
        let mut next = url.to_owned();
        for _ in 0..10 {
            if next.starts_with(stop_prefix) {
                return Ok(next);
            }
            let page = self.get(&next).await;
            match page.location.clone() {
                Some(location) if (300..400).contains(&page.status) => {
                    next = absolute(&next, &location);
                }
                _ => return Err(page),
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Signs `who` in at the provider from `start_url` (unless this browser is signed in there
    /// already, as whoever it was); returns the callback URL the provider sends the browser to
    /// (not yet followed).
    async fn through_provider(
        &self,
        start_url: &str,
        issuer: &str,
        stop_prefix: &str,
        who: &str,
    ) -> String {
        let form = match self.follow_until(start_url, stop_prefix).await {
            // Signed in at the provider already (its session cookie): straight back.
            Ok(url) => return url,
            Err(page) => page,
        };
        assert_eq!(form.status, 200, "{}", form.body);
        let action = form
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the login form");
        let response = self
            .http
            .post(absolute(issuer, action))
            .form(&[("login", who)])
            .send()
            .await
            .expect("POST login");
        let page = self.page(response).await;
        let location = page.location.expect("the provider goes on after login");
        self.follow_until(&absolute(issuer, &location), stop_prefix)
            .await
            .unwrap_or_else(|page| {
                panic!(
                    "no way back from the provider: {} {}",
                    page.status, page.body
                )
            })
    }

    /// The whole way: start at the control plane, sign in as `who`, come back.
    async fn sign_in(&self, setup: &Setup, return_to: &str, who: &str) -> Page {
        let callback = self
            .through_provider(
                &format!("{}/auth/oidc/start?return_to={return_to}", setup.base),
                &setup.provider.issuer,
                &format!("{}/auth/oidc/callback", setup.base),
                who,
            )
            .await;
        self.get(&callback).await
    }
}

/// `location` (absolute, or a path) as seen from `base`.
fn absolute(base: &str, location: &str) -> String {
    Url::parse(base)
        .and_then(|base| base.join(location))
        .expect("a URL")
        .to_string()
}

/// The session the signed-in page hands the browser client.
fn session_of(page: &Page) -> serde_json::Value {
    assert_eq!(page.status, 200, "{}", page.body);
    let json = page
        .body
        .split("id=\"videocall-sign-in\">")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the session in the page");
    serde_json::from_str(json).expect("session JSON")
}

fn bearer(session: &serde_json::Value) -> String {
    videocall_control_api::bearer_authorization(session["token"].as_str().expect("token"))
}

async fn who_am_i(api: &Api, auth: &str) -> Principal {
    api.auth()
        .who_am_i(req(WhoAmIRequest {}, Some(auth)))
        .await
        .expect("WhoAmI")
        .into_inner()
}

async fn sign_in(db: &Database) {
    let setup = setup(db, 60, false, &["--oidc-admin-groups", "it"]).await;
    let api = setup.control_plane.api().await;

    // The page learns how people sign in here.
    let options = api
        .auth()
        .sign_in_options(req(SignInOptionsRequest {}, None))
        .await
        .expect("SignInOptions")
        .into_inner();
    assert!(options.local_accounts);
    assert_eq!(options.providers.len(), 1);
    assert_eq!(options.providers[0].name, "Test Provider");
    assert_eq!(options.providers[0].start_path, "/auth/oidc/start");

    // Alice signs in; her name and picture come from the provider (its userinfo: this
    // provider keeps the ID token to `sub`, as the code flow has it).
    let browser = Browser::new();
    let page = browser
        .sign_in(&setup, "/meeting/alice/standup", "alice")
        .await;
    let alice = session_of(&page);
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["display_name"], "Alice Liddell");
    assert_eq!(alice["picture_url"], "http://127.0.0.1:9/alice.png");
    assert_eq!(alice["return_to"], "/meeting/alice/standup");
    let alice_auth = bearer(&alice);
    let principal = who_am_i(&api, &alice_auth).await;
    assert_eq!(principal.name, "alice");
    assert_eq!(principal.display_name, "Alice Liddell");
    assert_eq!(principal.picture_url, "http://127.0.0.1:9/alice.png");
    assert_eq!(principal.role, Role::User as i32);

    // She owns what she creates and joins it as its host.
    api.register_relay("relay-1", 100).await;
    api.heartbeat("relay-1", &[]).await;
    let meeting = api
        .create_meeting(
            &alice_auth,
            CreateMeetingRequest {
                id: "oidc-standup".into(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(meeting.owner, "alice");
    let grant = api
        .meetings()
        .join_meeting(req(
            JoinMeetingRequest {
                meeting_id: "oidc-standup".into(),
                ..Default::default()
            },
            Some(&alice_auth),
        ))
        .await
        .expect("the owner joins")
        .into_inner();
    assert_eq!(grant.role, MeetingRole::Host as i32);
    assert_eq!(grant.display_name, "Alice Liddell");

    // Signing in again is the same user (the provider remembers her: no form this time is
    // not assumed; the test signs in through the form again).
    let again = session_of(&Browser::new().sign_in(&setup, "/", "alice").await);
    assert_eq!(again["username"], "alice");
    assert_ne!(again["token"], alice["token"]);

    // A local account named bob exists; the provider's bob becomes bob-2, never the local one.
    let admin = api.admin().await;
    let local_bob = api.user(&admin, "bob").await;
    let provider_bob = session_of(&Browser::new().sign_in(&setup, "/", "bob").await);
    assert_eq!(provider_bob["username"], "bob-2");
    assert_eq!(who_am_i(&api, &local_bob).await.name, "bob");
    assert_eq!(who_am_i(&api, &local_bob).await.display_name, "BOB");

    // People of the provider have no password here.
    assert_status(
        api.auth()
            .login(req(
                LoginRequest {
                    username: "alice".into(),
                    password: "!signs-in-through-a-provider".into(),
                },
                None,
            ))
            .await,
        Code::Unauthenticated,
        "wrong username or password",
    );

    // Admin groups make admins; the others are users.
    let carol = session_of(&Browser::new().sign_in(&setup, "/", "carol").await);
    assert_eq!(
        who_am_i(&api, &bearer(&carol)).await.role,
        Role::Admin as i32
    );

    setup.control_plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_state_another_browser_an_expired_code_and_a_provider_error_are_refused() {
    let db = Database::create(Backend::Sqlite).await;
    // Codes live 2 s at this provider.
    let setup = setup(&db, 2, true, &[]).await;
    let callback_prefix = format!("{}/auth/oidc/callback", setup.base);
    let start = format!("{}/auth/oidc/start?return_to=/meeting/a/b", setup.base);

    // A state this server never sent.
    let browser = Browser::new();
    let callback = browser
        .through_provider(&start, &setup.provider.issuer, &callback_prefix, "alice")
        .await;
    let forged = replace_param(&callback, "state", "not-a-state-we-sent");
    let page = browser.get(&forged).await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("unknown or has expired"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("/auth/oidc/start?return_to=/"),
        "a way to try again"
    );

    // The real callback still works once; replayed, it is refused.
    let first = browser.get(&callback).await;
    let session = session_of(&first);
    assert_eq!(session["return_to"], "/meeting/a/b");
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert!(
        replay.body.contains("unknown or has expired"),
        "{}",
        replay.body
    );

    // A sign-in started in one browser cannot be finished in another (login CSRF).
    let callback = browser
        .through_provider(&start, &setup.provider.issuer, &callback_prefix, "alice")
        .await;
    let page = Browser::new().get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("another browser"), "{}", page.body);

    // A code kept past its lifetime is refused by the provider, and said so.
    let callback = browser
        .through_provider(&start, &setup.provider.issuer, &callback_prefix, "alice")
        .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("did not accept the code"),
        "{}",
        page.body
    );

    // The provider's own refusal (the person said no) comes through.
    let callback = browser
        .through_provider(&start, &setup.provider.issuer, &callback_prefix, "alice")
        .await;
    let denied = replace_param(
        &replace_param(&callback, "code", ""),
        "error",
        "access_denied",
    );
    let page = browser.get(&denied).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("access_denied"), "{}", page.body);

    // Through all of it the server kept serving.
    let api = setup.control_plane.api().await;
    api.auth()
        .sign_in_options(req(SignInOptionsRequest {}, None))
        .await
        .expect("still serving");
    setup.control_plane.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_answers_from_another_issuer_and_people_outside_the_domain_are_refused() {
    let db = Database::create(Backend::Sqlite).await;
    let setup = setup(&db, 60, true, &["--oidc-allowed-domains", "example.org"]).await;
    let redirect = format!("{}/auth/oidc/callback", setup.base);
    // Another provider that registered the same client id and redirect URI.
    let other = provider(&redirect, 60, true).await;
    let api = setup.control_plane.api().await;

    // A native client's own sign-in at our provider: its ID token is taken.
    let token = id_token_from(&setup.provider.issuer, &redirect, "alice").await;
    let signed_in = api
        .auth()
        .sign_in_with_id_token(req(
            SignInWithIdTokenRequest {
                provider: "oidc".into(),
                id_token: token,
            },
            None,
        ))
        .await
        .expect("an ID token of our provider signs in")
        .into_inner();
    assert_eq!(signed_in.user.expect("user").username, "alice");

    // The other issuer's token, for the same client id, is not.
    let foreign = id_token_from(&other.issuer, &redirect, "alice").await;
    assert_status(
        api.auth()
            .sign_in_with_id_token(req(
                SignInWithIdTokenRequest {
                    provider: "oidc".into(),
                    id_token: foreign,
                },
                None,
            ))
            .await,
        Code::Unauthenticated,
        "ID token was refused",
    );
    // Garbage and unknown providers get clear answers.
    assert_status(
        api.auth()
            .sign_in_with_id_token(req(
                SignInWithIdTokenRequest {
                    provider: "oidc".into(),
                    id_token: "not.a.jwt".into(),
                },
                None,
            ))
            .await,
        Code::Unauthenticated,
        "not an ID token",
    );
    assert_status(
        api.auth()
            .sign_in_with_id_token(req(
                SignInWithIdTokenRequest {
                    provider: "github".into(),
                    id_token: "x".into(),
                },
                None,
            ))
            .await,
        Code::InvalidArgument,
        "provider",
    );

    // In the browser: an answer that says it comes from the other issuer (a mix-up) is refused.
    let browser = Browser::new();
    let start = format!("{}/auth/oidc/start", setup.base);
    let callback = browser
        .through_provider(&start, &setup.provider.issuer, &redirect, "alice")
        .await;
    let mixed = replace_param(&callback, "iss", &other.issuer);
    let page = browser.get(&mixed).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("not the provider"), "{}", page.body);

    // Someone outside the allowed domain signs in at the provider and is turned away here.
    let page = Browser::new()
        .sign_in(&setup, "/meeting/x/y", "mallory")
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body
            .contains("mallory@elsewhere.test is not in a domain this server admits"),
        "{}",
        page.body
    );
    let mallory = id_token_from(&setup.provider.issuer, &redirect, "mallory").await;
    assert_status(
        api.auth()
            .sign_in_with_id_token(req(
                SignInWithIdTokenRequest {
                    provider: "oidc".into(),
                    id_token: mallory,
                },
                None,
            ))
            .await,
        Code::PermissionDenied,
        "not in a domain",
    );

    setup.control_plane.stop().await;
    db.remove().await;
}

/// Plays a native client: the code flow at `issuer` with PKCE (the code caught at the
/// redirect), then the token endpoint; returns the ID token.
async fn id_token_from(issuer: &str, redirect: &str, who: &str) -> String {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let browser = Browser::new();
    let authorize = Url::parse_with_params(
        &format!("{issuer}/auth"),
        [
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("scope", "openid email profile"),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "native"),
            ("nonce", "n1"),
        ],
    )
    .expect("the authorization URL")
    .to_string();
    let callback = browser
        .through_provider(&authorize, issuer, redirect, who)
        .await;
    let code = param(&callback, "code").expect("a code");
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("token JSON");
    token["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token in {token}"))
        .to_owned()
}

/// Query parameter `name` of `url`, decoded.
fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `url` with query parameter `name` set to `value` (added when missing).
fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).expect("a URL");
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(others)
        .append_pair(name, value);
    url.to_string()
}
