//! Before joining: name, camera and microphone preview, device pickers.

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{HtmlVideoElement, MediaStream};

use crate::account::{self, Account};
use crate::api;
use crate::js;
use crate::media::capture::{self, Devices};

/// What the lobby hands to the meeting when Join is clicked.
#[derive(Clone)]
pub struct LobbyChoice {
    /// Display name.
    pub name: String,
    /// Camera and microphone.
    pub stream: MediaStream,
    /// Join muted.
    pub muted: bool,
    /// Join with the camera off.
    pub camera_off: bool,
}

/// Shows `stream` in the `<video>` with `id`.
pub fn attach(id: &str, stream: Option<&MediaStream>) {
    if let Some(video) = js::document()
        .get_element_by_id(id)
        .and_then(|e| e.dyn_into::<HtmlVideoElement>().ok())
    {
        video.set_src_object(stream);
    }
}

/// The lobby.
#[component]
pub fn Lobby(
    meeting: String,
    user: String,
    video_size: (u32, u32),
    on_join: EventHandler<LobbyChoice>,
) -> Element {
    let signed_in = use_signal(account::current);
    let mut name = use_signal(|| match signed_in.peek().as_ref() {
        Some(account) if !account.display_name.is_empty() => account.display_name.clone(),
        _ => user.clone(),
    });
    let mut stream: Signal<Option<MediaStream>> = use_signal(|| None);
    let mut devices = use_signal(Devices::default);
    let mut camera = use_signal(String::new);
    let mut microphone = use_signal(String::new);
    let mut error: Signal<Option<String>> = use_signal(|| None);
    let mut muted = use_signal(|| false);
    let mut camera_off = use_signal(|| false);

    // (Re)open the devices whenever a picker changes.
    let _opened = use_resource(move || async move {
        let (camera, microphone) = (camera(), microphone());
        if let Some(old) = stream.peek().as_ref() {
            for track in old.get_tracks().iter() {
                if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
                    track.stop();
                }
            }
        }
        match capture::user_media(Some(&camera), Some(&microphone), video_size).await {
            Ok(opened) => {
                error.set(None);
                stream.set(Some(opened));
                devices.set(capture::devices().await);
            }
            Err(why) => error.set(Some(why)),
        }
    });
    use_effect(move || attach("preview", stream.read().as_ref()));

    let mut join = move || {
        let Some(opened) = stream.peek().clone() else {
            return;
        };
        let name = name.peek().trim().to_owned();
        if name.is_empty() {
            error.set(Some("Type the name the others will see.".into()));
            return;
        }
        on_join.call(LobbyChoice {
            name,
            stream: opened,
            muted: muted(),
            camera_off: camera_off(),
        });
    };
    let ready = stream.read().is_some();
    rsx! {
        main { class: "lobby",
            h1 { "Join meeting {meeting}" }
            SignIn { account: signed_in, on_name: move |display_name: String| name.set(display_name) }
            div { class: "preview",
                video { id: "preview", autoplay: true, muted: true, playsinline: true,
                    "aria-label": "camera preview" }
            }
            if let Some(why) = error() {
                p { class: "error", role: "alert", "{why}" }
            }
            form { class: "lobby-form",
                onsubmit: move |event| { event.prevent_default(); join(); },
                label { r#for: "name", "Your name" }
                input { id: "name", value: "{name}", maxlength: 64, autocomplete: "name",
                    oninput: move |event| name.set(event.value()) }
                label { r#for: "camera", "Camera" }
                select { id: "camera", onchange: move |event| camera.set(event.value()),
                    for device in devices.read().cameras.iter() {
                        option { value: "{device.id}", selected: *camera.read() == device.id, "{device.label}" }
                    }
                }
                label { r#for: "microphone", "Microphone" }
                select { id: "microphone", onchange: move |event| microphone.set(event.value()),
                    for device in devices.read().microphones.iter() {
                        option { value: "{device.id}", selected: *microphone.read() == device.id, "{device.label}" }
                    }
                }
                label { class: "check",
                    input { r#type: "checkbox", checked: muted(), onchange: move |event| muted.set(event.checked()) }
                    "Join muted"
                }
                label { class: "check",
                    input { r#type: "checkbox", checked: camera_off(), onchange: move |event| camera_off.set(event.checked()) }
                    "Join with camera off"
                }
                button { r#type: "submit", id: "join", disabled: !ready, "Join" }
            }
        }
    }
}

/// Who joins: a guest, or a signed-in person (through the provider, or with a password).
#[component]
fn SignIn(account: Signal<Option<Account>>, on_name: EventHandler<String>) -> Element {
    let options = use_resource(|| async { api::sign_in_options().await.ok() });
    let mut password_form = use_signal(|| false);
    let mut username = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut error: Signal<Option<String>> = use_signal(|| None);
    let mut busy = use_signal(|| false);

    let here = {
        let location = js::window().location();
        format!(
            "{}{}",
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default()
        )
    };
    let return_to = String::from(js_sys::encode_uri_component(&here));
    let sign_out = move |_| {
        spawn(async move {
            let _ = api::logout().await;
            account::forget();
            account.set(None);
        });
    };
    let sign_in = move |event: FormEvent| {
        event.prevent_default();
        if busy() {
            return;
        }
        busy.set(true);
        spawn(async move {
            let (user, secret) = (username.peek().trim().to_owned(), password.peek().clone());
            match api::login(&user, &secret).await {
                Ok(response) => {
                    let profile = response.user.unwrap_or_default();
                    let signed = Account {
                        token: response.session_token,
                        expires_at_ms: response.expires_at_ms as f64,
                        username: profile.username,
                        display_name: profile.display_name,
                        picture_url: profile.picture_url,
                    };
                    account::remember(&signed);
                    on_name.call(signed.display_name.clone());
                    account.set(Some(signed));
                    password.set(String::new());
                    password_form.set(false);
                    error.set(None);
                }
                Err(why) => error.set(Some(why.to_string())),
            }
            busy.set(false);
        });
    };
    let providers = options
        .read()
        .as_ref()
        .and_then(|options| options.as_ref())
        .map(|options| options.providers.clone())
        .unwrap_or_default();
    let current = account.read().clone();
    rsx! {
        section { class: "account", "aria-label": "Who you join as",
            if let Some(current) = current {
                if !current.picture_url.is_empty() {
                    img { class: "avatar", src: "{current.picture_url}", alt: "", width: 32, height: 32,
                        referrerpolicy: "no-referrer" }
                }
                span { id: "signed-in-as", "Signed in as {current.display_name}" }
                button { r#type: "button", id: "sign-out", class: "secondary", onclick: sign_out, "Sign out" }
            } else {
                span { id: "joining-as-guest", "You join as a guest." }
                for provider in providers {
                    a { class: "button sign-in-provider", id: "sign-in-{provider.id}",
                        href: "{provider.start_path}?return_to={return_to}",
                        "Sign in with {provider.name}" }
                }
                button { r#type: "button", id: "sign-in-password", class: "secondary",
                    "aria-expanded": "{password_form()}",
                    onclick: move |_| password_form.set(!password_form()),
                    "Sign in with a password" }
            }
            if password_form() && account.read().is_none() {
                form { class: "password-form", onsubmit: sign_in,
                    label { r#for: "username", "Username" }
                    input { id: "username", autocomplete: "username", value: "{username}",
                        oninput: move |event| username.set(event.value()) }
                    label { r#for: "password", "Password" }
                    input { id: "password", r#type: "password", autocomplete: "current-password",
                        value: "{password}", oninput: move |event| password.set(event.value()) }
                    button { r#type: "submit", id: "sign-in", disabled: busy(), "Sign in" }
                }
            }
            if let Some(why) = error() {
                p { class: "error", role: "alert", "{why}" }
            }
        }
    }
}
