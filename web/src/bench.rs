//! `window.videocallE2eeBench(bytes, frames)`: what sealing and opening one media frame of
//! `bytes` costs in this browser's wasm (the SFrame keys of one epoch, two members, no
//! network), timed over `frames` frames on the page's monotonic clock. The browser test
//! prints it; anyone can call it from the console.

use videocall_e2ee::FrameKeys;
use wasm_bindgen::prelude::*;

use crate::js;

/// Installs `window.videocallE2eeBench`.
pub fn install() {
    let bench = Closure::<dyn Fn(u32, u32) -> JsValue>::new(|bytes: u32, frames: u32| {
        measure(bytes as usize, frames.max(1)).unwrap_or_else(|e| JsValue::from_str(&e))
    });
    js::set(&js_sys::global(), "videocallE2eeBench", bench.as_ref());
    bench.forget();
}

fn measure(bytes: usize, frames: u32) -> Result<JsValue, String> {
    let base_key = vec![7u8; FrameKeys::base_key_len()];
    let (mut sender, mut receiver) = (FrameKeys::new(), FrameKeys::new());
    sender
        .enter_epoch(1, 0, base_key.clone())
        .map_err(|e| e.to_string())?;
    receiver
        .enter_epoch(1, 1, base_key)
        .map_err(|e| e.to_string())?;
    let payload = vec![0x5au8; bytes];
    let metadata = [1u8; 22];
    let mut sealed = Vec::with_capacity(frames as usize);
    let start = js::monotonic_ms();
    for _ in 0..frames {
        sealed.push(
            sender
                .seal(&metadata, &payload)
                .map_err(|e| e.to_string())?,
        );
    }
    let seal_ms = js::monotonic_ms() - start;
    let start = js::monotonic_ms();
    for frame in &sealed {
        receiver.open(&metadata, frame).map_err(|e| e.to_string())?;
    }
    let open_ms = js::monotonic_ms() - start;
    let result = js_sys::Object::new();
    let per_frame_us = |ms: f64| ms * 1000.0 / f64::from(frames);
    js::set(&result, "bytes", &(bytes as f64).into());
    js::set(&result, "sealUs", &per_frame_us(seal_ms).into());
    js::set(&result, "openUs", &per_frame_us(open_ms).into());
    Ok(result.into())
}
