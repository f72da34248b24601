//! Frames laid out as a camera delivers them (NV12, YUYV, MJPEG), made from I420 pictures:
//! what the conversion tests and `streamer-bench` feed the converter where no camera is.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use yuvutils_rs::{
    yuv420_to_rgb, yuv420_to_yuyv422, BufferStoreMut, YuvPackedImageMut, YuvPlanarImage, YuvRange,
    YuvStandardMatrix,
};

use super::convert::{PixelFormat, RawLayout};
use crate::frame::I420Frame;

/// Why a camera frame cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// Colour conversion failed.
    #[error("colour conversion: {0}")]
    Yuv(#[from] yuvutils_rs::YuvError),
    /// JPEG encoding failed.
    #[error("JPEG encoding: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
}

/// `frame` in `layout`'s format (its size is `frame`'s; `stride` pads lines; a JPEG at
/// `quality` with 4:2:2 chroma, as webcams send).
pub fn camera_frame(
    frame: &I420Frame,
    format: PixelFormat,
    stride: usize,
    quality: u8,
) -> Result<(RawLayout, Vec<u8>), SyntheticError> {
    let (width, height) = (frame.width, frame.height);
    let stride = stride.max(format.min_stride(width));
    let layout = RawLayout {
        format,
        width,
        height,
        stride: if format == PixelFormat::Mjpeg {
            0
        } else {
            stride
        },
    };
    let (y, u, v) = frame.planes();
    let planar = YuvPlanarImage {
        y_plane: y,
        y_stride: width as u32,
        u_plane: u,
        u_stride: (width / 2) as u32,
        v_plane: v,
        v_stride: (width / 2) as u32,
        width: width as u32,
        height: height as u32,
    };
    let data = match format {
        PixelFormat::Nv12 => {
            let mut data = vec![0u8; format.frame_bytes(stride, height)];
            for row in 0..height {
                data[row * stride..row * stride + width]
                    .copy_from_slice(&y[row * width..(row + 1) * width]);
            }
            let half = width / 2;
            for row in 0..height / 2 {
                let line = &mut data[stride * height + row * stride..][..width];
                for (col, pair) in line.chunks_exact_mut(2).enumerate() {
                    pair[0] = u[row * half + col];
                    pair[1] = v[row * half + col];
                }
            }
            data
        }
        PixelFormat::Yuyv => {
            let line = format.min_stride(width);
            let mut packed_lines = vec![0u8; line * height];
            let mut packed = YuvPackedImageMut {
                yuy: BufferStoreMut::Borrowed(&mut packed_lines),
                yuy_stride: line as u32,
                width: width as u32,
                height: height as u32,
            };
            yuv420_to_yuyv422(&mut packed, &planar)?;
            // Padded lines, as some drivers lay them out.
            let mut data = vec![0u8; format.frame_bytes(stride, height)];
            for (row, packed) in packed_lines.chunks_exact(line).enumerate() {
                data[row * stride..row * stride + line].copy_from_slice(packed);
            }
            data
        }
        PixelFormat::Mjpeg => {
            let mut rgb = vec![0u8; width * height * 3];
            yuv420_to_rgb(
                &planar,
                &mut rgb,
                (width * 3) as u32,
                YuvRange::Limited,
                YuvStandardMatrix::Bt601,
            )?;
            let mut jpeg = Vec::new();
            let mut encoder = Encoder::new(&mut jpeg, quality);
            encoder.set_sampling_factor(SamplingFactor::R_4_2_2);
            encoder.encode(&rgb, width as u16, height as u16, ColorType::Rgb)?;
            jpeg
        }
    };
    Ok((layout, data))
}
