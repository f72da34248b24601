//! Camera, microphone and screen: `getUserMedia`, `getDisplayMedia` and the device list.

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MediaDeviceInfo, MediaDeviceKind, MediaStream};

use crate::js;

/// One camera or microphone.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its id for constraints.
    pub id: String,
    /// What the browser calls it.
    pub label: String,
}

/// Cameras and microphones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Devices {
    /// Video inputs.
    pub cameras: Vec<Device>,
    /// Audio inputs.
    pub microphones: Vec<Device>,
    /// Audio outputs (speakers, headphones), where the browser lists them.
    pub speakers: Vec<Device>,
}

fn media_devices() -> Result<web_sys::MediaDevices, String> {
    js::window()
        .navigator()
        .media_devices()
        .map_err(|_| "this page cannot use cameras (it needs https or localhost)".to_owned())
}

/// Lists the devices (labels appear once the page may use them).
pub async fn devices() -> Devices {
    let mut found = Devices::default();
    let Ok(devices) = media_devices() else {
        return found;
    };
    let Ok(promise) = devices.enumerate_devices() else {
        return found;
    };
    let Ok(list) = js::wait(promise).await else {
        return found;
    };
    for item in Array::from(&list).iter() {
        let Ok(info) = item.dyn_into::<MediaDeviceInfo>() else {
            continue;
        };
        let device = Device {
            id: info.device_id(),
            label: if info.label().is_empty() {
                "Default".into()
            } else {
                info.label()
            },
        };
        match info.kind() {
            MediaDeviceKind::Videoinput => found.cameras.push(device),
            MediaDeviceKind::Audioinput => found.microphones.push(device),
            MediaDeviceKind::Audiooutput => found.speakers.push(device),
            _ => {}
        }
    }
    found
}

fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (key, value) in pairs {
        js::set(&object, key, value);
    }
    object.into()
}

fn ideal(value: f64) -> JsValue {
    object(&[("ideal", value.into())])
}

/// Camera and microphone, the camera at `width`×`height`, from the chosen devices (empty:
/// default).
pub async fn user_media(
    camera: Option<&str>,
    microphone: Option<&str>,
    size: (u32, u32),
) -> Result<MediaStream, String> {
    open(
        Some(video_constraints(camera, size)),
        Some(audio_constraints(microphone)),
    )
    .await
}

/// Only the camera `id` (switching cameras in the meeting).
pub async fn camera_only(id: &str, size: (u32, u32)) -> Result<MediaStream, String> {
    open(Some(video_constraints(Some(id), size)), None).await
}

/// Only the microphone `id` (switching microphones in the meeting).
pub async fn microphone_only(id: &str) -> Result<MediaStream, String> {
    open(None, Some(audio_constraints(Some(id)))).await
}

fn video_constraints(camera: Option<&str>, size: (u32, u32)) -> JsValue {
    let mut video = vec![
        ("width", ideal(f64::from(size.0))),
        ("height", ideal(f64::from(size.1))),
        ("frameRate", ideal(30.0)),
    ];
    if let Some(id) = camera.filter(|id| !id.is_empty()) {
        video.push(("deviceId", object(&[("exact", id.into())])));
    }
    object(&video)
}

fn audio_constraints(microphone: Option<&str>) -> JsValue {
    let mut audio = vec![
        ("channelCount", ideal(1.0)),
        ("sampleRate", ideal(48_000.0)),
        ("echoCancellation", true.into()),
        ("noiseSuppression", true.into()),
    ];
    if let Some(id) = microphone.filter(|id| !id.is_empty()) {
        audio.push(("deviceId", object(&[("exact", id.into())])));
    }
    object(&audio)
}

async fn open(video: Option<JsValue>, audio: Option<JsValue>) -> Result<MediaStream, String> {
    let constraints = object(&[
        ("video", video.unwrap_or(JsValue::FALSE)),
        ("audio", audio.unwrap_or(JsValue::FALSE)),
    ]);
    let promise = media_devices()?
        .get_user_media_with_constraints(constraints.unchecked_ref())
        .map_err(|e| js::error_text(&e))?;
    stream(promise).await
}

/// A screen, window or tab, as the person picks.
pub async fn display_media() -> Result<MediaStream, String> {
    let constraints = object(&[
        ("video", object(&[("frameRate", ideal(15.0))])),
        ("audio", false.into()),
    ]);
    let promise = media_devices()?
        .get_display_media_with_constraints(constraints.unchecked_ref())
        .map_err(|e| js::error_text(&e))?;
    stream(promise).await
}

/// The stream a media promise resolves to, or why there is none.
async fn stream(promise: js_sys::Promise) -> Result<MediaStream, String> {
    js::wait(promise)
        .await
        .map_err(|e| describe_media_error(&e))?
        .dyn_into()
        .map_err(|e| js::error_text(&e))
}

fn describe_media_error(error: &JsValue) -> String {
    let name = js::get(error, "name").as_string().unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" => "permission to use the camera or microphone was refused".into(),
        "NotFoundError" => "no camera or microphone was found".into(),
        "NotReadableError" => "the camera or microphone is in use by another program".into(),
        _ => js::error_text(error),
    }
}
