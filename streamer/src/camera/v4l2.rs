//! Video4Linux2 cameras (`moq-v4l`: the kernel's API, no libv4l, no bindgen): the cameras of
//! this machine with the modes they offer, and a camera streaming memory-mapped buffers whose
//! frames are converted to I420. What to ask a camera for is decided in `mode`, the
//! conversion in `convert`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moq_v4l::buffer::Type;
use moq_v4l::capability::Flags;
use moq_v4l::frameinterval::FrameIntervalEnum;
use moq_v4l::framesize::FrameSizeEnum;
use moq_v4l::io::mmap::Stream;
use moq_v4l::io::traits::CaptureStream;
use moq_v4l::video::capture::Parameters;
use moq_v4l::video::Capture;
use moq_v4l::{Device, Format, FourCC, Fraction};

use super::mode::{choose_mode, ChosenMode, FormatOffer, FrameRates, SizeOffer, Wanted};
use super::{CameraError, Converter, RawLayout};
use crate::frame::I420Frame;

/// Buffers the driver fills while one is converted.
const BUFFERS: u32 = 4;
/// A camera that delivers nothing for this long has failed.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// A camera of this machine.
#[derive(Debug, Clone)]
pub struct CameraInfo {
    /// Device node.
    pub path: PathBuf,
    /// The driver's name for the card.
    pub card: String,
    /// The driver.
    pub driver: String,
    /// Where it is attached.
    pub bus: String,
    /// Its formats, sizes and rates.
    pub offers: Vec<FormatOffer>,
}

/// The device node a `--video-device` names: an index (`0` is `/dev/video0`) or a path.
pub fn device_path(device: &str) -> PathBuf {
    if !device.is_empty() && device.bytes().all(|b| b.is_ascii_digit()) {
        PathBuf::from(format!("/dev/video{device}"))
    } else {
        PathBuf::from(device)
    }
}

