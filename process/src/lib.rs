//! What every videocall server binary does at start and stop: log through `tracing` with the
//! filter from `RUST_LOG` (default `info`), and wait for the signals that stop it: SIGTERM
//! (what Kubernetes and container runtimes send; as a container's PID 1 a process that does
//! not handle it is not stopped by it at all) and SIGINT (Ctrl-C).

#![warn(missing_docs)]

use tracing_subscriber::EnvFilter;

/// Logs to standard output with the `RUST_LOG` filter, `info` when unset or unreadable.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
}

/// Waits for SIGTERM or SIGINT (whichever comes first); only SIGINT where SIGTERM cannot be
/// listened for.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
