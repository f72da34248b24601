//! The admin listener for probes and scraping: `/metrics`, `/healthz` (frames are being
//! encoded: the liveness probe) and `/readyz` (joined to a relay).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::capture::{unix_ms, CaptureControl};
use crate::metrics::Metrics;

/// A capture that has not encoded a frame for this long is stuck.
const STUCK_AFTER_MS: u64 = 10_000;

#[derive(Clone)]
struct Admin {
    metrics: Metrics,
    capture: CaptureControl,
    started: Instant,
}

/// Serves the admin endpoints on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    capture: CaptureControl,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let admin = Admin {
        metrics,
        capture,
        started: Instant::now(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(admin);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn metrics_text(State(admin): State<Admin>) -> String {
    admin.metrics.render()
}

async fn healthz(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    let last = admin.capture.last_frame_ms();
    let starting = admin.started.elapsed().as_millis() < u128::from(STUCK_AFTER_MS);
    if (last == 0 && starting) || unix_ms().saturating_sub(last) < STUCK_AFTER_MS {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no frame encoded for 10 s\n",
        )
    }
}

async fn readyz(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if admin.metrics.connected.get() == 1 {
        (StatusCode::OK, "in the meeting\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not in the meeting\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_follows_the_session_and_liveness_the_frames() {
        let metrics = Metrics::new().expect("metrics");
        let capture = CaptureControl::default();
        let admin = Admin {
            metrics: metrics.clone(),
            capture,
            started: Instant::now(),
        };
        assert_eq!(
            readyz(State(admin.clone())).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.connected.set(1);
        assert_eq!(readyz(State(admin.clone())).await.0, StatusCode::OK);
        // Lost its relay: not ready until it rejoins.
        metrics.connected.set(0);
        assert_eq!(
            readyz(State(admin.clone())).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Starting: alive before the first frame; long past the start without one: not.
        assert_eq!(healthz(State(admin.clone())).await.0, StatusCode::OK);
        let stuck = Admin {
            started: Instant::now() - std::time::Duration::from_millis(STUCK_AFTER_MS + 1),
            ..admin
        };
        assert_eq!(
            healthz(State(stuck)).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
