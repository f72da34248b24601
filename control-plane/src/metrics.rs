//! Prometheus metrics of the control plane, under `videocall_control_plane_`: every RPC by
//! method and status code with its latency, join grants, placement decisions, and the
//! database pools. Every known series exists from the start (zeros, not gaps).
//!
//! RPCs are observed by [`RpcMetricsLayer`], wrapped around each gRPC service inside the
//! grpc-web layer, so that gRPC and grpc-web calls are both seen as gRPC: the status code is
//! read from the response headers (a trailers-only answer) or its trailers, and the time runs
//! until the last frame of the answer.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Code;

use crate::placement::Decision;
use crate::store::RelayRecord;

/// The API's methods, as `Service/Method`: each has its series from the start. A call to
/// any other method of a served service counts as `other`.
pub const METHODS: [&str; 21] = [
    "AuthService/CreateUser",
    "AuthService/Login",
    "AuthService/Logout",
    "AuthService/WhoAmI",
    "AuthService/CreateApiKey",
    "AuthService/RevokeApiKey",
    "AuthService/RevokeUserSessions",
    "MeetingService/CreateMeeting",
    "MeetingService/GetMeeting",
    "MeetingService/ListMeetings",
    "MeetingService/UpdateMeeting",
    "MeetingService/EndMeeting",
    "MeetingService/DeleteMeeting",
    "MeetingService/JoinMeeting",
    "MeetingService/ListParticipants",
    "RelayService/RegisterRelay",
    "RelayService/Heartbeat",
    "RelayService/DrainRelay",
    "RelayService/ListRelays",
    "RelayService/GetVerificationKeys",
    "RelayService/RotateSigningKey",
];

/// The API's package: method paths are `/<PACKAGE>.<Service>/<Method>`.
const PACKAGE: &str = "videocall.control.v1.";

/// Every gRPC status code, for series that exist from the start.
const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// The metric label of a status code: its name in the gRPC spec (`OK`, `NOT_FOUND`, …).
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `method` label of a request path.
pub fn method_label(path: &str) -> &'static str {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(PACKAGE))
        .and_then(|p| METHODS.iter().find(|m| **m == p))
        .copied()
        .unwrap_or("other")
}

