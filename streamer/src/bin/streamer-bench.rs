//! `streamer-bench`: how fast the streamer's pipeline runs on this machine, stage by stage,
//! with the encoder on one thread: make the test-pattern picture, encode it to H.264 at the
//! streamer's settings; then the colour conversion a camera's frames need (NV12, YUYV and
//! MJPEG to I420, from the same picture laid out as a camera sends it); then `--audio`'s Opus
//! encoding of 20 ms frames. Prints one row per resolution (a benchmark, not a test: run it on a
//! quiet machine, `cargo run --release -p videocall-streamer --bin streamer-bench`).

use std::time::{Duration, Instant};

use clap::Parser;
use videocall_streamer::audio::opus::OpusEncoder;
use videocall_streamer::audio::tone::{TestTone, TEST_TONE_HZ};
use videocall_streamer::audio::{AudioSource, FRAME_SAMPLES};
use videocall_streamer::camera::synthetic::camera_frame;
use videocall_streamer::camera::{Converter, PixelFormat};
use videocall_streamer::config::Resolution;
use videocall_streamer::encode::{EncodeSettings, H264Encoder};
use videocall_streamer::frame::I420Frame;
use videocall_streamer::source::{FrameSource, TestPattern};

#[derive(Parser)]
#[command(about)]
struct Args {
    /// Picture sizes to measure.
    #[arg(
        long,
        env = "STREAMER_BENCH_RESOLUTIONS",
        value_delimiter = ',',
        default_value = "640x480,1280x720,1920x1080"
    )]
    resolutions: Vec<Resolution>,
    /// Frames per resolution.
    #[arg(long, env = "STREAMER_BENCH_FRAMES", default_value_t = 300)]
    frames: u32,
    /// Bitrate, kbit/s.
    #[arg(long, env = "STREAMER_BENCH_BITRATE_KBPS", default_value_t = 2000)]
    bitrate_kbps: u32,
    /// Encoder threads.
    #[arg(long, env = "STREAMER_BENCH_THREADS", default_value_t = 1)]
    threads: u16,
}

fn ms(duration: Duration, frames: u32) -> f64 {
    duration.as_secs_f64() * 1000.0 / f64::from(frames.max(1))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "{:>10} {:>7} {:>10} {:>10} {:>10} {:>9} {:>11} {:>9}",
        "size", "frames", "make ms", "encode ms", "p99 enc", "fps", "x realtime", "kbit/s"
    );
    for size in &args.resolutions {
        let mut source = TestPattern::new(size.width, size.height)?;
        let mut encoder = H264Encoder::new(EncodeSettings {
            bitrate_bps: args.bitrate_kbps * 1000,
            fps: 30.0,
            keyframe_interval: 150,
            threads: args.threads,
        })?;
        let (mut making, mut encoding, mut bytes) = (Duration::ZERO, Duration::ZERO, 0usize);
        let mut per_frame = Vec::with_capacity(args.frames as usize);
        for n in 0..args.frames {
            let started = Instant::now();
            let picture = source.next_frame(u64::from(n) * 33)?;
            let made = Instant::now();
            if let Some(frame) = encoder.encode(&picture)? {
                bytes += frame.data.len();
            }
            let encoded = made.elapsed();
            making += made - started;
            encoding += encoded;
            per_frame.push(encoded);
        }
        per_frame.sort_unstable();
        let p99 = per_frame[(per_frame.len() * 99 / 100).min(per_frame.len() - 1)];
        let total = making + encoding;
        let fps = f64::from(args.frames) / total.as_secs_f64();
        println!(
            "{:>10} {:>7} {:>10.2} {:>10.2} {:>9.2} {:>9.1} {:>11.1} {:>9.0}",
            format!("{}x{}", size.width, size.height),
            args.frames,
            ms(making, args.frames),
            ms(encoding, args.frames),
            p99.as_secs_f64() * 1000.0,
            fps,
            fps / 30.0,
            bytes as f64 * 8.0 / 1000.0 / (f64::from(args.frames) / 30.0),
        );
    }
    println!();
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>12}",
        "size", "NV12 ms", "YUYV ms", "MJPEG ms", "MJPEG KiB"
    );
    for size in &args.resolutions {
        let picture = TestPattern::new(size.width, size.height)?.next_frame(0)?;
        let mut row = format!("{:>10}", format!("{}x{}", size.width, size.height));
        let mut jpeg_bytes = 0;
        for format in PixelFormat::ALL {
            let (layout, data) = camera_frame(&picture, format, 0, 85)?;
            if format == PixelFormat::Mjpeg {
                jpeg_bytes = data.len();
            }
            let mut converter = Converter::new(layout)?;
            let mut out = I420Frame::new(size.width, size.height);
            let started = Instant::now();
            for _ in 0..args.frames {
                converter.to_i420(&data, &mut out)?;
            }
            row.push_str(&format!(" {:>10.3}", ms(started.elapsed(), args.frames)));
        }
        println!("{row} {:>12.0}", jpeg_bytes as f64 / 1024.0);
    }
    println!();
    opus_row(args.frames.max(500))
}

/// `--audio`'s cost: the test tone (or a microphone's samples) to Opus, 20 ms a frame.
fn opus_row(frames: u32) -> anyhow::Result<()> {
    let mut tone = TestTone::new(TEST_TONE_HZ);
    let mut encoder = OpusEncoder::new(32_000)?;
    let mut frame = vec![0.0f32; FRAME_SAMPLES];
    let (mut encoding, mut bytes) = (Duration::ZERO, 0usize);
    for _ in 0..frames {
        tone.read(&mut frame)?;
        let started = Instant::now();
        bytes += encoder.encode(&frame)?.len();
        encoding += started.elapsed();
    }
    let per_frame = ms(encoding, frames);
    println!(
        "{:>10} {:>7} {:>10} {:>11} {:>9}",
        "sound", "frames", "opus ms", "x realtime", "kbit/s"
    );
    println!(
        "{:>10} {frames:>7} {per_frame:>10.3} {:>11.0} {:>9.1}",
        "48k mono",
        20.0 / per_frame,
        bytes as f64 * 8.0 / (f64::from(frames) * 0.02) / 1000.0
    );
    Ok(())
}
