//! The videocall browser client: a Dioxus app compiled to WebAssembly and served by the
//! platform at `/meeting/<username>/<meeting-id>`. Lobby → JoinMeeting over grpc-web →
//! WebTransport to the relay (WebSocket when WebTransport is missing or fails) → WebCodecs.
//!
//! Only the pure modules compile on the host (for their unit tests); everything that touches
//! the browser is `wasm32` only.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod bitrate;
mod control;
mod hosting;
mod meter;
mod playout;
mod quality;
mod route;
mod simulcast;
mod tile_views;

#[cfg(target_arch = "wasm32")]
mod account;
#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod bench;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod media;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod transport;
#[cfg(target_arch = "wasm32")]
mod webcrypto;

#[cfg(target_arch = "wasm32")]
fn main() {
    bench::install();
    dioxus::launch(app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("videocall-web runs in a browser: scripts/web-build.sh builds it for the platform");
}
