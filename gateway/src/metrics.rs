//! Prometheus metrics of the gateway.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::router::{DropReason, RoutedBy};

/// Why the gateway dropped a datagram after routing it.
#[derive(Debug, Clone, Copy)]
pub enum ForwardFailure {
    /// The flow's queue towards its relay was full.
    QueueFull,
    /// The relay's address is unknown or did not resolve.
    NoRelay,
    /// The flow limit was reached.
    FlowLimit,
}

impl ForwardFailure {
    fn label(self) -> &'static str {
        match self {
            ForwardFailure::QueueFull => "flow_queue_full",
            ForwardFailure::NoRelay => "no_relay",
            ForwardFailure::FlowLimit => "flow_limit",
        }
    }
}

/// All metrics of a gateway.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Datagrams forwarded from clients to relays.
    pub to_relay: IntCounter,
    /// Datagrams forwarded from relays to clients.
    pub to_client: IntCounter,
    dropped: IntCounterVec,
    routed: IntCounterVec,
    /// Client flows (client address × relay) now.
    pub flows: IntGauge,
    /// Handshakes held for more ClientHello now.
    pub held: IntGauge,
    http: IntCounterVec,
    /// WebSocket connections proxied now.
    pub websockets: IntGauge,
}

impl Metrics {
    /// A fresh registry with every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("videocall_gateway".into()), None)?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let to_relay = counter("datagrams_to_relay_total", "Datagrams forwarded to relays")?;
        let to_client = counter(
            "datagrams_to_client_total",
            "Datagrams forwarded to clients",
        )?;
        let dropped = IntCounterVec::new(
            Opts::new("datagrams_dropped_total", "Datagrams dropped, by reason"),
            &["reason"],
        )?;
        registry.register(Box::new(dropped.clone()))?;
        for reason in DropReason::ALL {
            dropped.with_label_values(&[reason.label()]);
        }
        for failure in [
            ForwardFailure::QueueFull,
            ForwardFailure::NoRelay,
            ForwardFailure::FlowLimit,
        ] {
            dropped.with_label_values(&[failure.label()]);
        }
        let routed = IntCounterVec::new(
            Opts::new(
                "new_connections_total",
                "Client Initials routed, by what chose the relay",
            ),
            &["by"],
        )?;
        registry.register(Box::new(routed.clone()))?;
        let flows = IntGauge::new("flows", "Client flows (client address and relay) open")?;
        registry.register(Box::new(flows.clone()))?;
        let held = IntGauge::new(
            "held_handshakes",
            "Handshakes held for the rest of a ClientHello",
        )?;
        registry.register(Box::new(held.clone()))?;
        let http = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests proxied, by upstream and outcome",
            ),
            &["upstream", "outcome"],
        )?;
        registry.register(Box::new(http.clone()))?;
        let websockets = IntGauge::new("websockets", "WebSocket connections proxied now")?;
        registry.register(Box::new(websockets.clone()))?;
        Ok(Self {
            registry,
            to_relay,
            to_client,
            dropped,
            routed,
            flows,
            held,
            http,
            websockets,
        })
    }

    /// Counts a datagram the router dropped.
    pub fn drop_routed(&self, reason: DropReason) {
        self.dropped.with_label_values(&[reason.label()]).inc();
    }

    /// Counts a datagram that could not be forwarded.
    pub fn drop_forward(&self, failure: ForwardFailure) {
        self.dropped.with_label_values(&[failure.label()]).inc();
    }

    /// Counts a new connection routed by name, default or memory.
    pub fn routed(&self, by: RoutedBy) {
        let label = match by {
            RoutedBy::ConnectionId => return,
            RoutedBy::ServerName => "server_name",
            RoutedBy::Default => "default",
            RoutedBy::Remembered => "remembered",
        };
        self.routed.with_label_values(&[label]).inc();
    }

    /// Counts a proxied HTTP request.
    pub fn http(&self, upstream: &str, outcome: &str) {
        self.http.with_label_values(&[upstream, outcome]).inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
