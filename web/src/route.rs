//! What the address bar asks for: `/meeting/<username>/<meeting-id>` with optional
//! `?transport=websocket|webtransport` and `?capture=element|processor` (tests force paths).

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
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("transport", "websocket")) => transport = TransportChoice::WebSocket,
            Some(("transport", "webtransport")) => transport = TransportChoice::WebTransport,
            Some(("capture", "element")) => capture = CaptureChoice::Element,
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
            }
        );
        assert_eq!(
            parse(
                "/meeting/bob/standup/",
                "transport=websocket&capture=element&video=1280x720"
            ),
            Route::Meeting {
                user: "bob".into(),
                meeting: "standup".into(),
                transport: TransportChoice::WebSocket,
                capture: CaptureChoice::Element,
                video_size: (1280, 720),
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
    }
}
