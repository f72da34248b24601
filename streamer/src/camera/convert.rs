//! The pixel formats cameras deliver (NV12, YUYV, MJPEG) and their conversion to the I420
//! the encoder takes. MJPEG goes through `zune-jpeg` (decoded to RGB, then `yuvutils-rs` to
//! BT.601 limited range, H.264's default); NV12 only needs its interleaved chroma split and
//! YUYV its luma picked and chroma of two lines averaged, plain loops the compiler vectorises
//! (yuvutils-rs 0.8.3's `yuyv422_to_yuv420` leaves the last 16 pixels of each line unwritten,
//! and takes no padded lines). Bytes in, a picture out: no device here.

use std::fmt;
use std::str::FromStr;

use yuvutils_rs::{
    rgb_to_yuv420, BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::frame::I420Frame;

/// A pixel format a camera delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 4:2:0, a Y plane then interleaved U/V (`NV12`).
    Nv12,
    /// 4:2:2 packed Y0 U Y1 V (`YUYV`, also called YUY2).
    Yuyv,
    /// Motion JPEG: one JPEG picture per frame (`MJPG`).
    Mjpeg,
}

impl PixelFormat {
    /// Every format, cheapest to convert first (the order a mode is chosen in).
    pub const ALL: [PixelFormat; 3] = [PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Mjpeg];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }

    /// The format of a four-character code, if this streamer reads it.
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        PixelFormat::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    /// Bytes of a `width`×`height` frame with `stride` bytes per line (MJPEG: variable, 0).
    pub fn frame_bytes(self, stride: usize, height: usize) -> usize {
        match self {
            PixelFormat::Nv12 => stride * height + stride * height / 2,
            PixelFormat::Yuyv => stride * height,
            PixelFormat::Mjpeg => 0,
        }
    }

    /// The smallest stride of a `width`-pixel line.
    pub fn min_stride(self, width: usize) -> usize {
        match self {
            PixelFormat::Nv12 => width,
            PixelFormat::Yuyv => width * 2,
            PixelFormat::Mjpeg => 0,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Mjpeg => "MJPEG",
        })
    }
}

/// A format name that is none of NV12, YUYV, MJPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected NV12, YUYV or MJPEG")]
pub struct UnknownPixelFormat(pub String);

impl FromStr for PixelFormat {
    type Err = UnknownPixelFormat;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_uppercase().as_str() {
            "NV12" => Ok(PixelFormat::Nv12),
            "YUYV" | "YUY2" => Ok(PixelFormat::Yuyv),
            "MJPEG" | "MJPG" => Ok(PixelFormat::Mjpeg),
            _ => Err(UnknownPixelFormat(value.to_owned())),
        }
    }
}

/// How a camera's frames are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLayout {
    /// The pixel format.
    pub format: PixelFormat,
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Bytes per line of the first plane (the driver's `bytesperline`; 0 for MJPEG).
    pub stride: usize,
}