/// The video capture devices under `/dev`, in index order; nodes that do not capture video
/// (a webcam's metadata node, encoders, radios) are left out.
pub fn cameras() -> Vec<CameraInfo> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let index = name.strip_prefix("video")?.parse().ok()?;
                    Some((index, entry.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes
        .into_iter()
        .filter_map(|(_, path)| {
            let device = Device::with_path(&path).ok()?;
            let caps = device.query_caps().ok()?;
            if !captures_video(caps.capabilities) {
                return None;
            }
            Some(CameraInfo {
                offers: offers(&device).unwrap_or_default(),
                path,
                card: caps.card,
                driver: caps.driver,
                bus: caps.bus,
            })
        })
        .collect()
}

fn captures_video(flags: Flags) -> bool {
    flags.contains(Flags::VIDEO_CAPTURE) && flags.contains(Flags::STREAMING)
}

fn fps(interval: &Fraction) -> Option<f64> {
    (interval.numerator > 0)
        .then(|| f64::from(interval.denominator) / f64::from(interval.numerator))
}

/// What `device` offers: every format with its sizes and their rates.
fn offers(device: &Device) -> io::Result<Vec<FormatOffer>> {
    let mut offers = Vec::new();
    for description in device.enum_formats()? {
        let fourcc = description.fourcc;
        let mut sizes = Vec::new();
        for size in device.enum_framesizes(fourcc).unwrap_or_default() {
            let (offer, probe) = match size.size {
                FrameSizeEnum::Discrete(d) => (
                    SizeOffer::Discrete {
                        width: d.width,
                        height: d.height,
                    },
                    (d.width, d.height),
                ),
                FrameSizeEnum::Stepwise(s) => (
                    SizeOffer::Stepwise {
                        min_width: s.min_width,
                        max_width: s.max_width,
                        step_width: s.step_width,
                        min_height: s.min_height,
                        max_height: s.max_height,
                        step_height: s.step_height,
                    },
                    (s.max_width, s.max_height),
                ),
            };
            sizes.push((offer, rates(device, fourcc, probe)));
        }
        offers.push(FormatOffer {
            fourcc: fourcc.repr,
            description: description.description,
            sizes,
        });
    }
    Ok(offers)
}

fn rates(device: &Device, fourcc: FourCC, (width, height): (u32, u32)) -> FrameRates {
    let Ok(intervals) = device.enum_frameintervals(fourcc, width, height) else {
        return FrameRates::Unknown;
    };
    let mut discrete = Vec::new();
    for interval in intervals {
        match interval.interval {
            FrameIntervalEnum::Discrete(fraction) => discrete.extend(fps(&fraction)),
            // The longest interval is the slowest rate.
            FrameIntervalEnum::Stepwise(step) => {
                if let (Some(max), Some(min)) = (fps(&step.min), fps(&step.max)) {
                    return FrameRates::Range { min, max };
                }
            }
        }
    }
    if discrete.is_empty() {
        FrameRates::Unknown
    } else {
        FrameRates::Discrete(discrete)
    }
}

/// A camera streaming in the mode chosen for it.
pub struct Camera {
    path: PathBuf,
    mode: ChosenMode,
    converter: Converter,
    stream: Stream<'static>,
    // The stream holds the device's handle; the device is kept for as long.
    _device: Device,
    period: Duration,
    next_due: Option<Instant>,
}

impl Camera {
    /// Opens the camera at `path` in the mode chosen for `wanted` and starts streaming.
    pub fn open(path: &Path, wanted: Wanted) -> Result<Camera, CameraError> {
        let name = path.display().to_string();
        let io_error = |what: &'static str| {
            let name = name.clone();
            move |error| CameraError::Io {
                path: name,
                what,
                error,
            }
        };
        let device = match Device::with_path(path) {
            Ok(device) => device,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(CameraError::Missing { path: name });
            }
            Err(error) => return Err(io_error("open")(error)),
        };
        let caps = device
            .query_caps()
            .map_err(|_| CameraError::NotACamera { path: name.clone() })?;
        if !captures_video(caps.capabilities) {
            return Err(CameraError::NotACamera { path: name });
        }
        let offered = offers(&device).map_err(io_error("listing formats"))?;
        let mode = choose_mode(&offered, wanted).map_err(|error| CameraError::Mode {
            path: name.clone(),
            error,
        })?;
        let asked = Format::new(mode.width, mode.height, FourCC::new(&mode.format.fourcc()));
        let set = device
            .set_format(&asked)
            .map_err(io_error("setting the format"))?;
        if (set.width, set.height, set.fourcc) != (asked.width, asked.height, asked.fourcc) {
            return Err(CameraError::FormatRefused {
                path: name,
                asked: format!("{} {}x{}", mode.format, mode.width, mode.height),
                got: format!("{} {}x{}", set.fourcc, set.width, set.height),
            });
        }
        // Not every driver takes a rate; frames beyond the one wanted are skipped below.
        if let Err(error) = device.set_params(&Parameters::with_fps(mode.fps)) {
            tracing::warn!(device = %name, %error, "the camera does not take a frame rate");
        }
        if mode.fps < wanted.fps {
            tracing::warn!(device = %name, asked = wanted.fps, fps = mode.fps, format = %mode.format,
                "the camera is slower at this size; streaming at its rate");
        }
        let converter = Converter::new(RawLayout {
            format: mode.format,
            width: mode.width as usize,
            height: mode.height as usize,
            stride: set.stride as usize,
        })?;
        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(io_error("allocating capture buffers"))?;
        stream.set_timeout(FRAME_TIMEOUT);
        tracing::info!(device = %name, card = %caps.card, format = %mode.format,
            width = mode.width, height = mode.height, fps = mode.fps, "camera opened");
        Ok(Camera {
            path: path.to_owned(),
            mode,
            converter,
            stream,
            _device: device,
            period: Duration::from_secs_f64(1.0 / f64::from(mode.fps.max(1))),
            next_due: None,
        })
    }

    /// The mode streaming.
    pub fn mode(&self) -> ChosenMode {
        self.mode
    }

    /// Waits for the camera's next frame due at the chosen rate and converts it into `out`.
    pub fn capture(&mut self, out: &mut I420Frame) -> Result<(), CameraError> {
        loop {
            let (data, meta) = self.stream.next().map_err(|error| CameraError::Io {
                path: self.path.display().to_string(),
                what: "capturing a frame",
                error,
            })?;
            let now = Instant::now();
            // A camera faster than the rate asked for: skip frames until the next is due.
            if let Some(due) = self.next_due {
                if now + self.period / 2 < due {
                    continue;
                }
            }
            let used = (meta.bytesused as usize).min(data.len());
            let used = if used == 0 { data.len() } else { used };
            self.converter.to_i420(&data[..used], out)?;
            let due = self.next_due.map_or(now, |due| due.max(now - self.period));
            self.next_due = Some(due + self.period);
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_an_index_or_a_path() {
        assert_eq!(device_path("0"), PathBuf::from("/dev/video0"));
        assert_eq!(device_path("12"), PathBuf::from("/dev/video12"));
        assert_eq!(
            device_path("/dev/v4l/by-id/usb-cam-video-index0"),
            PathBuf::from("/dev/v4l/by-id/usb-cam-video-index0")
        );
    }

    #[test]
    fn a_missing_camera_says_so() {
        let wanted = Wanted {
            width: 640,
            height: 480,
            fps: 30,
            format: None,
        };
        let error = Camera::open(Path::new("/dev/video-no-such-camera"), wanted)
            .err()
            .expect("no such device")
            .to_string();
        assert!(
            error.starts_with("no camera at /dev/video-no-such-camera"),
            "{error}"
        );
        // Not a video device at all.
        let error = Camera::open(Path::new("/dev/null"), wanted)
            .err()
            .expect("not a camera")
            .to_string();
        assert!(error.contains("/dev/null"), "{error}");
    }
}
