//! Where pictures come from: the test pattern, a Y4M file played in a loop, or a camera
//! (V4L2, behind the `v4l2` feature; see `camera`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::frame::I420Frame;
use crate::pattern::{self, BurnedIn};

/// Largest Y4M frame accepted (a 4K 4:2:0 picture is 12 MiB).
const MAX_Y4M_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Why a source gives no picture.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The requested size cannot be produced.
    #[error("unsupported resolution {width}x{height}: {why}")]
    Resolution {
        /// Width asked for.
        width: usize,
        /// Height asked for.
        height: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The file cannot be opened.
    #[error("cannot open {path}: {error}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The camera cannot be opened or read.
    #[error(transparent)]
    Camera(#[from] crate::camera::CameraError),
    /// The file is not a Y4M stream this streamer plays.
    #[error("{path} is not a playable Y4M file: {why}")]
    Y4m {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// A source of pictures, asked for one per frame tick.
pub trait FrameSource: Send {
    /// Width and height of the pictures.
    fn size(&self) -> (usize, usize);
    /// The next picture, made or captured at `now_ms` (milliseconds since the Unix epoch).
    fn next_frame(&mut self, now_ms: u64) -> Result<I420Frame, SourceError>;
    /// The rate the source delivers at when it keeps time itself (a camera: `next_frame`
    /// waits for its next frame, so the capture loop must not wait for a tick as well).
    fn frame_rate(&self) -> Option<u32> {
        None
    }
}

/// A camera, at the size, rate and format asked for (or the cheapest it offers).
#[cfg(all(target_os = "linux", feature = "v4l2"))]
pub struct CameraSource {
    camera: crate::camera::v4l2::Camera,
    frame: I420Frame,
}

#[cfg(all(target_os = "linux", feature = "v4l2"))]
impl CameraSource {
    /// Opens the camera `device` (an index or a path) in a mode for `wanted`.
    pub fn open(device: &str, wanted: crate::camera::Wanted) -> Result<Self, SourceError> {
        let camera =
            crate::camera::v4l2::Camera::open(&crate::camera::v4l2::device_path(device), wanted)?;
        let mode = camera.mode();
        Ok(CameraSource {
            camera,
            frame: I420Frame::new(mode.width as usize, mode.height as usize),
        })
    }
}

#[cfg(all(target_os = "linux", feature = "v4l2"))]
impl FrameSource for CameraSource {
    fn size(&self) -> (usize, usize) {
        (self.frame.width, self.frame.height)
    }

    fn next_frame(&mut self, _now_ms: u64) -> Result<I420Frame, SourceError> {
        self.camera.capture(&mut self.frame)?;
        Ok(self.frame.clone())
    }

    fn frame_rate(&self) -> Option<u32> {
        Some(self.camera.mode().fps)
    }
}

/// The moving test pattern with its burned-in counter and capture clock.
pub struct TestPattern {
    frame: I420Frame,
    counter: u32,
}

impl TestPattern {
    /// A pattern `width`×`height` (even, at least [`pattern::MIN_WIDTH`] wide).
    pub fn new(width: usize, height: usize) -> Result<Self, SourceError> {
        let bad = |why| SourceError::Resolution { width, height, why };
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(bad("width and height must be even"));
        }
        if width < pattern::MIN_WIDTH || height < pattern::code_height(width) * 2 {
            return Err(bad("too small for the test pattern (at least 128x32)"));
        }
        if width > 4096 || height > 2304 {
            return Err(bad("larger than 4096x2304"));
        }
        Ok(TestPattern {
            frame: I420Frame::new(width, height),
            counter: 0,
        })
    }
}

impl FrameSource for TestPattern {
    fn size(&self) -> (usize, usize) {
        (self.frame.width, self.frame.height)
    }

    fn next_frame(&mut self, now_ms: u64) -> Result<I420Frame, SourceError> {
        pattern::draw(
            &mut self.frame,
            BurnedIn {
                counter: self.counter,
                captured_ms: now_ms,
            },
        );
        self.counter = self.counter.wrapping_add(1);
        Ok(self.frame.clone())
    }
}

/// A Y4M file (8-bit 4:2:0), played from the start again at its end (a last frame cut
/// short counts as the end: the whole frames play).
pub struct Y4mFile {
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    size: (usize, usize),
    /// The first frame, read by [`Y4mFile::open`] to check that there is one.
    first: Option<I420Frame>,
}

impl Y4mFile {
    /// Opens `path` and checks its header and first frame.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let decoder = open_y4m(path)?;
        let size = (decoder.get_width(), decoder.get_height());
        let mut file = Y4mFile {
            path: path.to_owned(),
            decoder,
            size,
            first: None,
        };
        if !size.0.is_multiple_of(2) || !size.1.is_multiple_of(2) || size.0 == 0 || size.1 == 0 {
            return Err(file.corrupt(format!("{}x{} is not an even size", size.0, size.1)));
        }
        file.first = Some(file.frame()?.ok_or_else(|| file.corrupt(NO_FRAME.into()))?);
        Ok(file)
    }

    fn corrupt(&self, why: String) -> SourceError {
        SourceError::Y4m {
            path: self.path.clone(),
            why,
        }
    }

    fn frame(&mut self) -> Result<Option<I420Frame>, SourceError> {
        let (width, height) = self.size;
        match self.decoder.read_frame() {
            Ok(frame) => I420Frame::from_planes(
                width,
                height,
                frame.get_y_plane(),
                frame.get_u_plane(),
                frame.get_v_plane(),
            )
            .map(Some)
            .ok_or_else(|| self.corrupt("a frame's planes have the wrong size".into())),
            Err(y4m::Error::EOF) => Ok(None),
            Err(error) => Err(self.corrupt(format!("frame: {error}"))),
        }
    }
}

/// Why a file without a frame (or with only a cut-off one) cannot play.
const NO_FRAME: &str = "no whole frame in the file";

fn open_y4m(path: &Path) -> Result<y4m::Decoder<BufReader<File>>, SourceError> {
    let file = File::open(path).map_err(|error| SourceError::Open {
        path: path.to_owned(),
        error,
    })?;
    let corrupt = |why: String| SourceError::Y4m {
        path: path.to_owned(),
        why,
    };
    let decoder = y4m::Decoder::new_with_limits(
        BufReader::new(file),
        y4m::Limits {
            bytes: MAX_Y4M_FRAME_BYTES,
        },
    )
    .map_err(|error| corrupt(format!("header: {error}")))?;
    match decoder.get_colorspace() {
        y4m::Colorspace::C420
        | y4m::Colorspace::C420jpeg
        | y4m::Colorspace::C420paldv
        | y4m::Colorspace::C420mpeg2 => Ok(decoder),
        other => Err(corrupt(format!(
            "colour space {other:?}: only 8-bit 4:2:0 is played"
        ))),
    }
}

impl FrameSource for Y4mFile {
    fn size(&self) -> (usize, usize) {
        self.size
    }

    fn next_frame(&mut self, _now_ms: u64) -> Result<I420Frame, SourceError> {
        if let Some(frame) = self.first.take() {
            return Ok(frame);
        }
        if let Some(frame) = self.frame()? {
            return Ok(frame);
        }
        // The end: from the start again (a file without a frame is corrupt).
        self.decoder = open_y4m(&self.path)?;
        self.frame()?.ok_or_else(|| self.corrupt(NO_FRAME.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16x8 file of `frames` frames; with `mangle_last`, the last frame's marker is wrong.
    fn write_y4m(path: &Path, frames: u8, mangle_last: bool) {
        let mut bytes = b"YUV4MPEG2 W16 H8 F15:1 Ip A1:1 C420jpeg\n".to_vec();
        for n in 0..frames {
            let marker: &[u8] = if mangle_last && n + 1 == frames {
                b"FRAMX\n"
            } else {
                b"FRAME\n"
            };
            bytes.extend_from_slice(marker);
            let mut planes = vec![n; 16 * 8];
            planes.extend(vec![128; 16 * 8 / 2]);
            bytes.extend(planes);
        }
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn a_y4m_file_plays_in_a_loop() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("two.y4m");
        write_y4m(&path, 2, false);
        let mut file = Y4mFile::open(&path).expect("open");
        assert_eq!(file.size(), (16, 8));
        let firsts: Vec<u8> = (0..5)
            .map(|_| file.next_frame(0).expect("frame").planes().0[0])
            .collect();
        assert_eq!(firsts, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn a_corrupt_y4m_file_says_what_is_wrong() {
        let dir = tempfile::tempdir().expect("dir");
        let garbage = dir.path().join("garbage.y4m");
        std::fs::write(&garbage, b"not a video at all\n").expect("write");
        let error = Y4mFile::open(&garbage).err().expect("refused").to_string();
        assert!(error.contains("not a playable Y4M file"), "{error}");

        let mangled = dir.path().join("mangled.y4m");
        write_y4m(&mangled, 2, true);
        let mut file = Y4mFile::open(&mangled).expect("the header is fine");
        file.next_frame(0).expect("the first frame is whole");
        let error = file
            .next_frame(0)
            .expect_err("the second is mangled")
            .to_string();
        assert!(error.contains("frame"), "{error}");

        let missing = Y4mFile::open(&dir.path().join("missing.y4m"))
            .err()
            .expect("no file");
        assert!(missing.to_string().starts_with("cannot open"), "{missing}");

        let empty = dir.path().join("empty.y4m");
        write_y4m(&empty, 0, false);
        let error = Y4mFile::open(&empty)
            .err()
            .expect("a header alone")
            .to_string();
        assert!(error.contains(NO_FRAME), "{error}");
    }

    #[test]
    fn the_pattern_refuses_sizes_it_cannot_draw() {
        assert!(TestPattern::new(641, 480).is_err());
        assert!(TestPattern::new(64, 48).is_err());
        assert!(TestPattern::new(8192, 4320).is_err());
        let mut pattern = TestPattern::new(640, 480).expect("vga");
        let frame = pattern.next_frame(42).expect("frame");
        let code = pattern::read_code(frame.planes().0, 640, 640, 480).expect("strip");
        assert_eq!((code.counter, code.captured_ms), (0, 42));
        let next = pattern.next_frame(43).expect("frame");
        assert_eq!(
            pattern::read_code(next.planes().0, 640, 640, 480).map(|c| c.counter),
            Some(1)
        );
    }
}