/// Why a frame does not convert.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Fewer bytes than the layout needs (a frame cut short).
    #[error("a {format} {width}x{height} frame needs {needed} bytes, got {got}")]
    Short {
        /// The format.
        format: PixelFormat,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The layout itself cannot be right (odd size, stride shorter than a line).
    #[error("a {format} {width}x{height} layout with {stride} bytes per line is not usable")]
    Layout {
        /// The format.
        format: PixelFormat,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Bytes per line.
        stride: usize,
    },
    /// An MJPEG frame that does not decode.
    #[error("an MJPEG frame does not decode: {0:?}")]
    Jpeg(zune_jpeg::errors::DecodeErrors),
    /// An MJPEG frame of another size than the camera's format.
    #[error("an MJPEG frame is {got_width}x{got_height}, the camera said {width}x{height}")]
    JpegSize {
        /// Width expected.
        width: usize,
        /// Height expected.
        height: usize,
        /// Width decoded.
        got_width: usize,
        /// Height decoded.
        got_height: usize,
    },
    /// The colour conversion refused its planes.
    #[error("colour conversion: {0}")]
    Yuv(#[from] yuvutils_rs::YuvError),
}

/// Converts one camera's frames into I420, reusing its buffers from frame to frame.
pub struct Converter {
    layout: RawLayout,
    /// MJPEG's decoded RGB.
    scratch: Vec<u8>,
}

impl Converter {
    /// A converter for frames laid out as `layout`.
    pub fn new(layout: RawLayout) -> Result<Self, ConvertError> {
        let RawLayout {
            format,
            width,
            height,
            stride,
        } = layout;
        let usable = width > 0
            && height > 0
            && width.is_multiple_of(2)
            && height.is_multiple_of(2)
            && (format == PixelFormat::Mjpeg || stride >= format.min_stride(width));
        if !usable {
            return Err(ConvertError::Layout {
                format,
                width,
                height,
                stride,
            });
        }
        Ok(Converter {
            layout,
            scratch: Vec::new(),
        })
    }

    /// Converts `data` (one frame, as many bytes as the camera used) into `out`, which is
    /// resized to the layout's size when it differs.
    pub fn to_i420(&mut self, data: &[u8], out: &mut I420Frame) -> Result<(), ConvertError> {
        let RawLayout {
            format,
            width,
            height,
            stride,
        } = self.layout;
        if out.width != width || out.height != height {
            *out = I420Frame::new(width, height);
        }
        let needed = format.frame_bytes(stride, height);
        if data.len() < needed {
            return Err(ConvertError::Short {
                format,
                width,
                height,
                needed,
                got: data.len(),
            });
        }
        match format {
            PixelFormat::Nv12 => {
                nv12_to_i420(data, width, height, stride, out);
                Ok(())
            }
            PixelFormat::Yuyv => {
                yuyv_to_i420(data, width, height, stride, out);
                Ok(())
            }
            PixelFormat::Mjpeg => self.mjpeg_to_i420(data, out),
        }
    }

    fn mjpeg_to_i420(&mut self, data: &[u8], out: &mut I420Frame) -> Result<(), ConvertError> {
        let (width, height) = (self.layout.width, self.layout.height);
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
        decoder.decode_headers().map_err(ConvertError::Jpeg)?;
        let (got_width, got_height) = decoder.dimensions().unwrap_or((0, 0));
        if (got_width, got_height) != (width, height) {
            return Err(ConvertError::JpegSize {
                width,
                height,
                got_width,
                got_height,
            });
        }
        self.scratch.resize(width * height * 3, 0);
        decoder
            .decode_into(&mut self.scratch)
            .map_err(ConvertError::Jpeg)?;
        rgb_to_yuv420(
            &mut planar(out),
            &self.scratch,
            (width * 3) as u32,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )?;
        Ok(())
    }
}

/// `out`'s planes as yuvutils' planar image.
fn planar(out: &mut I420Frame) -> YuvPlanarImageMut<'_, u8> {
    let (width, height) = (out.width as u32, out.height as u32);
    let (y, u, v) = out.planes_mut();
    YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: width,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: width / 2,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: width / 2,
        width,
        height,
    }
}

/// NV12 → I420: the Y plane as it is, the interleaved chroma split into U and V.
fn nv12_to_i420(data: &[u8], width: usize, height: usize, stride: usize, out: &mut I420Frame) {
    let (y, u, v) = out.planes_mut();
    for (row, line) in y.chunks_exact_mut(width).enumerate() {
        line.copy_from_slice(&data[row * stride..row * stride + width]);
    }
    let chroma = &data[stride * height..];
    let half = width / 2;
    for row in 0..height / 2 {
        let pairs = &chroma[row * stride..row * stride + width];
        let (u_line, v_line) = (
            &mut u[row * half..(row + 1) * half],
            &mut v[row * half..(row + 1) * half],
        );
        for ((pair, u), v) in pairs.chunks_exact(2).zip(u_line).zip(v_line) {
            *u = pair[0];
            *v = pair[1];
        }
    }
}

