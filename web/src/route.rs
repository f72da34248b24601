//! What the address bar asks for: `/meeting/<username>/<meeting-id>` with optional
//! `?transport=websocket|webtransport`, `?capture=element|processor` and
//! `?frames=wasm|webcrypto|fastest` and `?simulcast=on|off` (tests and benchmarks force paths).

use videocall_grpc_web::percent_decode;
use videocall_protocol::ids::{validate_meeting_id, validate_user};

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// WebTransport, falling back to WebSocket by itself.
    #[default]
    Auto,
    /// WebSocket only.
    WebSocket,
    /// WebTransport only (no fallback).
    WebTransport,
}

/// How to capture camera and microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureChoice {
    /// `MediaStreamTrackProcessor` where present, else the element path.
    #[default]
    Auto,
    /// `<video>` → `VideoFrame`, and an `AudioWorklet` (what Firefox uses).
    Element,
}

/// Where an encrypted meeting's media frames are sealed and opened (where the page has
/// WebCrypto; without it, always in wasm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FramesChoice {
    /// Each frame of 1 kB or more where it waits less, learned as frames go.
    #[default]
    Fastest,
    /// Every frame in wasm, on the page's main thread.
    Wasm,
    /// Every frame of 1 kB or more in WebCrypto.
    WebCrypto,
}

/// Whether the camera is sent in simulcast layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimulcastChoice {
    /// Where the page captures frames with `MediaStreamTrackProcessor` (Chromium): its
    /// encoders scale the frames to each layer's size.
    #[default]
    Auto,
    /// Three layers (two, one for small captures).
    On,
    /// One layer.
    Off,
}

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A meeting page.
    Meeting {
        /// Display name to prefill (the URL's user name).
        user: String,
        /// Meeting id.
        meeting: String,
        /// Transport override.
        transport: TransportChoice,
        /// Capture override.
        capture: CaptureChoice,
        /// Camera size to ask for (`?video=1280x720`), 640×480 by default.
        video_size: (u32, u32),
        /// Where encrypted frames are ciphered.
        frames: FramesChoice,
        /// Simulcast override.
        simulcast: SimulcastChoice,
    },
    /// Anything else: the page explains the URL shape.
    Home,
    /// A meeting URL with an invalid part.
    Invalid(String),
}

/// Parses `path` (the URL's pathname) and `query` (without `?`).
pub fn parse(path: &str, query: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["meeting", user, meeting] = parts.as_slice() else {
        return Route::Home;
    };
    let user = percent_decode(user);
    let meeting = percent_decode(meeting);
    if let Err(reason) = validate_user(&user) {
        return Route::Invalid(reason);
    }
    if let Err(reason) = validate_meeting_id(&meeting) {
        return Route::Invalid(reason);
    }
    let mut transport = TransportChoice::Auto;
    let mut capture = CaptureChoice::Auto;
    let mut video_size = (640, 480);
    let mut frames = FramesChoice::Fastest;
    let mut simulcast = SimulcastChoice::Auto;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("transport", "websocket")) => transport = TransportChoice::WebSocket,
            Some(("transport", "webtransport")) => transport = TransportChoice::WebTransport,
            Some(("capture", "element")) => capture = CaptureChoice::Element,
            Some(("frames", "wasm")) => frames = FramesChoice::Wasm,
            Some(("frames", "webcrypto")) => frames = FramesChoice::WebCrypto,
            Some(("frames", "fastest")) => frames = FramesChoice::Fastest,
            Some(("simulcast", "on")) => simulcast = SimulcastChoice::On,
            Some(("simulcast", "off")) => simulcast = SimulcastChoice::Off,
            Some(("video", size)) => {
                if let Some((w, h)) = size.split_once('x') {
                    if let (Ok(w), Ok(h)) = (w.parse::<u32>(), h.parse::<u32>()) {
                        if (160..=1920).contains(&w) && (120..=1080).contains(&h) {
                            video_size = (w, h);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Route::Meeting {
        user,
        meeting,
        transport,
        capture,
        video_size,
        frames,
        simulcast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_urls_parse() {
        assert_eq!(
            parse("/meeting/alice/demo", ""),
            Route::Meeting {
                user: "alice".into(),
                meeting: "demo".into(),
                transport: TransportChoice::Auto,
                capture: CaptureChoice::Auto,
                video_size: (640, 480),
                frames: FramesChoice::Fastest,
                simulcast: SimulcastChoice::Auto,
            }
        );
        assert_eq!(
            parse(
                "/meeting/bob/standup/",
                "transport=websocket&capture=element&video=1280x720&frames=wasm&simulcast=off"
            ),
            Route::Meeting {
                user: "bob".into(),
                meeting: "standup".into(),
                transport: TransportChoice::WebSocket,
                capture: CaptureChoice::Element,
                video_size: (1280, 720),
                frames: FramesChoice::Wasm,
                simulcast: SimulcastChoice::Off,
            }
        );
    }

    #[test]
    fn other_paths_and_bad_parts() {
        assert_eq!(parse("/", ""), Route::Home);
        assert_eq!(parse("/meeting/alice", ""), Route::Home);
        assert!(matches!(
            parse("/meeting/al%20ice/demo", ""),
            Route::Invalid(_)
        ));
        assert!(matches!(
            parse("/meeting/alice/%ZZ%", ""),
            Route::Invalid(_)
        ));
        let Route::Meeting { video_size, .. } = parse("/meeting/a/b", "video=99999x1") else {
            panic!("a meeting");
        };
        assert_eq!(video_size, (640, 480), "out-of-range sizes are ignored");
        let frames = |query| match parse("/meeting/a/b", query) {
            Route::Meeting { frames, .. } => frames,
            other => panic!("a meeting: {other:?}"),
        };
        assert_eq!(frames("frames=webcrypto"), FramesChoice::WebCrypto);
        assert_eq!(frames("frames=fastest"), FramesChoice::Fastest);
        assert_eq!(
            frames("frames=aes"),
            FramesChoice::Fastest,
            "unknown: the default"
        );
    }
}
