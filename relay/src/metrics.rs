//! Prometheus metrics of one relay, in a registry of its own (several relays may share a process).
//! A leaf beside `ids` and `reason`: every layer counts here, none of them is imported.

use std::time::Instant;

use prometheus::local::{LocalHistogram, LocalIntCounter};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::ids::TransportKind;
use crate::reason::DropReason;
use videocall_protocol::wire::MediaKind;

/// The join budgets a refusal may name: the relay's shared one, one identity's, one client
/// address's refusals.
pub const RATE_BUDGETS: [&str; 3] = ["relay", "identity", "address"];
/// The `kind` labels of `handshakes_total`.
pub const HANDSHAKE_KINDS: [&str; 4] = ["key_package", "commit", "found", "invalid"];
/// The `outcome` labels of `handshakes_total`.
pub const HANDSHAKE_OUTCOMES: [&str; 4] = ["taken", "delivered", "refused", "rejected"];

/// Per-kind counters resolved once, so the hot path never looks labels up.
#[derive(Clone)]
pub struct KindCounters {
    /// Packets.
    pub packets: IntCounter,
    /// Bytes.
    pub bytes: IntCounter,
}

/// All metrics of a relay.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    connections: IntGaugeVec,
    /// Live meetings.
    pub meetings: IntGauge,
    /// Joined participants.
    pub participants: IntGauge,
    /// Tokio tasks alive in the process, read when metrics are scraped (a leak shows here).
    pub runtime_tasks: IntGauge,
    in_audio: KindCounters,
    in_video: KindCounters,
    out_audio: KindCounters,
    out_video: KindCounters,
    /// One counter per [`DropReason`], in `DropReason::ALL` order.
    drops: [IntCounter; DropReason::ALL.len()],
    /// Time from a packet's arrival to its write on a subscriber's socket.
    pub fanout_latency: Histogram,
    /// The queue-depth histogram's series, by [`TransportKind::index`].
    queue_depths: [Histogram; TransportKind::COUNT],
    join_refusals: IntCounterVec,
    rate_limited: IntCounterVec,
    refused_sessions: IntCounterVec,
    bad_frames: IntCounterVec,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: IntCounter,
    /// Participants disconnected because they stopped reading.
    pub slow_consumers: IntCounter,
    /// Sessions closed because a newer one of the same identity joined the meeting.
    pub sessions_replaced: IntCounter,
    handshakes: IntCounterVec,
    /// Video bytes waiting in subscriber queues.
    pub queued_bytes: IntGauge,
    /// Simulcast: subscribers moved to another layer (at its keyframe).
    pub layer_switches: IntCounter,
    /// Simulcast: video packets queued for subscribers, by layer (which layers are chosen).
    layer_packets: [IntCounter; MAX_LAYER_LABELS],
    /// Dynacast: layers of this relay's publishers that nobody gets now (not encoded).
    pub paused_layers: IntGauge,
    /// Bandwidth estimates of subscribers whose link is a limit, sampled every estimate.
    pub estimated_bandwidth: Histogram,
    /// Congested intervals seen on subscribers' links, by cause.
    congestion: IntCounterVec,
    host_actions: IntCounterVec,
    /// The bus to the other relays.
    pub bus: BusMetrics,
}

/// Layers counted apart in `layer_packets_total` (the relay takes at most this many).
const MAX_LAYER_LABELS: usize = 4;

/// Metrics of the relay's bus connection (the relay mesh).
#[derive(Clone)]
pub struct BusMetrics {
    messages: IntCounterVec,
    bytes: IntCounterVec,
    /// Meetings whose subjects the relay subscribes to now.
    pub subscriptions: IntGauge,
    /// Times the bus connection was lost and made again.
    pub reconnects: IntCounter,
    /// 1 while the bus connection is up.
    pub connected: IntGauge,
    drops: IntCounterVec,
}

