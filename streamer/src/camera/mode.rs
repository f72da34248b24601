//! Which capture mode to ask a camera for, from what it offers: the size asked for exactly,
//! a format this streamer converts (the one asked for, else the cheapest to convert), and
//! the frame rate asked for where the camera reaches it (else its fastest, said by the
//! caller). Also the one-line descriptions `videocall-streamer devices` prints. Pure: the
//! offers are data, read from a device elsewhere.

use std::fmt::Write as _;

use super::convert::PixelFormat;

/// Frame sizes a camera offers for one format.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeOffer {
    /// Exactly this size.
    Discrete {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Any size in these ranges, on these steps (cameras behind a scaler, e.g. a Pi's).
    Stepwise {
        /// Smallest width.
        min_width: u32,
        /// Largest width.
        max_width: u32,
        /// Width step.
        step_width: u32,
        /// Smallest height.
        min_height: u32,
        /// Largest height.
        max_height: u32,
        /// Height step.
        step_height: u32,
    },
}

impl SizeOffer {
    /// Whether `width`×`height` is one of the sizes offered.
    pub fn fits(&self, width: u32, height: u32) -> bool {
        let on_step = |value: u32, min: u32, max: u32, step: u32| {
            (min..=max).contains(&value) && (value - min).is_multiple_of(step.max(1))
        };
        match *self {
            SizeOffer::Discrete {
                width: w,
                height: h,
            } => (w, h) == (width, height),
            SizeOffer::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => {
                on_step(width, min_width, max_width, step_width)
                    && on_step(height, min_height, max_height, step_height)
            }
        }
    }

    fn describe(&self) -> String {
        match *self {
            SizeOffer::Discrete { width, height } => format!("{width}x{height}"),
            SizeOffer::Stepwise {
                min_width,
                max_width,
                min_height,
                max_height,
                ..
            } => format!("{min_width}x{min_height} to {max_width}x{max_height}"),
        }
    }
}

/// Frame rates a camera offers for one format and size.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameRates {
    /// These rates (frames per second).
    Discrete(Vec<f64>),
    /// Any rate between these.
    Range {
        /// Slowest.
        min: f64,
        /// Fastest.
        max: f64,
    },
    /// The driver does not say (it then takes what it is asked for, or the nearest).
    Unknown,
}

impl FrameRates {
    /// The fastest rate offered (`None` when unknown).
    pub fn fastest(&self) -> Option<f64> {
        match self {
            FrameRates::Discrete(rates) => rates.iter().copied().reduce(f64::max),
            FrameRates::Range { max, .. } => Some(*max),
            FrameRates::Unknown => None,
        }
    }

    fn reaches(&self, fps: u32) -> bool {
        // A camera's 29.97 counts as 30.
        self.fastest()
            .is_none_or(|fastest| fastest + 0.5 >= f64::from(fps))
    }

    fn describe(&self) -> String {
        let round = |fps: f64| {
            if (fps - fps.round()).abs() < 0.01 {
                format!("{}", fps.round())
            } else {
                format!("{fps:.2}")
            }
        };
        match self {
            FrameRates::Discrete(rates) if !rates.is_empty() => {
                let mut rates = rates.clone();
                rates.sort_by(|a, b| b.total_cmp(a));
                rates.dedup();
                let list: Vec<_> = rates.into_iter().map(round).collect();
                format!("{} fps", list.join("/"))
            }
            FrameRates::Range { min, max } => format!("{}-{} fps", round(*min), round(*max)),
            _ => "fps not reported".to_owned(),
        }
    }
}

/// One format a camera offers, with its sizes and their frame rates.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatOffer {
    /// The four-character code.
    pub fourcc: [u8; 4],
    /// The driver's description.
    pub description: String,
    /// Sizes and their rates.
    pub sizes: Vec<(SizeOffer, FrameRates)>,
}

impl FormatOffer {
    /// The format, if this streamer reads it.
    pub fn format(&self) -> Option<PixelFormat> {
        PixelFormat::from_fourcc(self.fourcc)
    }

    /// The four-character code as text.
    pub fn code(&self) -> String {
        String::from_utf8_lossy(&self.fourcc).trim_end().to_owned()
    }

    /// One line: the code, whether it is usable, then every size with its rates.
    pub fn describe(&self) -> String {
        let mut line = format!("{:<5}", self.code());
        if self.format().is_none() {
            line.push_str(" (not used by this streamer)");
        }
        let sizes: Vec<_> = self
            .sizes
            .iter()
            .map(|(size, rates)| format!("{} @ {}", size.describe(), rates.describe()))
            .collect();
        let _ = write!(line, " {}", sizes.join(", "));
        line
    }
}

