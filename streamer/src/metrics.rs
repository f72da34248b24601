//! The streamer's Prometheus metrics: frames through each stage, encode time, bytes sent,
//! sound frames, reconnects, and whether it is in the meeting.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric the streamer exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Pictures taken from the source.
    pub frames_captured: IntCounter,
    /// Pictures the encoder turned into H.264.
    pub frames_encoded: IntCounter,
    /// Encoded frames handed to the relay.
    pub frames_sent: IntCounter,
    /// Frames lost, by reason (`send_queue_full`, `not_connected`, `source_late`,
    /// `encoder_skipped`, `audio_queue_full`, `audio_not_connected`).
    pub frames_dropped: IntCounterVec,
    /// Keyframes encoded.
    pub keyframes: IntCounter,
    /// Encoded bytes handed to the relay (the bitrate is its rate).
    pub bytes_sent: IntCounter,
    /// Seconds per encoded frame.
    pub encode_seconds: Histogram,
    /// 20 ms sound frames encoded to Opus (`--audio`).
    pub audio_frames_encoded: IntCounter,
    /// Opus packets handed to the relay.
    pub audio_packets_sent: IntCounter,
    /// Sessions joined again after a loss.
    pub reconnects: IntCounter,
    /// Sessions lost with their relay.
    pub relay_losses: IntCounter,
    /// 1 while joined to a relay.
    pub connected: IntGauge,
}

/// A metric could not be registered (a bug: names are fixed).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, MetricsError> {
        // Every component's metrics share the `videocall_` prefix.
        let registry = Registry::new_custom(Some("videocall_streamer".into()), None)?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let metrics = Metrics {
            frames_captured: counter("frames_captured_total", "Pictures taken from the source")?,
            frames_encoded: counter("frames_encoded_total", "Pictures encoded to H.264")?,
            frames_sent: counter("frames_sent_total", "Encoded frames handed to the relay")?,
            keyframes: counter("keyframes_total", "Keyframes encoded")?,
            bytes_sent: counter("sent_bytes_total", "Encoded bytes handed to the relay")?,
            audio_frames_encoded: counter(
                "audio_frames_encoded_total",
                "20 ms sound frames encoded to Opus",
            )?,
            audio_packets_sent: counter(
                "audio_packets_sent_total",
                "Opus packets handed to the relay",
            )?,
            reconnects: counter("reconnects_total", "Sessions joined again after a loss")?,
            relay_losses: counter(
                "relay_losses_total",
                "Sessions lost with their relay (each followed by rejoining)",
            )?,
            frames_dropped: IntCounterVec::new(
                Opts::new("frames_dropped_total", "Frames lost, by reason"),
                &["reason"],
            )?,
            encode_seconds: Histogram::with_opts(
                HistogramOpts::new("encode_seconds", "Seconds per encoded frame").buckets(vec![
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25,
                ]),
            )?,
            connected: IntGauge::new("connected", "1 while joined to a relay")?,
            registry: registry.clone(),
        };
        registry.register(Box::new(metrics.frames_dropped.clone()))?;
        registry.register(Box::new(metrics.encode_seconds.clone()))?;
        registry.register(Box::new(metrics.connected.clone()))?;
        Ok(metrics)
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails for invalid metric families, which are never built.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
