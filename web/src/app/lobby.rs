//! Before joining: name, camera and microphone preview, device pickers.

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{HtmlVideoElement, MediaStream};

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
    let mut name = use_signal(|| user.clone());
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
