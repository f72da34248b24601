//! `window.videocallE2eeBench(bytes, frames)`: what sealing and opening one media frame of
//! `bytes` costs in this browser (the SFrame keys of one epoch, two members, no network),
//! timed over `frames` frames on the page's monotonic clock; resolves to the figures. The
//! browser test prints it; anyone can call it from the console.
//!
//! - `sealUs`, `openUs`: the wasm cipher (RustCrypto's software AES), all on the main thread.
//! - `webCrypto` (where the page has it): the browser's AES-GCM as the meeting uses it.
//!   `sealIssueUs`/`openIssueUs`: the main thread's time to prepare a frame and start its
//!   call; `sealUs`/`openUs`: wall time per frame with all `frames` in flight at once (an
//!   upper bound of the main thread's share, which waits for the browser's crypto threads in
//!   between); `sealOneUs`/`openOneUs`: one frame at a time, start to end.

use futures_util::future::join_all;
use videocall_e2ee::{FrameKeys, OpenJob};
use wasm_bindgen::prelude::*;

use crate::js;
use crate::webcrypto::WebCrypto;

/// Installs `window.videocallE2eeBench`.
pub fn install() {
    let bench = Closure::<dyn Fn(u32, u32) -> js_sys::Promise>::new(|bytes: u32, frames: u32| {
        wasm_bindgen_futures::future_to_promise(async move {
            measure(bytes as usize, frames.max(1))
                .await
                .map_err(|e| JsValue::from_str(&e))
        })
    });
    js::set(&js_sys::global(), "videocallE2eeBench", bench.as_ref());
    bench.forget();
}

const METADATA: [u8; 22] = [1u8; 22];

fn pair() -> Result<(FrameKeys, FrameKeys), String> {
    let base_key = vec![7u8; FrameKeys::base_key_len()];
    let (mut sender, mut receiver) = (FrameKeys::new(), FrameKeys::new());
    sender
        .enter_epoch(1, 0, base_key.clone())
        .map_err(|e| e.to_string())?;
    receiver
        .enter_epoch(1, 1, base_key)
        .map_err(|e| e.to_string())?;
    Ok((sender, receiver))
}

async fn measure(bytes: usize, frames: u32) -> Result<JsValue, String> {
    let payload = vec![0x5au8; bytes];
    let result = js_sys::Object::new();
    let per_frame_us = |ms: f64| ms * 1000.0 / f64::from(frames);
    js::set(&result, "bytes", &(bytes as f64).into());

    let (mut sender, mut receiver) = pair()?;
    let mut sealed = Vec::with_capacity(frames as usize);
    let start = js::monotonic_ms();
    for _ in 0..frames {
        sealed.push(
            sender
                .seal(&METADATA, &payload)
                .map_err(|e| e.to_string())?,
        );
    }
    let seal_ms = js::monotonic_ms() - start;
    let start = js::monotonic_ms();
    for frame in &sealed {
        receiver.open(&METADATA, frame).map_err(|e| e.to_string())?;
    }
    let open_ms = js::monotonic_ms() - start;
    js::set(&result, "sealUs", &per_frame_us(seal_ms).into());
    js::set(&result, "openUs", &per_frame_us(open_ms).into());

    if let Some(cipher) = WebCrypto::new() {
        let figures = js_sys::Object::new();
        let (mut sender, mut receiver) = pair()?;
        let fail = |e: JsValue| js::error_text(&e);
        // The key imported first, as in a meeting (once per sender and epoch).
        let warm = sender.prepare_seal(&METADATA).map_err(|e| e.to_string())?;
        let warm = warm.frame(&cipher.seal(&warm, &payload).await.map_err(fail)?);
        // WebCrypto's frame is the sframe crate's: it opens there too.
        let (_, mut check) = pair()?;
        check
            .open(&METADATA, &warm)
            .map_err(|e| format!("a frame sealed in WebCrypto does not open in wasm: {e}"))?;
        let job = receiver
            .prepare_open(&METADATA, &warm)
            .map_err(|e| e.to_string())?;
        cipher
            .open(&job)
            .await
            .ok_or("the first frame did not open")?;

        // All in flight at once.
        let start = js::monotonic_ms();
        let mut sealing = Vec::with_capacity(frames as usize);
        for _ in 0..frames {
            let job = sender.prepare_seal(&METADATA).map_err(|e| e.to_string())?;
            let sealed = cipher.seal(&job, &payload);
            sealing.push(async move { sealed.await.map(|sealed| job.frame(&sealed)) });
        }
        let issued = js::monotonic_ms();
        let sealed: Vec<Vec<u8>> = join_all(sealing)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        let done = js::monotonic_ms();
        js::set(
            &figures,
            "sealIssueUs",
            &per_frame_us(issued - start).into(),
        );
        js::set(&figures, "sealUs", &per_frame_us(done - start).into());

        let start = js::monotonic_ms();
        let mut opening = Vec::with_capacity(frames as usize);
        let mut jobs: Vec<OpenJob> = Vec::with_capacity(frames as usize);
        for frame in &sealed {
            let job = receiver
                .prepare_open(&METADATA, frame)
                .map_err(|e| e.to_string())?;
            opening.push(cipher.open(&job));
            jobs.push(job);
        }
        let issued = js::monotonic_ms();
        let opened = join_all(opening).await;
        for (job, plaintext) in jobs.into_iter().zip(opened) {
            receiver
                .finish_open(job, plaintext)
                .map_err(|e| e.to_string())?;
        }
        let done = js::monotonic_ms();
        js::set(
            &figures,
            "openIssueUs",
            &per_frame_us(issued - start).into(),
        );
        js::set(&figures, "openUs", &per_frame_us(done - start).into());

        // One at a time, each to its end before the next.
        let (mut seal_one_ms, mut open_one_ms) = (0.0, 0.0);
        for _ in 0..frames {
            let start = js::monotonic_ms();
            let job = sender.prepare_seal(&METADATA).map_err(|e| e.to_string())?;
            let frame = job.frame(&cipher.seal(&job, &payload).await.map_err(fail)?);
            let sealed_at = js::monotonic_ms();
            seal_one_ms += sealed_at - start;
            let job = receiver
                .prepare_open(&METADATA, &frame)
                .map_err(|e| e.to_string())?;
            let plaintext = cipher.open(&job).await;
            receiver
                .finish_open(job, plaintext)
                .map_err(|e| e.to_string())?;
            open_one_ms += js::monotonic_ms() - sealed_at;
        }
        js::set(&figures, "sealOneUs", &per_frame_us(seal_one_ms).into());
        js::set(&figures, "openOneUs", &per_frame_us(open_one_ms).into());
        js::set(&result, "webCrypto", &figures);
    }
    Ok(result.into())
}