/// The control plane's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    rpcs: IntCounterVec,
    rpc_seconds: HistogramVec,
    /// Join grants signed (a token and a relay handed out).
    pub grants: IntCounter,
    placements: IntCounterVec,
    db_connections: IntGaugeVec,
    relays: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("videocall_control_plane".into()), None)?;
        let rpcs = IntCounterVec::new(
            Opts::new("rpcs_total", "Finished RPCs by method and gRPC status code"),
            &["method", "code"],
        )?;
        let rpc_seconds = HistogramVec::new(
            HistogramOpts::new(
                "rpc_duration_seconds",
                "Time from an RPC's request to the last frame of its answer",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method"],
        )?;
        let grants = IntCounter::new("join_grants_total", "Join grants signed")?;
        let placements = IntCounterVec::new(
            Opts::new(
                "placements_total",
                "Relays chosen for joining participants, by how the choice was made",
            ),
            &["decision"],
        )?;
        let db_connections = IntGaugeVec::new(
            Opts::new(
                "db_connections",
                "Database connections by pool (main; relaxed: seats and heartbeats) and state",
            ),
            &["pool", "state"],
        )?;
        let relays = IntGaugeVec::new(
            Opts::new(
                "relays",
                "Registered relays by state (serving, draining; drained: stopped after a drain; \
                 down: silent without a drain)",
            ),
            &["state"],
        )?;
        for state in RelayStates::LABELS {
            relays.with_label_values(&[state]);
        }
        registry.register(Box::new(relays.clone()))?;
        for method in METHODS.iter().copied().chain(["other"]) {
            rpc_seconds.with_label_values(&[method]);
            for code in CODES {
                rpcs.with_label_values(&[method, code_label(code)]);
            }
        }
        for decision in Decision::ALL {
            placements.with_label_values(&[decision.label()]);
        }
        for pool in ["main", "relaxed"] {
            for state in ["idle", "in_use", "max"] {
                db_connections.with_label_values(&[pool, state]);
            }
        }
        registry.register(Box::new(rpcs.clone()))?;
        registry.register(Box::new(rpc_seconds.clone()))?;
        registry.register(Box::new(grants.clone()))?;
        registry.register(Box::new(placements.clone()))?;
        registry.register(Box::new(db_connections.clone()))?;
        Ok(Metrics {
            registry,
            rpcs,
            rpc_seconds,
            grants,
            placements,
            db_connections,
            relays,
        })
    }

    /// Counts one finished RPC.
    pub fn rpc(&self, method: &str, code: Code, seconds: f64) {
        self.rpcs
            .with_label_values(&[method, code_label(code)])
            .inc();
        self.rpc_seconds
            .with_label_values(&[method])
            .observe(seconds);
    }

    /// Counts one placement.
    pub fn placed(&self, decision: Decision) {
        self.placements.with_label_values(&[decision.label()]).inc();
    }

    /// Sets a pool's connection gauges: `size` open, `idle` of them idle, `max` allowed.
    pub fn db_pool(&self, pool: &str, size: u32, idle: usize, max: u32) {
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        let size = i64::from(size);
        let set = |state: &str, value: i64| {
            self.db_connections
                .with_label_values(&[pool, state])
                .set(value)
        };
        set("idle", idle);
        set("in_use", (size - idle).max(0));
        set("max", i64::from(max));
    }

    /// Sets the relay gauges.
    pub fn relay_states(&self, states: RelayStates) {
        for (label, count) in RelayStates::LABELS.into_iter().zip(states.counts()) {
            self.relays
                .with_label_values(&[label])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "encoding the metrics");
                String::new()
            })
    }
}

/// How many registered relays are in each state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStates {
    /// Heard from recently, taking participants.
    pub serving: usize,
    /// Heard from recently, draining.
    pub draining: usize,
    /// Silent after a drain: stopped as asked.
    pub drained: usize,
    /// Silent without a drain: crashed, killed or cut off.
    pub down: usize,
}