/// Why something meant for the bus, or from it, was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusDrop {
    /// The event queue to the bus was full.
    EventQueueFull,
    /// The bus refused a message as too large even in chunks.
    TooLarge,
    /// Publishing failed (the connection is closed).
    PublishFailed,
    /// A message from the bus could not be decoded.
    Malformed,
    /// A chunked message from the bus lost a chunk.
    Incomplete,
    /// The bus dropped messages for this relay's subscriptions (it did not keep up).
    SlowConsumer,
}

impl BusDrop {
    /// Every reason, for series that exist from the start.
    pub const ALL: [BusDrop; 6] = [
        BusDrop::EventQueueFull,
        BusDrop::TooLarge,
        BusDrop::PublishFailed,
        BusDrop::Malformed,
        BusDrop::Incomplete,
        BusDrop::SlowConsumer,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            BusDrop::EventQueueFull => "event_queue_full",
            BusDrop::TooLarge => "too_large",
            BusDrop::PublishFailed => "publish_failed",
            BusDrop::Malformed => "malformed",
            BusDrop::Incomplete => "incomplete",
            BusDrop::SlowConsumer => "slow_consumer",
        }
    }
}

/// What the bus connection's own counters said when last read.
#[derive(Debug, Default, Clone, Copy)]
pub struct BusSnapshot {
    messages_out: u64,
    bytes_out: u64,
    messages_in: u64,
    bytes_in: u64,
    reconnects: u64,
    incomplete: u64,
    slow: u64,
}

