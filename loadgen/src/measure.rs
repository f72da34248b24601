//! What a scenario measures, and how it is printed.

use hdrhistogram::Histogram;

pub use videocall_testkit::cpu_seconds;

/// Figures of one scenario on one transport.
pub struct Report {
    pub scenario: String,
    pub transport: String,
    /// Relays the participants were spread over.
    pub relays: usize,
    /// Bytes the relays published to the bus (NATS) in the window.
    pub bus_bytes: f64,
    /// Media bytes the relays received from publishers in the window.
    pub published_bytes: f64,
    /// Join time (grant and connection) of the participants, in ms.
    pub join_p50_ms: u64,
    pub join_p99_ms: u64,
    pub participants: usize,
    pub publishers: usize,
    pub seconds: f64,
    pub forwarded_packets: f64,
    pub forwarded_bytes: f64,
    pub relay_cpu_seconds: f64,
    /// CPU time of the load generator itself over the same window.
    pub loadgen_cpu_seconds: f64,
    pub latency_us: Histogram<u64>,
    pub drops: f64,
    pub rss_kib: u64,
    pub rss_idle_kib: u64,
    pub expected_deliveries: f64,
    pub received: u64,
    /// Relay-side fan-out latency (arrival to socket write), bucket upper bounds.
    pub relay_fanout_p50_ms: f64,
    pub relay_fanout_p99_ms: f64,
}

impl Report {
    pub fn header() -> String {
        format!(
            "{:<13} {:<12} {:>6} {:>5} {:>4} {:>10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8} {:>9} {:>11} {:>9} {:>9} {:>12}",
            "scenario", "transport", "relays", "parts", "pubs", "fwd pkt/s", "Mbit/s", "in Mb/s", "cpu %", "µs/pkt", "gen %", "p50 ms", "p99 ms",
            "max ms", "drops", "delivered", "RSS MiB", "KiB/part", "relay p50/99", "bus/fwd", "bus/pub", "join p50/99"
        )
    }

    pub fn row(&self) -> String {
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        let delivered = if self.expected_deliveries > 0.0 {
            format!(
                "{:.2}%",
                100.0 * self.received as f64 / self.expected_deliveries
            )
        } else {
            "-".into()
        };
        format!(
            "{:<13} {:<12} {:>6} {:>5} {:>4} {:>10.0} {:>8.1} {:>7.1} {:>7.1} {:>7} {:>7.1} {:>8.2} {:>8.2} {:>8.2} {:>7.0} {:>9} {:>8.1} {:>9.1} {:>11} {:>9} {:>9} {:>12}",
            self.scenario,
            self.transport,
            self.relays,
            self.participants,
            self.publishers,
            self.forwarded_packets / self.seconds,
            self.forwarded_bytes * 8.0 / 1e6 / self.seconds,
            self.published_bytes * 8.0 / 1e6 / self.seconds,
            100.0 * self.relay_cpu_seconds / self.seconds,
            ratio(self.relay_cpu_seconds * 1e6, self.forwarded_packets, 2),
            100.0 * self.loadgen_cpu_seconds / self.seconds,
            ms(0.5),
            ms(0.99),
            self.latency_us.max() as f64 / 1000.0,
            self.drops,
            delivered,
            self.rss_kib as f64 / 1024.0,
            self.rss_kib.saturating_sub(self.rss_idle_kib) as f64 / self.participants.max(1) as f64,
            format!("<{}/<{}", self.relay_fanout_p50_ms, self.relay_fanout_p99_ms),
            ratio(self.bus_bytes, self.forwarded_bytes, 4),
            ratio(self.bus_bytes, self.published_bytes, 2),
            format!("{}/{}", self.join_p50_ms, self.join_p99_ms),
        )
    }
}

/// How `theirs` compares with `ours`: each figure's ratio (theirs ÷ ours).
pub fn ratio_row(theirs: &Report, ours: &Report) -> String {
    let per_packet = |r: &Report| r.relay_cpu_seconds / r.forwarded_packets.max(1.0);
    let rate = |r: &Report| r.forwarded_packets / r.seconds;
    let p = |r: &Report, q| r.latency_us.value_at_quantile(q) as f64;
    let per_part =
        |r: &Report| r.rss_kib.saturating_sub(r.rss_idle_kib) as f64 / r.participants.max(1) as f64;
    let x = |a: f64, b: f64| ratio(a, b, 2);
    format!(
        "  theirs ÷ ours: fwd pkt/s ×{}  cpu ×{}  µs/pkt ×{}  p50 ×{}  p99 ×{}  KiB/part ×{}  loss {:.2}% vs {:.2}%",
        x(rate(theirs), rate(ours)),
        x(theirs.relay_cpu_seconds, ours.relay_cpu_seconds),
        x(per_packet(theirs), per_packet(ours)),
        x(p(theirs, 0.5), p(ours, 0.5)),
        x(p(theirs, 0.99), p(ours, 0.99)),
        x(per_part(theirs), per_part(ours)),
        loss(theirs),
        loss(ours),
    )
}

/// Percent of the expected deliveries that did not arrive in the window.
fn loss(report: &Report) -> f64 {
    if report.expected_deliveries > 0.0 {
        (100.0 * (1.0 - report.received as f64 / report.expected_deliveries)).max(0.0)
    } else {
        0.0
    }
}

/// `part / whole` with `digits` decimals, or `-` when nothing was measured.
fn ratio(part: f64, whole: f64, digits: usize) -> String {
    if whole > 0.0 {
        format!("{:.digits$}", part / whole)
    } else {
        "-".into()
    }
}

/// Cumulative (upper bound, count) pairs of a Prometheus histogram.
pub fn histogram_buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The bucket bound below which `q` of the observations between two snapshots fall.
pub fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == bound)
                .map(|(_, c)| *c)
                .unwrap_or(0.0);
            (*bound, count - earlier)
        })
        .collect();
    let total = deltas.last().map(|(_, c)| *c).unwrap_or(0.0);
    deltas
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(b, _)| *b)
        .unwrap_or(f64::INFINITY)
}
