//! The edge streamer: frames from a camera (V4L2), the test pattern or a Y4M file, encoded to H.264 with
//! openh264 (with sound from a microphone or a test tone in Opus, under `--audio`) and
//! published into a meeting through the control plane's grant, rejoining when
//! the relay goes away.
#![warn(missing_docs)]
pub mod admin;
pub mod audio;
pub mod camera;
pub mod capture;
pub mod config;
pub mod encode;
pub mod frame;
pub mod metrics;
pub mod options_file;
pub mod pattern;
pub mod source;
pub mod stream;