/// What the streamer asks of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// This format only (`--frame-format`), else any this streamer reads.
    pub format: Option<PixelFormat>,
}

/// The mode to ask the camera for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChosenMode {
    /// Format.
    pub format: PixelFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The frame rate to ask for: the one wanted, or the camera's fastest when slower.
    pub fps: u32,
}

/// Why no mode fits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModeError {
    /// The camera offers no format this streamer reads.
    #[error(
        "unsupported format: the camera offers {offered}, this streamer reads NV12, YUYV or MJPEG"
    )]
    NoUsableFormat {
        /// What it offers.
        offered: String,
    },
    /// The format asked for is not offered.
    #[error("unsupported format {format}: the camera offers {offered}")]
    FormatNotOffered {
        /// Asked for.
        format: PixelFormat,
        /// What it offers.
        offered: String,
    },
    /// No usable format offers the size.
    #[error("unsupported resolution {width}x{height}: the camera offers {offered}")]
    Size {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// The sizes of the usable formats.
        offered: String,
    },
}

/// The mode for `wanted` among `offers`.
pub fn choose_mode(offers: &[FormatOffer], wanted: Wanted) -> Result<ChosenMode, ModeError> {
    let codes = || {
        let codes: Vec<_> = offers.iter().map(FormatOffer::code).collect();
        if codes.is_empty() {
            "no formats".to_owned()
        } else {
            codes.join(", ")
        }
    };
    let usable: Vec<(PixelFormat, &FormatOffer)> = PixelFormat::ALL
        .into_iter()
        .filter(|format| wanted.format.is_none_or(|w| w == *format))
        .filter_map(|format| {
            offers
                .iter()
                .find(|o| o.format() == Some(format))
                .map(|o| (format, o))
        })
        .collect();
    if usable.is_empty() {
        return Err(match wanted.format {
            Some(format) => ModeError::FormatNotOffered {
                format,
                offered: codes(),
            },
            None => ModeError::NoUsableFormat { offered: codes() },
        });
    }
    let fitting: Vec<(PixelFormat, &FrameRates)> = usable
        .iter()
        .flat_map(|(format, offer)| {
            offer
                .sizes
                .iter()
                .filter(|(size, _)| size.fits(wanted.width, wanted.height))
                .map(move |(_, rates)| (*format, rates))
        })
        .collect();
    let chosen = |format, fps| ChosenMode {
        format,
        width: wanted.width,
        height: wanted.height,
        fps,
    };
    // The cheapest format that reaches the rate; else the fastest of any.
    if let Some((format, _)) = fitting.iter().find(|(_, rates)| rates.reaches(wanted.fps)) {
        return Ok(chosen(*format, wanted.fps));
    }
    if let Some((format, rates)) = fitting.iter().max_by(|a, b| {
        let fastest = |rates: &FrameRates| rates.fastest().unwrap_or(0.0);
        fastest(a.1).total_cmp(&fastest(b.1))
    }) {
        let fps = rates.fastest().unwrap_or(1.0).round().max(1.0) as u32;
        return Ok(chosen(*format, fps));
    }
    let offered: Vec<_> = usable
        .iter()
        .map(|(format, offer)| {
            let sizes: Vec<_> = offer.sizes.iter().map(|(s, _)| s.describe()).collect();
            format!("{format} {}", sizes.join(" "))
        })
        .collect();
    Err(ModeError::Size {
        width: wanted.width,
        height: wanted.height,
        offered: offered.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discrete(width: u32, height: u32, rates: &[f64]) -> (SizeOffer, FrameRates) {
        (
            SizeOffer::Discrete { width, height },
            FrameRates::Discrete(rates.to_vec()),
        )
    }

    /// A typical USB webcam: YUYV is slow at large sizes (USB 2 bandwidth), MJPEG is not.
    fn usb_webcam() -> Vec<FormatOffer> {
        vec![
            FormatOffer {
                fourcc: *b"YUYV",
                description: "YUYV 4:2:2".into(),
                sizes: vec![
                    discrete(640, 480, &[30.0, 15.0]),
                    discrete(1280, 720, &[10.0, 5.0]),
                ],
            },
            FormatOffer {
                fourcc: *b"MJPG",
                description: "Motion-JPEG".into(),
                sizes: vec![
                    discrete(640, 480, &[30.0]),
                    discrete(1280, 720, &[30.0, 15.0]),
                    discrete(1920, 1080, &[30.0]),
                ],
            },
        ]
    }

    /// A camera behind a scaler (a Pi's): any even size up to 2592x1944.
    fn pi_sizes() -> SizeOffer {
        SizeOffer::Stepwise {
            min_width: 32,
            max_width: 2592,
            step_width: 2,
            min_height: 32,
            max_height: 1944,
            step_height: 2,
        }
    }

    fn want(width: u32, height: u32, fps: u32) -> Wanted {
        Wanted {
            width,
            height,
            fps,
            format: None,
        }
    }

    fn want_format(format: PixelFormat, width: u32, height: u32, fps: u32) -> Wanted {
        Wanted {
            format: Some(format),
            ..want(width, height, fps)
        }
    }

    #[test]
    fn the_cheapest_format_that_reaches_the_rate_is_chosen() {
        let offers = usb_webcam();
        let mode = choose_mode(&offers, want(640, 480, 30)).expect("fits");
        assert_eq!((mode.format, mode.fps), (PixelFormat::Yuyv, 30));
        // YUYV does 720p only at 10 fps: MJPEG reaches 30.
        let mode = choose_mode(&offers, want(1280, 720, 30)).expect("fits");
        assert_eq!((mode.format, mode.fps), (PixelFormat::Mjpeg, 30));
        // Asked for YUYV at 720p30: the camera's fastest, 10 fps.
        let mode =
            choose_mode(&offers, want_format(PixelFormat::Yuyv, 1280, 720, 30)).expect("fits");
        assert_eq!((mode.format, mode.fps), (PixelFormat::Yuyv, 10));
        // 29.97 is 30.
        let ntsc = [FormatOffer {
            fourcc: *b"NV12",
            description: String::new(),
            sizes: vec![discrete(1280, 720, &[29.97])],
        }];
        let mode = choose_mode(&ntsc, want(1280, 720, 30)).expect("fits");
        assert_eq!((mode.format, mode.fps), (PixelFormat::Nv12, 30));
    }

    #[test]
    fn a_scaling_camera_takes_sizes_on_its_steps() {
        let pi = [FormatOffer {
            fourcc: *b"NV12",
            description: "Y/CbCr 4:2:0".into(),
            sizes: vec![(
                pi_sizes(),
                FrameRates::Range {
                    min: 1.0,
                    max: 90.0,
                },
            )],
        }];
        let mode = choose_mode(&pi, want(1280, 720, 30)).expect("fits");
        assert_eq!(mode.format, PixelFormat::Nv12);
        assert!(choose_mode(&pi, want(1281, 720, 30)).is_err());
        assert!(choose_mode(&pi, want(4096, 2160, 30)).is_err());
    }

    #[test]
    fn what_does_not_fit_says_what_the_camera_offers() {
        let offers = usb_webcam();
        let error = choose_mode(&offers, want(800, 600, 30)).expect_err("no such size");
        assert_eq!(
            error.to_string(),
            "unsupported resolution 800x600: the camera offers \
             YUYV 640x480 1280x720; MJPEG 640x480 1280x720 1920x1080"
        );
        let error = choose_mode(&offers, want_format(PixelFormat::Nv12, 640, 480, 30))
            .expect_err("no NV12");
        assert_eq!(
            error.to_string(),
            "unsupported format NV12: the camera offers YUYV, MJPG"
        );
        let bayer = [FormatOffer {
            fourcc: *b"BA81",
            description: "8-bit Bayer BGBG/GRGR".into(),
            sizes: vec![discrete(640, 480, &[30.0])],
        }];
        let error = choose_mode(&bayer, want(640, 480, 30)).expect_err("unusable");
        assert!(error
            .to_string()
            .starts_with("unsupported format: the camera offers BA81"));
        assert!(choose_mode(&[], want(640, 480, 30)).is_err());
    }

    #[test]
    fn offers_describe_themselves_on_one_line() {
        let offers = usb_webcam();
        assert_eq!(
            offers[0].describe(),
            "YUYV  640x480 @ 30/15 fps, 1280x720 @ 10/5 fps"
        );
        let odd = FormatOffer {
            fourcc: *b"BA81",
            description: String::new(),
            sizes: vec![(pi_sizes(), FrameRates::Unknown)],
        };
        assert_eq!(
            odd.describe(),
            "BA81  (not used by this streamer) 32x32 to 2592x1944 @ fps not reported"
        );
    }
}
