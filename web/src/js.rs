//! Small bridges to the browser: clocks, timers, property access and reading web streams.

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader};

/// The window (the page always has one).
pub fn window() -> web_sys::Window {
    web_sys::window().expect("a page has a window")
}

/// The document.
pub fn document() -> web_sys::Document {
    window().document().expect("a page has a document")
}

/// Wall-clock milliseconds since the Unix epoch (capture timestamps, latency).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Milliseconds on the page's monotonic clock (`performance.now()`, finer than [`now_ms`]):
/// for durations.
pub fn monotonic_ms() -> f64 {
    window().performance().map_or_else(now_ms, |p| p.now())
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// `object[key]`, or `undefined`.
pub fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `object[key] = value`.
pub fn set(object: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), value);
}

/// `object.name(...args)`: a method the page's web-sys features leave out.
pub fn call(object: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let method: js_sys::Function = get(object, name).dyn_into()?;
    let list: js_sys::Array = args.iter().collect();
    method.apply(object, &list)
}

/// Puts `text` on the clipboard; false when the browser refused.
pub async fn copy_text(text: &str) -> bool {
    let clipboard = get(&get(&window(), "navigator"), "clipboard");
    match call(&clipboard, "writeText", &[JsValue::from_str(text)]) {
        Ok(promise) => match promise.dyn_into::<js_sys::Promise>() {
            Ok(promise) => wait(promise).await.is_ok(),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Full screen on or off for the whole page.
pub fn toggle_full_screen() {
    let document: JsValue = document().into();
    if get(&document, "fullscreenElement").is_truthy() {
        let _ = call(&document, "exitFullscreen", &[]);
    } else {
        let _ = call(&get(&document, "documentElement"), "requestFullscreen", &[]);
    }
}

/// Whether the page is in full screen.
pub fn is_full_screen() -> bool {
    get(&document().into(), "fullscreenElement").is_truthy()
}

/// Whether the page has a global named `name` (feature detection).
pub fn has_global(name: &str) -> bool {
    !get(&js_sys::global(), name).is_undefined()
}

/// A readable message for a thrown value.
pub fn error_text(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", error.name(), error.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

/// Reads a `ReadableStream` chunk by chunk.
pub struct StreamReader(ReadableStreamDefaultReader);

impl StreamReader {
    /// Locks `stream` for reading.
    pub fn new(stream: &ReadableStream) -> Result<Self, JsValue> {
        Ok(Self(stream.get_reader().dyn_into()?))
    }

    /// The next chunk; `None` when the stream is done.
    pub async fn next(&self) -> Result<Option<JsValue>, JsValue> {
        let result = JsFuture::from(self.0.read()).await?;
        if get(&result, "done").as_bool().unwrap_or(true) {
            return Ok(None);
        }
        Ok(Some(get(&result, "value")))
    }

    /// Stops reading (the source may stop producing).
    pub fn cancel(&self) {
        let _ = self.0.cancel();
    }
}

/// Awaits a promise (of any declared type), as a result.
pub async fn wait<P: JsCast>(promise: P) -> Result<JsValue, JsValue> {
    JsFuture::from(promise.unchecked_into::<Promise>()).await
}