impl BusMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let messages = IntCounterVec::new(
            Opts::new(
                "bus_messages_total",
                "Messages to and from the bus, by direction",
            ),
            &["direction"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "bus_bytes_total",
                "Payload bytes to and from the bus, by direction",
            ),
            &["direction"],
        )?;
        let subscriptions = IntGauge::new(
            "bus_subscriptions",
            "Meetings whose bus subjects this relay subscribes to",
        )?;
        let reconnects = IntCounter::new(
            "bus_reconnects_total",
            "Times the bus connection was made again",
        )?;
        let connected = IntGauge::new("bus_connected", "1 while the bus connection is up")?;
        let drops = IntCounterVec::new(
            Opts::new("bus_drops_total", "Bus messages dropped, by reason"),
            &["reason"],
        )?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(subscriptions.clone()))?;
        registry.register(Box::new(reconnects.clone()))?;
        registry.register(Box::new(connected.clone()))?;
        registry.register(Box::new(drops.clone()))?;
        for direction in ["in", "out"] {
            messages.with_label_values(&[direction]);
            bytes.with_label_values(&[direction]);
        }
        for reason in BusDrop::ALL {
            drops.with_label_values(&[reason.label()]);
        }
        Ok(BusMetrics {
            messages,
            bytes,
            subscriptions,
            reconnects,
            connected,
            drops,
        })
    }

    /// Counts one dropped bus message.
    pub fn drop_message(&self, reason: BusDrop) {
        self.drops.with_label_values(&[reason.label()]).inc();
    }

    /// Bus messages dropped for `reason` so far.
    pub fn drops(&self, reason: BusDrop) -> u64 {
        self.drops.with_label_values(&[reason.label()]).get()
    }

    /// Payload bytes published to the bus so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes.with_label_values(&["out"]).get()
    }

    /// Adds what the connection counted since `last` (the connection counts on its own).
    pub fn absorb(&self, counters: &videocall_bus::BusCounters, last: &mut BusSnapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = BusSnapshot {
            messages_out: counters.messages_out.load(Relaxed),
            bytes_out: counters.bytes_out.load(Relaxed),
            messages_in: counters.messages_in.load(Relaxed),
            bytes_in: counters.bytes_in.load(Relaxed),
            reconnects: counters.reconnects.load(Relaxed),
            incomplete: counters.incomplete.load(Relaxed),
            slow: counters.slow_consumer_drops.load(Relaxed),
        };
        let add =
            |counter: IntCounter, now: u64, then: u64| counter.inc_by(now.saturating_sub(then));
        add(
            self.messages.with_label_values(&["out"]),
            now.messages_out,
            last.messages_out,
        );
        add(
            self.bytes.with_label_values(&["out"]),
            now.bytes_out,
            last.bytes_out,
        );
        add(
            self.messages.with_label_values(&["in"]),
            now.messages_in,
            last.messages_in,
        );
        add(
            self.bytes.with_label_values(&["in"]),
            now.bytes_in,
            last.bytes_in,
        );
        add(self.reconnects.clone(), now.reconnects, last.reconnects);
        add(
            self.drops.with_label_values(&[BusDrop::Incomplete.label()]),
            now.incomplete,
            last.incomplete,
        );
        add(
            self.drops
                .with_label_values(&[BusDrop::SlowConsumer.label()]),
            now.slow,
            last.slow,
        );
        *last = now;
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new(relay_id: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            Some("videocall_relay".into()),
            Some(std::iter::once(("relay_id".to_string(), relay_id.to_string())).collect()),
        )?;
        let connections = IntGaugeVec::new(
            Opts::new("connections", "Open client connections by transport"),
            &["transport"],
        )?;
        let meetings = IntGauge::new("meetings", "Live meetings")?;
        let participants = IntGauge::new("participants", "Joined participants")?;
        let runtime_tasks = IntGauge::new(
            "runtime_tasks",
            "Tokio tasks alive in the relay process when metrics were read",
        )?;
        let packets_in = IntCounterVec::new(
            Opts::new("packets_in_total", "Media packets received from publishers"),
            &["kind"],
        )?;
        let bytes_in = IntCounterVec::new(
            Opts::new("bytes_in_total", "Media bytes received from publishers"),
            &["kind"],
        )?;
        let packets_out = IntCounterVec::new(
            Opts::new("packets_out_total", "Media packets written to subscribers"),
            &["kind"],
        )?;
        let bytes_out = IntCounterVec::new(
            Opts::new("bytes_out_total", "Media bytes written to subscribers"),
            &["kind"],
        )?;
        let drops = IntCounterVec::new(
            Opts::new("drops_total", "Media packets not delivered, by reason"),
            &["reason"],
        )?;
        let fanout_latency = Histogram::with_opts(
            HistogramOpts::new(
                "fanout_latency_seconds",
                "Time from a packet's arrival to its write on a subscriber's connection",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0,
            ]),
        )?;
        let queue_depth = HistogramVec::new(
            HistogramOpts::new("queue_depth", "Subscriber queue depth seen when queuing").buckets(
                vec![
                    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ],
            ),
            &["transport"],
        )?;
        let join_refusals = IntCounterVec::new(
            Opts::new("join_refusals_total", "Refused joins by error code"),
            &["code"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Joins refused as RATE_LIMITED, by the budget that was spent \
                 (relay: shared; identity: one token subject's; address: one client address's refusals)",
            ),
            &["budget"],
        )?;
        for budget in RATE_BUDGETS {
            rate_limited.with_label_values(&[budget]);
        }
        registry.register(Box::new(rate_limited.clone()))?;
        let refused_sessions = IntCounterVec::new(
            Opts::new(
                "refused_sessions_total",
                "Sessions refused before any join, by reason",
            ),
            &["reason"],
        )?;
        refused_sessions.with_label_values(&["unknown_path"]);
        registry.register(Box::new(refused_sessions.clone()))?;
        let bad_frames = IntCounterVec::new(
            Opts::new("bad_frames_total", "Frames from clients that were refused"),
            &["code"],
        )?;
        let keyframe_requests = IntCounter::new(
            "keyframe_requests_total",
            "Keyframe requests sent to publishers",
        )?;
        let slow_consumers = IntCounter::new(
            "slow_consumers_total",
            "Participants disconnected because their control queue filled",
        )?;
        let sessions_replaced = IntCounter::new(
            "sessions_replaced_total",
            "Sessions closed because a newer session of the same identity joined the meeting",
        )?;
        registry.register(Box::new(sessions_replaced.clone()))?;
        let handshakes = IntCounterVec::new(
            Opts::new(
                "handshakes_total",
                "End-to-end encryption handshake messages, by kind and outcome (taken: put in the \
                 meeting's order; delivered: to this relay's participants; refused: another commit \
                 came first or the order could not be reached; rejected: malformed or over the \
                 sender's rate)",
            ),
            &["kind", "outcome"],
        )?;
        for kind in HANDSHAKE_KINDS {
            for outcome in HANDSHAKE_OUTCOMES {
                handshakes.with_label_values(&[kind, outcome]);
            }
        }
        registry.register(Box::new(handshakes.clone()))?;
        let queued_bytes = IntGauge::new(
            "queued_bytes",
            "Video bytes waiting in subscriber queues (bounded per subscriber)",
        )?;
        registry.register(Box::new(queued_bytes.clone()))?;
        let layer_switches = IntCounter::new(
            "layer_switches_total",
            "Subscribers moved to another simulcast layer (at a keyframe of it)",
        )?;
        registry.register(Box::new(layer_switches.clone()))?;
        let layer_packets = IntCounterVec::new(
            Opts::new(
                "layer_packets_total",
                "Video packets queued for subscribers, by simulcast layer",
            ),
            &["layer"],
        )?;
        registry.register(Box::new(layer_packets.clone()))?;
        let paused_layers = IntGauge::new(
            "paused_layers",
            "Simulcast layers of this relay's publishers that nobody gets now (dynacast: not \
             encoded)",
        )?;
        registry.register(Box::new(paused_layers.clone()))?;
        let estimated_bandwidth = Histogram::with_opts(
            HistogramOpts::new(
                "estimated_bandwidth_bps",
                "Bandwidth estimates of subscribers whose link limits what they get (one \
                 observation per subscriber per estimate; unlimited links are not observed)",
            )
            .buckets(vec![
                64e3, 128e3, 256e3, 512e3, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6, 64e6,
            ]),
        )?;
        registry.register(Box::new(estimated_bandwidth.clone()))?;
        let congestion = IntCounterVec::new(
            Opts::new(
                "congestion_total",
                "Congested estimate intervals on subscribers' links, by cause",
            ),
            &["cause"],
        )?;
        registry.register(Box::new(congestion.clone()))?;
        let host_actions = IntCounterVec::new(
            Opts::new(
                "host_actions_total",
                "Host actions carried out on this relay's participants or meetings, by action",
            ),
            &["action"],
        )?;
        registry.register(Box::new(host_actions.clone()))?;
        for action in crate::core::HOST_ACTION_LABELS {
            host_actions.with_label_values(&[action]);
        }
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(meetings.clone()))?;
        registry.register(Box::new(participants.clone()))?;
        registry.register(Box::new(runtime_tasks.clone()))?;
        registry.register(Box::new(packets_in.clone()))?;
        registry.register(Box::new(bytes_in.clone()))?;
        registry.register(Box::new(packets_out.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        registry.register(Box::new(drops.clone()))?;
        registry.register(Box::new(fanout_latency.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(join_refusals.clone()))?;
        registry.register(Box::new(bad_frames.clone()))?;
        registry.register(Box::new(keyframe_requests.clone()))?;
        registry.register(Box::new(slow_consumers.clone()))?;
        // Every series exists from the start, so dashboards show zeros rather than gaps.
        for transport in TransportKind::ALL {
            connections.with_label_values(&[transport.label()]);
            queue_depth.with_label_values(&[transport.label()]);
        }
        let pair = |packets: &IntCounterVec, bytes: &IntCounterVec, kind: &str| KindCounters {
            packets: packets.with_label_values(&[kind]),
            bytes: bytes.with_label_values(&[kind]),
        };
        let bus = BusMetrics::new(&registry)?;
        Ok(Metrics {
            bus,
            in_audio: pair(&packets_in, &bytes_in, "audio"),
            in_video: pair(&packets_in, &bytes_in, "video"),
            out_audio: pair(&packets_out, &bytes_out, "audio"),
            out_video: pair(&packets_out, &bytes_out, "video"),
            registry,
            connections,
            meetings,
            participants,
            runtime_tasks,
            drops: DropReason::ALL.map(|r| drops.with_label_values(&[r.label()])),
            fanout_latency,
            queue_depths: TransportKind::EVERY.map(|t| queue_depth.with_label_values(&[t.label()])),
            join_refusals,
            rate_limited,
            refused_sessions,
            bad_frames,
            keyframe_requests,
            slow_consumers,
            sessions_replaced,
            handshakes,
            queued_bytes,
            layer_switches,
            layer_packets: std::array::from_fn(|layer| {
                layer_packets.with_label_values(&[layer.to_string().as_str()])
            }),
            paused_layers,
            estimated_bandwidth,
            congestion,
            host_actions,
        })
    }

    /// Counts a host action (`core::moderation`'s label) carried out here.
    pub fn host_action(&self, action: &str) {
        self.host_actions.with_label_values(&[action]).inc();
    }

    /// Gauge of open connections over `transport`.
    pub fn connections(&self, transport: TransportKind) -> IntGauge {
        self.connections.with_label_values(&[transport.label()])
    }

    /// Media bytes received from publishers so far.
    pub fn bytes_in_total(&self) -> u64 {
        self.in_audio.bytes.get() + self.in_video.bytes.get()
    }

    /// Media packets received, per kind.
    pub fn media_in(&self, kind: MediaKind) -> &KindCounters {
        if kind == MediaKind::Audio {
            &self.in_audio
        } else {
            &self.in_video
        }
    }

    /// Counters of sent media; `audio` selects the audio pair.
    pub fn media_out(&self, audio: bool) -> &KindCounters {
        if audio {
            &self.out_audio
        } else {
            &self.out_video
        }
    }

    /// A tally for one fan-out of a packet of simulcast `layer`: what it queued is added to
    /// these metrics once, when the tally is dropped, so offering a packet to each subscriber
    /// touches no counter shared with the other cores.
    pub fn fan_out_tally(&self, layer: u32) -> FanOutTally<'_> {
        FanOutTally {
            metrics: self,
            layer,
            layer_packets: 0,
            depths: Default::default(),
            written: None,
        }
    }

    /// A writer's own tally of media written, added to these metrics once per batch
    /// ([`MediaWrites::flush`]): counting a packet then touches no counter shared with the
    /// other writers' threads. Every transport's write of media counts in one of these (a
    /// writer's, or a fan-out's [`FanOutTally::written`]), and nowhere else.
    pub fn media_writes(&self) -> MediaWrites {
        MediaWrites {
            audio: (self.out_audio.packets.local(), self.out_audio.bytes.local()),
            video: (self.out_video.packets.local(), self.out_video.bytes.local()),
            latency: self.fanout_latency.local(),
        }
    }

    /// Counts a congested interval on a subscriber's link.
    pub fn congestion(&self, cause: crate::core::Congestion) {
        let label = match cause {
            crate::core::Congestion::Loss => "loss",
            crate::core::Congestion::Delay => "delay",
            crate::core::Congestion::Backlog => "backlog",
        };
        self.congestion.with_label_values(&[label]).inc();
    }

    /// Counts one undelivered packet.
    pub fn drop_packet(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    /// Counts a session refused before it could join (`unknown_path`: a WebTransport CONNECT
    /// to a path that is not the relay's).
    pub fn refuse_session(&self, reason: &str) {
        self.refused_sessions.with_label_values(&[reason]).inc();
    }

    /// Counts a join refused because `budget` (one of [`RATE_BUDGETS`]) was spent.
    pub fn rate_limited(&self, budget: &str) {
        self.rate_limited.with_label_values(&[budget]).inc();
    }

    /// Counts one refused join.
    pub fn refuse_join(&self, code: videocall_protocol::wire::ErrorCode) {
        self.join_refusals
            .with_label_values(&[code.as_str_name()])
            .inc();
    }

    /// Counts one refused frame from a client.
    pub fn bad_frame(&self, code: videocall_protocol::wire::ErrorCode) {
        self.bad_frames
            .with_label_values(&[code.as_str_name()])
            .inc();
    }

    /// Counts one handshake message of `kind` (one of [`HANDSHAKE_KINDS`]) with `outcome`
    /// (one of [`HANDSHAKE_OUTCOMES`]).
    pub fn handshake(&self, kind: &str, outcome: &str) {
        self.handshakes.with_label_values(&[kind, outcome]).inc();
    }

    /// How many handshake messages of `kind` had `outcome`.
    pub fn handshakes(&self, kind: &str, outcome: &str) -> u64 {
        self.handshakes.with_label_values(&[kind, outcome]).get()
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails for invalid metric families, which we never build.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What one fan-out queued: subscriber queue depths (per transport) and video packets of its
/// layer, and what it wrote at once; added to the relay's metrics when dropped
/// ([`Metrics::fan_out_tally`]).
pub struct FanOutTally<'a> {
    metrics: &'a Metrics,
    layer: u32,
    layer_packets: u64,
    depths: [Option<LocalHistogram>; TransportKind::COUNT],
    written: Option<WrittenAtOnce>,
}

/// Packets a fan-out handed to connections itself, all received at `received_at`: their
/// fan-out latency is observed once, when the tally ends (one clock read per fan-out).
struct WrittenAtOnce {
    writes: MediaWrites,
    received_at: Instant,
    packets: u64,
}

impl WrittenAtOnce {
    /// Observes the latency of the packets counted so far, as of now.
    fn observe(&mut self) {
        let now = Instant::now();
        for _ in 0..self.packets {
            self.writes.observe_latency(self.received_at, now);
        }
        self.packets = 0;
    }
}

impl FanOutTally<'_> {
    /// A packet was queued for a subscriber on `transport`, whose queue then held `depth`.
    pub fn queued(&mut self, transport: TransportKind, depth: usize) {
        let metrics = self.metrics;
        self.depths[transport.index()]
            .get_or_insert_with(|| metrics.queue_depths[transport.index()].local())
            .observe(depth as f64);
    }

    /// A video packet of the tally's layer was queued for a subscriber.
    pub fn layer_packet(&mut self) {
        self.layer_packets += 1;
    }

    /// A packet of `bytes`, received at `received_at`, was handed to a subscriber's
    /// connection at once ([`Offer::Written`](crate::core::Offer::Written)).
    pub fn written(&mut self, audio: bool, bytes: usize, received_at: Instant) {
        let metrics = self.metrics;
        let written = self.written.get_or_insert_with(|| WrittenAtOnce {
            writes: metrics.media_writes(),
            received_at,
            packets: 0,
        });
        if written.received_at != received_at {
            written.observe();
            written.received_at = received_at;
        }
        written.writes.count(audio, bytes);
        written.packets += 1;
    }
}

impl Drop for FanOutTally<'_> {
    fn drop(&mut self) {
        if self.layer_packets > 0 {
            if let Some(counter) = self.metrics.layer_packets.get(self.layer as usize) {
                counter.inc_by(self.layer_packets);
            }
        }
        if let Some(written) = &mut self.written {
            written.observe();
            written.writes.flush();
        }
        // The local histograms add themselves when dropped.
    }
}