/// YUYV → I420: every other byte is luma; U and V of two lines are averaged.
fn yuyv_to_i420(data: &[u8], width: usize, height: usize, stride: usize, out: &mut I420Frame) {
    let (y, u, v) = out.planes_mut();
    let half = width / 2;
    for row in 0..height / 2 {
        let top = &data[2 * row * stride..][..width * 2];
        let bottom = &data[(2 * row + 1) * stride..][..width * 2];
        for (line, packed) in [(2 * row, top), (2 * row + 1, bottom)] {
            for (luma, pair) in y[line * width..(line + 1) * width]
                .iter_mut()
                .zip(packed.chunks_exact(2))
            {
                *luma = pair[0];
            }
        }
        let (u_line, v_line) = (
            &mut u[row * half..(row + 1) * half],
            &mut v[row * half..(row + 1) * half],
        );
        for (((t, b), u), v) in top
            .chunks_exact(4)
            .zip(bottom.chunks_exact(4))
            .zip(u_line)
            .zip(v_line)
        {
            *u = (u16::from(t[1]) + u16::from(b[1])).div_ceil(2) as u8;
            *v = (u16::from(t[3]) + u16::from(b[3])).div_ceil(2) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synthetic::camera_frame;
    use crate::pattern::{self, BurnedIn};

    /// A test-pattern picture with its burned-in counter and clock.
    fn picture(width: usize, height: usize, captured_ms: u64) -> I420Frame {
        let mut frame = I420Frame::new(width, height);
        pattern::draw(
            &mut frame,
            BurnedIn {
                counter: 7,
                captured_ms,
            },
        );
        frame
    }

    fn captured_ms(frame: &I420Frame) -> Option<u64> {
        pattern::read_code(frame.planes().0, frame.width, frame.width, frame.height)
            .map(|code| code.captured_ms)
    }

    fn max_difference(a: &[u8], b: &[u8]) -> u8 {
        a.iter()
            .zip(b)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn nv12_converts_exactly_and_keeps_the_burned_in_code() {
        let frame = picture(320, 240, 1_234_567);
        // Drivers pad lines.
        let (layout, data) = camera_frame(&frame, PixelFormat::Nv12, 384, 0).expect("nv12");
        assert_eq!(layout.stride, 384);
        let mut converter = Converter::new(layout).expect("layout");
        let mut out = I420Frame::new(2, 2);
        converter.to_i420(&data, &mut out).expect("converts");
        assert_eq!(out, frame);
        assert_eq!(captured_ms(&out), Some(1_234_567));
    }

    #[test]
    fn yuyv_converts_and_keeps_the_burned_in_code() {
        let frame = picture(320, 240, 7_654_321);
        let (layout, data) = camera_frame(&frame, PixelFormat::Yuyv, 640 + 64, 0).expect("yuyv");
        let mut converter = Converter::new(layout).expect("layout");
        let mut out = I420Frame::new(320, 240);
        converter.to_i420(&data, &mut out).expect("converts");
        // Luma is copied; chroma comes back from two equal lines.
        let first_difference = out
            .planes()
            .0
            .iter()
            .zip(frame.planes().0)
            .position(|(a, b)| a != b);
        assert_eq!(first_difference, None);
        assert!(max_difference(out.planes().1, frame.planes().1) <= 1);
        assert!(max_difference(out.planes().2, frame.planes().2) <= 1);
        assert_eq!(captured_ms(&out), Some(7_654_321));
    }

    #[test]
    fn mjpeg_decodes_to_the_same_picture_within_jpeg_loss() {
        let frame = picture(320, 240, 42_000);
        let (layout, jpeg) = camera_frame(&frame, PixelFormat::Mjpeg, 0, 95).expect("jpeg");
        let mut converter = Converter::new(layout).expect("layout");
        let mut out = I420Frame::new(320, 240);
        converter.to_i420(&jpeg, &mut out).expect("decodes");
        let luma_error = out
            .planes()
            .0
            .iter()
            .zip(frame.planes().0)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum::<u64>()
            / (320 * 240);
        assert!(luma_error <= 3, "mean luma error {luma_error}");
        assert_eq!(captured_ms(&out), Some(42_000));

        // A JPEG of another size and garbage are refused; a truncated one is decoded as far
        // as it goes (zune-jpeg fills the rest) or refused, never panicked on.
        let mut other = Converter::new(RawLayout {
            width: 640,
            height: 480,
            ..layout
        })
        .expect("layout");
        let error = other.to_i420(&jpeg, &mut out).expect_err("wrong size");
        assert!(error.to_string().contains("is 320x240"), "{error}");
        for cut in [jpeg.len() / 3, 200, 20] {
            let _ = converter.to_i420(&jpeg[..cut], &mut out);
        }
        assert!(converter.to_i420(b"not a jpeg at all", &mut out).is_err());
        assert!(converter.to_i420(&[], &mut out).is_err());
    }

    #[test]
    fn short_frames_and_impossible_layouts_are_refused() {
        let mut converter = Converter::new(RawLayout {
            format: PixelFormat::Yuyv,
            width: 64,
            height: 32,
            stride: 128,
        })
        .expect("layout");
        let mut out = I420Frame::new(64, 32);
        let error = converter.to_i420(&[0u8; 100], &mut out).expect_err("short");
        assert!(
            error.to_string().contains("needs 4096 bytes, got 100"),
            "{error}"
        );
        for (format, width, height, stride) in [
            (PixelFormat::Nv12, 63, 32, 64),
            (PixelFormat::Nv12, 64, 32, 60),
            (PixelFormat::Yuyv, 64, 32, 64),
            (PixelFormat::Mjpeg, 0, 0, 0),
        ] {
            assert!(Converter::new(RawLayout {
                format,
                width,
                height,
                stride
            })
            .is_err());
        }
    }

    #[test]
    fn format_names_parse_and_round_trip_their_codes() {
        assert_eq!("nv12".parse(), Ok(PixelFormat::Nv12));
        assert_eq!("YUY2".parse(), Ok(PixelFormat::Yuyv));
        assert_eq!("MJPG".parse(), Ok(PixelFormat::Mjpeg));
        assert!("H264".parse::<PixelFormat>().is_err());
        for format in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(format.fourcc()), Some(format));
        }
        assert_eq!(PixelFormat::from_fourcc(*b"RGB3"), None);
    }
}
