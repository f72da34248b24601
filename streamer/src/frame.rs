//! A picture in I420 (planar Y, then U and V at half resolution), as the encoder takes it.

use openh264::formats::YUVSource;

/// One I420 picture; width and height are even.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    data: Vec<u8>,
}

impl I420Frame {
    /// A black picture (sizes rounded down to even).
    pub fn new(width: usize, height: usize) -> Self {
        let (width, height) = (width & !1, height & !1);
        let luma = width * height;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        I420Frame {
            width,
            height,
            data,
        }
    }

    /// A picture from its three planes, copied; `None` when a plane has the wrong size.
    pub fn from_planes(width: usize, height: usize, y: &[u8], u: &[u8], v: &[u8]) -> Option<Self> {
        let luma = width * height;
        if !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
            || y.len() != luma
            || u.len() != luma / 4
            || v.len() != luma / 4
        {
            return None;
        }
        let mut data = Vec::with_capacity(luma + luma / 2);
        data.extend_from_slice(y);
        data.extend_from_slice(u);
        data.extend_from_slice(v);
        Some(I420Frame {
            width,
            height,
            data,
        })
    }

    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width * self.height;
        let (y, chroma) = self.data.split_at(luma);
        let (u, v) = chroma.split_at(luma / 4);
        (y, u, v)
    }

    /// The Y, U and V planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let (y, chroma) = self.data.split_at_mut(luma);
        let (u, v) = chroma.split_at_mut(luma / 4);
        (y, u, v)
    }
}

impl YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        self.planes().0
    }

    fn u(&self) -> &[u8] {
        self.planes().1
    }

    fn v(&self) -> &[u8] {
        self.planes().2
    }
}
