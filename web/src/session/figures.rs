//! `window.__videocall`: counters the browser tests read (and anyone debugging in the console).

use std::collections::HashMap;

use dioxus::prelude::*;

use super::Session;
use crate::js;

/// `window.__videocall`: the figures the browser tests read.
pub(super) fn publish_test_figures(session: &Session) {
    let stats = session.params.stats.borrow();
    let object = js_sys::Object::new();
    let peers = session.signals.peers.peek();
    // Summed by name: someone who rejoins (a new id, the old one not yet gone) counts once.
    let by_name = |counts: &HashMap<u64, u64>| {
        let mut totals: HashMap<String, u64> = HashMap::new();
        for (id, count) in counts {
            let name = peers
                .iter()
                .find(|p| p.id == *id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| id.to_string());
            *totals.entry(name).or_default() += count;
        }
        let map = js_sys::Object::new();
        for (name, total) in totals {
            js::set(&map, &name, &(total as f64).into());
        }
        map
    };
    let names = js_sys::Array::new();
    for peer in peers.iter() {
        names.push(&peer.name.as_str().into());
    }
    js::set(&object, "peers", &names);
    js::set(&object, "relayId", &session.relay_id.as_str().into());
    let connection = session.signals.connection.peek();
    js::set(&object, "transport", &connection.transport.as_str().into());
    js::set(&object, "codec", &connection.codec.as_str().into());
    js::set(
        &object,
        "framesDecoded",
        &(stats.frames_decoded as f64).into(),
    );
    js::set(&object, "framesByPeer", &by_name(&stats.frames_by_peer));
    let layers: HashMap<u64, u64> = stats
        .layer_by_peer
        .iter()
        .map(|(&peer, &layer)| (peer, u64::from(layer)))
        .collect();
    js::set(&object, "layerByPeer", &by_name(&layers));
    let encoded = js_sys::Array::new();
    for count in stats.encoded_by_layer {
        encoded.push(&(count as f64).into());
    }
    js::set(&object, "encodedByLayer", &encoded);
    js::set(
        &object,
        "pausedLayerFrames",
        &(stats.paused_layer_frames as f64).into(),
    );
    if let Some(active) = peers.iter().find(|p| p.active) {
        js::set(&object, "activeSpeaker", &active.name.as_str().into());
    }
    js::set(
        &object,
        "audioFramesDecoded",
        &(stats.audio_frames_decoded as f64).into(),
    );
    js::set(&object, "audioByPeer", &by_name(&stats.audio_by_peer));
    js::set(
        &object,
        "droppedFrames",
        &(stats.dropped_frames as f64).into(),
    );
    let latencies = js_sys::Array::new();
    for value in &stats.glass_to_glass_ms {
        latencies.push(&(*value).into());
    }
    js::set(&object, "glassToGlassMs", &latencies);
    if let (Some(clicked), Some(first)) = (stats.join_clicked_ms, stats.first_remote_frame_ms) {
        js::set(&object, "joinToFirstFrameMs", &(first - clicked).into());
    }
    if let Some(rtt) = stats.rtt_ms {
        js::set(&object, "rttMs", &rtt.into());
    }
    if let Some(e2ee) = encryption_figures(session) {
        js::set(&object, "e2ee", &e2ee);
    }
    js::set(&js_sys::global(), "__videocall", &object);
}

/// `window.__videocall.e2ee`, in an encrypted meeting: the epoch, every member's code, what
/// was sealed, opened and dropped, where frames are ciphered (`cipher`: `webcrypto` or
/// `wasm`; with WebCrypto, frames of 1 kB and more go there, counted in `sealedInWebCrypto`
/// and `openedInWebCrypto`), the microseconds of the page's main thread a frame took to seal
/// and to open, and, for WebCrypto's frames, the microseconds from a frame's start to its end.
fn encryption_figures(session: &Session) -> Option<js_sys::Object> {
    let view = session.signals.encryption.peek();
    if !view.required {
        return None;
    }
    let object = js_sys::Object::new();
    if let Some(epoch) = view.epoch {
        js::set(&object, "epoch", &(epoch as f64).into());
    }
    let members = js_sys::Object::new();
    for member in &view.members {
        js::set(&members, &member.name, &member.code.as_str().into());
    }
    js::set(&object, "members", &members);
    js::set(&object, "refusals", &(view.refusals.len() as f64).into());
    if let Some((counters, time)) = session.core.figures() {
        for (name, value) in [
            ("sealed", counters.sealed),
            ("heldBack", counters.held_back),
            ("opened", counters.opened),
            ("unopened", counters.unopened),
            ("clearRefused", counters.clear_refused),
            ("sealedBytes", time.sealed_bytes),
            ("openedBytes", time.opened_bytes),
            ("sealedInWebCrypto", time.sealed_outside),
            ("openedInWebCrypto", time.opened_outside),
        ] {
            js::set(&object, name, &(value as f64).into());
        }
        let per_frame_us = |ms: f64, count: u64| ms * 1000.0 / count.max(1) as f64;
        js::set(
            &object,
            "sealUsPerFrame",
            &per_frame_us(time.seal_ms, time.sealed).into(),
        );
        js::set(
            &object,
            "openUsPerFrame",
            &per_frame_us(time.open_ms, time.opened).into(),
        );
        js::set(
            &object,
            "sealWaitUsPerFrame",
            &per_frame_us(time.seal_wait_ms, time.sealed_outside).into(),
        );
        js::set(
            &object,
            "openWaitUsPerFrame",
            &per_frame_us(time.open_wait_ms, time.opened_outside).into(),
        );
    }
    if let Some((line, round_trip_ms)) = session.core.cipher_choice() {
        js::set(&object, "webCryptoFromBytes", &(line as f64).into());
        js::set(&object, "webCryptoRoundTripMs", &round_trip_ms.into());
    }
    js::set(&object, "cipher", &session.core.cipher_name().into());
    Some(object)
}