impl RelayStates {
    /// The `state` label of each count, in [`Self::counts`] order.
    pub const LABELS: [&'static str; 4] = ["serving", "draining", "drained", "down"];

    /// Counts `relays`, fresh when heard from at or after `fresh_since_ms`.
    pub fn of(relays: &[RelayRecord], fresh_since_ms: i64) -> Self {
        let mut states = RelayStates::default();
        for relay in relays {
            let fresh = relay.last_heartbeat_ms >= fresh_since_ms;
            match (fresh, relay.is_draining()) {
                (true, false) => states.serving += 1,
                (true, true) => states.draining += 1,
                (false, true) => states.drained += 1,
                (false, false) => states.down += 1,
            }
        }
        states
    }

    fn counts(self) -> [usize; 4] {
        [self.serving, self.draining, self.drained, self.down]
    }
}

/// Wraps a gRPC service so that each call is counted in [`Metrics`].
#[derive(Clone)]
pub struct RpcMetricsLayer(pub Metrics);

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// A gRPC service whose calls are counted.
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S: NamedService> NamedService for RpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<Request<Body>> for RpcMetrics<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let observation = Observation {
            method: method_label(request.uri().path()),
            started: Instant::now(),
            metrics: self.metrics.clone(),
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = call.await;
            let (parts, body) = response.into_parts();
            // A trailers-only answer (every error tonic sends) has its status in the headers.
            let body = match status_of(&parts.headers) {
                Some(code) => {
                    observation.finish(code);
                    body
                }
                None => Body::new(ObservedBody {
                    inner: body,
                    observation: Some(observation),
                }),
            };
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// A call still being answered.
struct Observation {
    method: &'static str,
    started: Instant,
    metrics: Metrics,
}

impl Observation {
    fn finish(self, code: Code) {
        self.metrics
            .rpc(self.method, code, self.started.elapsed().as_secs_f64());
    }
}

/// `grpc-status` of a header map.
fn status_of(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// An answer's body that counts the call when its trailers pass (or when it ends or is
/// dropped without them: `UNKNOWN` after an end without a status, `CANCELLED` when the
/// client went away).
struct ObservedBody {
    inner: Body,
    observation: Option<Observation>,
}

impl HttpBody for ObservedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    if let Some(observation) = self.observation.take() {
                        observation.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(observation) = self.observation.take() {
                    observation.finish(Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(observation) = self.observation.take() {
                    observation.finish(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(observation) = self.observation.take() {
            observation.finish(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_testkit::metric_value;

    #[test]
    fn paths_name_their_method_and_anything_else_is_other() {
        assert_eq!(
            method_label("/videocall.control.v1.MeetingService/JoinMeeting"),
            "MeetingService/JoinMeeting"
        );
        assert_eq!(
            method_label("/videocall.control.v1.MeetingService/Nope"),
            "other"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "other");
        assert_eq!(method_label(""), "other");
    }

    #[test]
    fn every_known_series_is_zero_from_the_start() {
        let metrics = Metrics::new().expect("metrics");
        let text = metrics.render();
        for method in METHODS {
            for code in CODES {
                let series = format!(
                    "videocall_control_plane_rpcs_total{{code=\"{}\",method=\"{method}\"}}",
                    code_label(code)
                );
                assert!(text.contains(&format!("{series} 0")), "{series}");
            }
        }
        assert_eq!(
            metric_value(&text, "videocall_control_plane_join_grants_total"),
            0.0
        );
        assert!(text.contains("videocall_control_plane_placements_total{decision=\"none\"} 0"));
        assert!(text.contains(
            "videocall_control_plane_db_connections{pool=\"relaxed\",state=\"in_use\"} 0"
        ));
    }

    #[test]
    fn relays_are_serving_draining_drained_or_down() {
        let relay = |heard: i64, draining: bool| RelayRecord {
            relay_id: String::new(),
            webtransport_url: String::new(),
            websocket_url: String::new(),
            certificate_sha256: Vec::new(),
            admin_url: String::new(),
            capacity: 1,
            participants: 0,
            meetings: 0,
            bitrate_bps: 0,
            draining,
            drain_requested: false,
            last_heartbeat_ms: heard,
        };
        let relays = [
            relay(100, false),
            relay(100, false),
            relay(100, true),
            relay(10, true),
            relay(10, false),
        ];
        let states = RelayStates::of(&relays, 50);
        assert_eq!(
            states,
            RelayStates {
                serving: 2,
                draining: 1,
                drained: 1,
                down: 1
            }
        );
        let metrics = Metrics::new().expect("metrics");
        metrics.relay_states(states);
        let text = metrics.render();
        assert_eq!(
            metric_value(&text, "videocall_control_plane_relays{state=\"serving\"}"),
            2.0
        );
        assert_eq!(
            metric_value(&text, "videocall_control_plane_relays{state=\"down\"}"),
            1.0
        );
    }

    #[test]
    fn calls_are_counted_by_method_and_code_with_their_time() {
        let metrics = Metrics::new().expect("metrics");
        metrics.rpc("MeetingService/JoinMeeting", Code::Ok, 0.002);
        metrics.rpc("MeetingService/JoinMeeting", Code::ResourceExhausted, 0.001);
        metrics.db_pool("main", 5, 3, 16);
        let text = metrics.render();
        let value = |series: &str| metric_value(&text, series);
        assert_eq!(
            value("videocall_control_plane_rpcs_total{code=\"OK\",method=\"MeetingService/JoinMeeting\"}"),
            1.0
        );
        assert_eq!(
            value("videocall_control_plane_rpc_duration_seconds_count{method=\"MeetingService/JoinMeeting\"}"),
            2.0
        );
        assert_eq!(
            value("videocall_control_plane_db_connections{pool=\"main\",state=\"in_use\"}"),
            2.0
        );
    }
}
