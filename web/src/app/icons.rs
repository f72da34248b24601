//! The page's icons: small line drawings in SVG (24 x 24, drawn in the text's colour), so
//! they look the same on every system whatever fonts it has. Decorative: what they mean is
//! said by the control's label.

use dioxus::prelude::*;

/// Which icon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IconName {
    /// Microphone on.
    Mic,
    /// Microphone off.
    MicOff,
    /// Camera on.
    Camera,
    /// Camera off.
    CameraOff,
    /// Share the screen.
    Screen,
    /// A raised hand.
    Hand,
    /// Chat.
    Chat,
    /// Participants.
    People,
    /// Connection (signal bars).
    Signal,
    /// Grid layout.
    Grid,
    /// Speaker layout.
    Speaker,
    /// Full screen.
    FullScreen,
    /// Locked.
    Lock,
    /// Unlocked.
    Unlock,
    /// End for all.
    Stop,
    /// Leave (a handset put down).
    Leave,
    /// Pin a tile.
    Pin,
    /// The invitation link.
    Link,
    /// Done (copied).
    Check,
    /// Close.
    Close,
    /// Device settings (sliders).
    Settings,
}

impl IconName {
    /// The drawing's paths.
    fn paths(self) -> &'static [&'static str] {
        const MIC: &str = "M9 6a3 3 0 0 1 6 0v5a3 3 0 0 1-6 0z";
        const MIC_STAND: &str = "M5 11a7 7 0 0 0 14 0M12 18v3M9 21h6";
        const CAMERA: &str = "M3 8h12v9H3zM15 11l6-3v9l-6-3";
        const SLASH: &str = "M3 3l18 18";
        match self {
            IconName::Mic => &[MIC, MIC_STAND],
            IconName::MicOff => &[MIC, MIC_STAND, SLASH],
            IconName::Camera => &[CAMERA],
            IconName::CameraOff => &[CAMERA, SLASH],
            IconName::Screen => &["M3 4h18v12H3zM8 20h8M12 16v4M12 7v6M9 10l3-3 3 3"],
            IconName::Hand => &[
                "M8 12V5.5a1.5 1.5 0 0 1 3 0V11M11 10.5V4a1.5 1.5 0 0 1 3 0v7M14 10.5V5.5a1.5 1.5 0 0 1 3 0V15a6 6 0 0 1-6 6h-.5a5 5 0 0 1-4.2-2.3L4 14.5a1.5 1.5 0 0 1 2.4-1.8L8 14.5",
            ],
            IconName::Chat => &["M4 5h16v11H9l-5 4z"],
            IconName::People => &[
                "M6 8a3 3 0 1 0 6 0a3 3 0 1 0-6 0",
                "M3 20a6 6 0 0 1 12 0",
                "M14.5 9a2.5 2.5 0 1 0 5 0a2.5 2.5 0 1 0-5 0",
                "M16 14a5 5 0 0 1 5 5",
            ],
            IconName::Signal => &["M5 20v-3M10 20v-7M15 20V9M20 20V4"],
            IconName::Grid => &["M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z"],
            IconName::Speaker => &["M3 3h18v12H3zM3 18h5v3H3zM10 18h4v3h-4zM16 18h5v3h-5z"],
            IconName::FullScreen => &["M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5"],
            IconName::Lock => &["M5 11h14v10H5zM8 11V7a4 4 0 0 1 8 0v4"],
            IconName::Unlock => &["M5 11h14v10H5zM8 11V7a4 4 0 0 1 7.7-1.5"],
            IconName::Stop => &["M6 6h12v12H6z"],
            IconName::Leave => &[
                "M2.5 14.5c5.5-5 13.5-5 19 0l-2.2 2.6-3.6-1.3v-2.4c-2.4-.8-5-.8-7.4 0v2.4l-3.6 1.3z",
            ],
            IconName::Pin => &["M12 16v6M8 3h8l-1 6 3 3v2H6v-2l3-3z"],
            IconName::Link => &[
                "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
            ],
            IconName::Check => &["M4 12l5 5L20 6"],
            IconName::Close => &["M6 6l12 12M18 6L6 18"],
            IconName::Settings => &["M4 6h9M17 6h3M15 4v4M4 12h3M11 12h9M9 10v4M4 18h11M19 18h1M17 16v4"],
        }
    }
}

/// An icon, hidden from screen readers (the control around it is labelled).
#[component]
pub fn Icon(name: IconName) -> Element {
    rsx! {
        svg { class: "icon", view_box: "0 0 24 24", width: "24", height: "24", fill: "none",
            stroke: "currentColor", stroke_width: "2", stroke_linecap: "round", stroke_linejoin: "round",
            "aria-hidden": "true",
            for d in name.paths().iter() {
                path { d: *d }
            }
        }
    }
}