/// One writer's count of media written since its last [`flush`](MediaWrites::flush): the same
/// relay's media-out counters and fan-out latency, kept locally.
pub struct MediaWrites {
    audio: (LocalIntCounter, LocalIntCounter),
    video: (LocalIntCounter, LocalIntCounter),
    latency: LocalHistogram,
}

impl MediaWrites {
    /// Counts one media packet of `bytes` written at `now`, received by the relay at
    /// `received_at`.
    pub fn written(&self, audio: bool, bytes: usize, received_at: Instant, now: Instant) {
        self.count(audio, bytes);
        self.observe_latency(received_at, now);
    }

    /// Counts one media packet of `bytes` written.
    fn count(&self, audio: bool, bytes: usize) {
        let (packets, byte_count) = if audio { &self.audio } else { &self.video };
        packets.inc();
        byte_count.inc_by(bytes as u64);
    }

    /// Observes the fan-out latency of one packet written at `now`.
    fn observe_latency(&self, received_at: Instant, now: Instant) {
        self.latency
            .observe(now.saturating_duration_since(received_at).as_secs_f64());
    }

    /// Adds what was counted to the relay's metrics.
    pub fn flush(&self) {
        for counter in [&self.audio.0, &self.audio.1, &self.video.0, &self.video.1] {
            counter.flush();
        }
        self.latency.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn a_fan_out_tally_adds_to_the_metrics_when_dropped_and_not_before() {
        let metrics = Metrics::new("tally").expect("metrics");
        let count =
            r#"videocall_relay_queue_depth_count{transport="webtransport",relay_id="tally"}"#;
        let layer = r#"videocall_relay_layer_packets_total{layer="1",relay_id="tally"}"#;
        {
            let mut tally = metrics.fan_out_tally(1);
            tally.queued(TransportKind::WebTransport, 3);
            tally.queued(TransportKind::WebTransport, 40);
            tally.queued(TransportKind::Mesh, 1);
            tally.layer_packet();
            tally.layer_packet();
            let text = metrics.render();
            assert_eq!(line(&text, count), Some(format!("{count} 0").as_str()));
        }
        let text = metrics.render();
        assert_eq!(line(&text, count), Some(format!("{count} 2").as_str()));
        let sum = r#"videocall_relay_queue_depth_sum{transport="webtransport",relay_id="tally"}"#;
        assert_eq!(line(&text, sum), Some(format!("{sum} 43").as_str()));
        assert_eq!(line(&text, layer), Some(format!("{layer} 2").as_str()));
        let mesh = r#"videocall_relay_queue_depth_count{transport="mesh",relay_id="tally"}"#;
        assert_eq!(line(&text, mesh), Some(format!("{mesh} 1").as_str()));
    }

    #[test]
    fn what_a_fan_out_wrote_at_once_counts_when_its_tally_ends() {
        let metrics = Metrics::new("written").expect("metrics");
        let packets = r#"videocall_relay_packets_out_total{kind="audio",relay_id="written"}"#;
        let bytes = r#"videocall_relay_bytes_out_total{kind="audio",relay_id="written"}"#;
        let latency = r#"videocall_relay_fanout_latency_seconds_count{relay_id="written"}"#;
        let latency_sum = r#"videocall_relay_fanout_latency_seconds_sum{relay_id="written"}"#;
        let received_at = Instant::now() - std::time::Duration::from_millis(5);
        {
            let mut tally = metrics.fan_out_tally(0);
            tally.written(true, 100, received_at);
            tally.written(true, 60, received_at);
            // A packet received at another time has its own latency.
            tally.written(true, 40, received_at + std::time::Duration::from_millis(1));
            let text = metrics.render();
            assert_eq!(line(&text, packets), Some(format!("{packets} 0").as_str()));
        }
        let text = metrics.render();
        assert_eq!(line(&text, packets), Some(format!("{packets} 3").as_str()));
        assert_eq!(line(&text, bytes), Some(format!("{bytes} 200").as_str()));
        assert_eq!(line(&text, latency), Some(format!("{latency} 3").as_str()));
        // Each written packet's latency: at least the 5 and 4 ms since it was received.
        let sum: f64 = line(&text, latency_sum)
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .expect("latency sum");
        assert!((0.014..1.0).contains(&sum), "latency sum {sum}");
    }
}
