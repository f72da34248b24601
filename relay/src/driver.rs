//! The connection driver: the lifecycle of every client connection, written once for all
//! transports. It waits for the `Join` (with the join timeout), admits or refuses the
//! sender, feeds the core every inbound frame, beats the heartbeat, and closes. Refusals
//! are counted and logged here and nowhere else.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::client_address::ClientKey;
use crate::core::{admit, Now, Outlet, Session, SAMPLE_INTERVAL_MS};
use crate::ids::TransportKind;
use crate::reason::{CloseReason, Refusal};
use crate::state::RelayState;
use videocall_protocol::wire::ErrorCode;

/// How a connection's first frame turned out.
pub(crate) enum FirstFrame {
    /// A frame: the core decides whether it is a valid `Join`.
    Frame(Bytes),
    /// Unusable before the core saw anything.
    Refused(Refusal),
    /// The client went away.
    Gone,
}

/// One event from a joined connection's main stream.
pub(crate) enum Inbound {
    /// A frame for the core.
    Frame(Bytes),
    /// A message the transport could not turn into a frame; the session goes on.
    Bad(ErrorCode, String),
    /// Proof of life that carries no frame (a WebSocket ping).
    Heard,
    /// The stream cannot go on: the session ends for this reason.
    Broken(CloseReason),
    /// The client closed the connection.
    Ended,
}

/// A client connection as the driver sees it. Transports implement it; the futures are
/// dropped and recreated by the driver's `select!`, so `next` must be cancel-safe.
pub(crate) trait ClientLink: Send + Sized + 'static {
    /// Which transport this is.
    const KIND: TransportKind;
    /// Who the client is, for the per-client limits.
    fn client(&self) -> ClientKey;
    /// Waits for the first frame (the driver applies the join timeout).
    fn first_frame(&mut self) -> impl Future<Output = FirstFrame> + Send;
    /// The participant's outlet: queues only, no tasks yet. `closing` fires when the
    /// session must end.
    fn outlet(&mut self, state: &RelayState, closing: &CancellationToken) -> Box<dyn Outlet>;
    /// After admission: starts the writers and any reader besides the main stream.
    fn start(&mut self, state: &RelayState, session: &Arc<Session>, closing: &CancellationToken);
    /// The next event of the main stream.
    fn next(&mut self) -> impl Future<Output = Inbound> + Send;
    /// Tells the client why it was refused, then closes.
    fn refuse(self, refusal: Refusal) -> impl Future<Output = ()> + Send;
    /// Flushes the last messages (the final error is queued already), then closes.
    fn close(self, reason: CloseReason) -> impl Future<Output = ()> + Send;
}

/// Runs one connection from its first frame to its close.
pub(crate) async fn drive<L: ClientLink>(state: Arc<RelayState>, mut link: L) {
    let _gauge = GaugeGuard::new(state.metrics().connections(L::KIND));
    let client = link.client();
    if !state.core.address_may_try(client, Now::system()) {
        // This address caused its fill of refusals: turned away before anything of its
        // is read or verified.
        state.metrics().rate_limited("address");
        let refusal = Refusal::new(
            ErrorCode::RateLimited,
            "too many refused joins from this address; retry in a moment",
        );
        return refuse(&state, link, client, refusal).await;
    }
    let join_timeout = state.config().timing.join_timeout();
    let first = tokio::select! {
        _ = state.shutdown.cancelled() => return,
        first = tokio::time::timeout(join_timeout, link.first_frame()) => {
            first.unwrap_or(FirstFrame::Refused(Refusal::join_timeout(join_timeout)))
        }
    };
    let frame = match first {
        FirstFrame::Frame(frame) => frame,
        FirstFrame::Gone => return,
        FirstFrame::Refused(refusal) => return refuse(&state, link, client, refusal).await,
    };
    let closing = state.shutdown.child_token();
    let outlet = link.outlet(&state, &closing);
    let session = match admit(&state.core, frame, L::KIND, outlet, Now::system()) {
        Ok(session) => Arc::new(session),
        Err(refusal) => return refuse(&state, link, client, refusal).await,
    };
    link.start(&state, &session, &closing);

    let mut heartbeat = tokio::time::interval(state.config().timing.heartbeat_interval());
    heartbeat.tick().await;
    let mut estimate = tokio::time::interval(Duration::from_millis(SAMPLE_INTERVAL_MS));
    estimate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = closing.cancelled() => break,
            _ = heartbeat.tick() => session.tick(Now::system()),
            _ = estimate.tick() => session.estimate_bandwidth(Now::system()),
            inbound = link.next() => match inbound {
                Inbound::Frame(frame) => session.handle_frame(frame, Now::system()),
                Inbound::Bad(code, message) => session.reject(code, message),
                Inbound::Heard => session.heard(Now::system()),
                Inbound::Broken(reason) => {
                    session.me.close(reason);
                    break;
                }
                Inbound::Ended => break,
            }
        }
    }
    let reason = session.finish();
    link.close(reason).await;
}

async fn refuse<L: ClientLink>(state: &RelayState, link: L, client: ClientKey, refusal: Refusal) {
    state.metrics().refuse_join(refusal.code);
    if spent_nothing_valid(refusal.code) {
        state.core.charge_refusal(client, Now::system());
    }
    if let Some(left_out) = state.log_refusal() {
        tracing::info!(
            code = refusal.code.as_str_name(),
            reason = %refusal.message,
            transport = %L::KIND,
            %client,
            refusals_not_logged = left_out,
            "join refused"
        );
    }
    link.refuse(refusal).await;
}

/// Whether a refusal is charged to the client's address: one that came before any valid
/// token (garbage, a bad or missing token, silence), not one of a valid identity's (a full
/// meeting, a spent budget, a draining relay), which its identity answers for.
fn spent_nothing_valid(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Malformed
            | ErrorCode::UnknownMessage
            | ErrorCode::FrameTooLarge
            | ErrorCode::UnsupportedVersion
            | ErrorCode::TokenMissing
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenWrongMeeting
            | ErrorCode::TokenUnknownKey
            | ErrorCode::NotJoined
            | ErrorCode::Timeout
    )
}

/// Counts a connection in a gauge for exactly as long as it lives.
struct GaugeGuard(prometheus::IntGauge);

impl GaugeGuard {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
