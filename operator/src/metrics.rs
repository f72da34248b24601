//! Prometheus metrics of the operator: reconciles, errors, durations, and desired vs actual
//! relays per pool.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles per controller.
    pub reconciles: IntCounterVec,
    /// Failed reconciles per controller.
    pub errors: IntCounterVec,
    /// Reconcile durations per controller.
    pub durations: HistogramVec,
    /// Relays wanted per pool.
    pub desired_relays: IntGaugeVec,
    /// Relays set per pool.
    pub actual_relays: IntGaugeVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("videocall_operator".into()), None)?;
        let reconciles =
            IntCounterVec::new(Opts::new("reconciles_total", "Reconciles"), &["controller"])?;
        let errors = IntCounterVec::new(
            Opts::new("reconcile_errors_total", "Failed reconciles"),
            &["controller"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Reconcile duration").buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["controller"],
        )?;
        let desired_relays = IntGaugeVec::new(
            Opts::new("relays_desired", "Relays wanted per pool"),
            &["pool"],
        )?;
        let actual_relays =
            IntGaugeVec::new(Opts::new("relays_actual", "Relays set per pool"), &["pool"])?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(desired_relays.clone()))?;
        registry.register(Box::new(actual_relays.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            errors,
            durations,
            desired_relays,
            actual_relays,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
