//! The edge streamer: frames from a camera, the test pattern or a Y4M file, encoded to
//! H.264 with openh264 and published into a meeting through the control plane's grant,
//! rejoining when the relay goes away.
#![warn(missing_docs)]
pub mod encode;
pub mod frame;
pub mod pattern;
pub mod source;
