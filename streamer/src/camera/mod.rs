//! Cameras: the pixel formats cameras deliver and their conversion to I420 (`convert`), the
//! choice of a capture mode among those a camera offers (`mode`), both pure; frames as a camera
//! would send them, for tests and the benchmark (`synthetic`); and capture from
//! Video4Linux2 devices (`v4l2`, Linux, behind the `v4l2` cargo feature).

pub mod convert;
pub mod mode;
pub mod synthetic;
#[cfg(all(target_os = "linux", feature = "v4l2"))]
pub mod v4l2;

pub use convert::{ConvertError, Converter, PixelFormat, RawLayout};
pub use mode::{choose_mode, ChosenMode, FormatOffer, FrameRates, ModeError, SizeOffer, Wanted};

/// Why a camera gives no picture.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// No such device.
    #[error("no camera at {path} (`videocall-streamer devices` lists the cameras)")]
    Missing {
        /// The device path.
        path: String,
    },
    /// The device exists but is not a camera this streamer can read.
    #[error("{path} is not a video capture device with streaming I/O")]
    NotACamera {
        /// The device path.
        path: String,
    },
    /// The camera offers nothing that fits what was asked for.
    #[error("{path}: {error}")]
    Mode {
        /// The device path.
        path: String,
        /// What does not fit.
        error: ModeError,
    },
    /// The driver took the format but set another.
    #[error("{path}: asked for {asked}, the driver set {got}")]
    FormatRefused {
        /// The device path.
        path: String,
        /// What was asked for.
        asked: String,
        /// What the driver set.
        got: String,
    },
    /// A device call failed.
    #[error("{path}: {what}: {error}")]
    Io {
        /// The device path.
        path: String,
        /// The call.
        what: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// A captured frame cannot be converted.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// This build has no camera support.
    #[error("this videocall-streamer was built without camera support (the v4l2 feature, Linux)")]
    Unsupported,
}
