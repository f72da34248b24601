//! The moving test pattern: colour bars that scroll, a bar sweeping across, and a burned-in
//! code strip along the top carrying the frame counter and the capture clock, so a
//! subscriber that decodes the picture can tell which frame it sees and how old it is.
//!
//! The strip is four rows of 32 blocks, black (bit 0) or white (bit 1), each block
//! `width / 32` pixels wide and high: the counter, the capture time in milliseconds since the
//! Unix epoch (high 32 bits, low 32 bits), and the counter again inverted as a check. Blocks
//! that large survive H.264 at any sane bitrate; [`read_code`] samples each block's centre.

use crate::frame::I420Frame;

/// Blocks per row of the code strip.
pub const CODE_BITS: usize = 32;
/// Rows of the code strip.
const CODE_ROWS: usize = 4;
/// Smallest picture the strip fits in legibly (4-pixel blocks).
pub const MIN_WIDTH: usize = CODE_BITS * 4;

/// What the strip of one frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnedIn {
    /// Frames since the streamer started (wraps at 2³²).
    pub counter: u32,
    /// When the frame was made, in milliseconds since the Unix epoch.
    pub captured_ms: u64,
}

/// Side of one block of the strip for a picture `width` wide.
fn block_side(width: usize) -> usize {
    (width / CODE_BITS).max(1)
}

/// Height of the strip: the part of the picture the code takes.
pub fn code_height(width: usize) -> usize {
    block_side(width) * CODE_ROWS
}

/// Draws frame `counter` of the pattern, stamped `captured_ms`, into `frame`.
pub fn draw(frame: &mut I420Frame, burned_in: BurnedIn) {
    let width = frame.width;
    let shift = burned_in.counter as usize * 4;
    // Eight vertical luma bands that scroll left, and a bright bar sweeping right.
    let bar = (burned_in.counter as usize * 8) % width.max(1);
    let (y, u, v) = frame.planes_mut();
    // Every row is the same: draw one, copy it down.
    let Some((first, rest)) = y.split_at_mut_checked(width) else {
        return;
    };
    for (col, pixel) in first.iter_mut().enumerate() {
        let band = ((col + shift) * 8 / width.max(1)) % 8;
        *pixel = if col >= bar && col < bar + width / 16 {
            235
        } else {
            40 + (band as u8) * 24
        };
    }
    for row in rest.chunks_exact_mut(width) {
        row.copy_from_slice(first);
    }
    let chroma_width = width / 2;
    for (plane, base, step) in [(u, 64u8, 16i16), (v, 192u8, -16i16)] {
        let Some((first, rest)) = plane.split_at_mut_checked(chroma_width) else {
            continue;
        };
        for (col, sample) in first.iter_mut().enumerate() {
            let band = ((col * 2 + shift) * 8 / width.max(1)) % 8;
            *sample = (i16::from(base) + step * band as i16) as u8;
        }
        for row in rest.chunks_exact_mut(chroma_width) {
            row.copy_from_slice(first);
        }
    }
    write_code(frame, burned_in);
}

fn code_words(burned_in: BurnedIn) -> [u32; CODE_ROWS] {
    [
        burned_in.counter,
        (burned_in.captured_ms >> 32) as u32,
        burned_in.captured_ms as u32,
        !burned_in.counter,
    ]
}

fn write_code(frame: &mut I420Frame, burned_in: BurnedIn) {
    let width = frame.width;
    let side = block_side(width);
    let height = frame.height;
    let (y, u, v) = frame.planes_mut();
    for (row, word) in code_words(burned_in).into_iter().enumerate() {
        for bit in 0..CODE_BITS {
            let on = (word >> (CODE_BITS - 1 - bit)) & 1 == 1;
            let luma = if on { 235 } else { 16 };
            for dy in 0..side {
                let py = row * side + dy;
                if py >= height {
                    continue;
                }
                let start = py * width + bit * side;
                y[start..start + side].fill(luma);
            }
        }
    }
    // Neutral chroma under the strip, so it reads as black and white.
    let chroma_width = width / 2;
    let strip_rows = (code_height(width) / 2).min(height / 2);
    u[..strip_rows * chroma_width].fill(128);
    v[..strip_rows * chroma_width].fill(128);
}

/// Reads the strip of a decoded picture's luma plane (`stride` bytes a row); `None` when the
/// picture is too small or the check row does not match (not a pattern frame, or mangled).
pub fn read_code(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<BurnedIn> {
    let side = block_side(width);
    if width < MIN_WIDTH || height < code_height(width) {
        return None;
    }
    let mut words = [0u32; CODE_ROWS];
    for (row, word) in words.iter_mut().enumerate() {
        for bit in 0..CODE_BITS {
            let (x, y) = (bit * side + side / 2, row * side + side / 2);
            let sample = *luma.get(y * stride + x)?;
            *word = (*word << 1) | u32::from(sample >= 128);
        }
    }
    if words[3] != !words[0] {
        return None;
    }
    Some(BurnedIn {
        counter: words[0],
        captured_ms: (u64::from(words[1]) << 32) | u64::from(words[2]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strip_reads_back_what_was_drawn() {
        for (width, height) in [(128, 96), (640, 480), (1280, 720)] {
            let mut frame = I420Frame::new(width, height);
            let stamp = BurnedIn {
                counter: 0xdead_beef,
                captured_ms: 1_796_000_000_123,
            };
            draw(&mut frame, stamp);
            let (y, _, _) = frame.planes();
            assert_eq!(
                read_code(y, width, width, height),
                Some(stamp),
                "{width}x{height}"
            );
        }
    }

    #[test]
    fn a_picture_without_the_strip_reads_as_none() {
        let frame = I420Frame::new(640, 480);
        let (y, _, _) = frame.planes();
        assert_eq!(read_code(y, 640, 640, 480), None);
        assert_eq!(read_code(&[0; 64], 8, 8, 8), None);
    }

    #[test]
    fn the_pattern_moves() {
        let mut a = I420Frame::new(320, 240);
        let mut b = I420Frame::new(320, 240);
        draw(
            &mut a,
            BurnedIn {
                counter: 1,
                captured_ms: 0,
            },
        );
        draw(
            &mut b,
            BurnedIn {
                counter: 2,
                captured_ms: 0,
            },
        );
        let below = code_height(320) * 320;
        assert_ne!(a.planes().0[below..], b.planes().0[below..]);
    }
}
