//! videocall-rs's media server for one run: a NATS server of its own (so its CPU is the
//! run's alone) and the WebSocket or WebTransport server, on loopback ports of their own,
//! with meeting management off (participants join by path, as its README's local setup).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use std::process::Command;
use videocall_client::Transport;

use videocall_testkit::{cpu_seconds, free_tcp_port, rss_kib, ChildGuard};

/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The running processes of one run.
pub struct Servers {
    nats: ChildGuard,
    server: ChildGuard,
    /// Where participants connect.
    pub port: u16,
    /// The WebTransport certificate's SHA-256 (WebSocket: unused).
    pub certificate_sha256: [u8; 32],
    _dir: tempfile::TempDir,
}

/// What the processes used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds of the media server and NATS together.
    pub cpu: f64,
    /// Of which NATS.
    pub nats_cpu: f64,
    /// Resident memory of both, KiB.
    pub rss_kib: u64,
}

impl Servers {
    /// Starts NATS and videocall-rs's server for `transport` from `bin_dir` (which holds
    /// `websocket_server` and `webtransport_server`).
    pub async fn start(bin_dir: &Path, transport: Transport) -> anyhow::Result<Servers> {
        let dir = tempfile::tempdir()?;
        let nats_port = free_tcp_port();
        let nats = ChildGuard(
            Command::new("nats-server")
                .args(["-a", "127.0.0.1", "-p", &nats_port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("nats-server (apt install nats-server)")?,
        );
        wait_tcp(nats_port).await?;
        let nats_url = format!("nats://127.0.0.1:{nats_port}");
        let port = free_tcp_port();
        let mut certificate_sha256 = [0u8; 32];
        let mut server = match transport {
            Transport::WebSocket => Command::new(bin_dir.join("websocket_server")),
            Transport::WebTransport => {
                let identity = wtransport::Identity::self_signed(["localhost", "127.0.0.1"])?;
                let certificate = &identity.certificate_chain().as_slice()[0];
                certificate_sha256 = *certificate.hash().as_ref();
                let cert = dir.path().join("cert.pem");
                let key = dir.path().join("key.pem");
                std::fs::write(&cert, certificate.to_pem())?;
                std::fs::write(&key, identity.private_key().to_secret_pem())?;
                let mut server = Command::new(bin_dir.join("webtransport_server"));
                server
                    .env("LISTEN_URL", format!("127.0.0.1:{port}"))
                    .env(
                        "HEALTH_LISTEN_URL",
                        format!("127.0.0.1:{}", free_tcp_port()),
                    )
                    .env("CERT_PATH", cert)
                    .env("KEY_PATH", key);
                server
            }
        };
        server
            .env("NATS_URL", &nats_url)
            .env("ACTIX_PORT", port.to_string())
            .env("FEATURE_MEETING_MANAGEMENT", "false")
            .env("DATABASE_ENABLED", "false")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = ChildGuard(server.spawn().with_context(|| {
            format!(
                "videocall-rs's server in {} (build it first)",
                bin_dir.display()
            )
        })?);
        match transport {
            Transport::WebSocket => wait_tcp(port).await?,
            // QUIC: nothing to connect to before it listens; give it its start.
            Transport::WebTransport => tokio::time::sleep(Duration::from_millis(1500)).await,
        }
        Ok(Servers {
            nats,
            server,
            port,
            certificate_sha256,
            _dir: dir,
        })
    }

    /// CPU and memory so far.
    pub fn usage(&self) -> Usage {
        let nats_cpu = cpu_seconds(self.nats.pid());
        Usage {
            cpu: cpu_seconds(self.server.pid()) + nats_cpu,
            nats_cpu,
            rss_kib: rss_kib(self.server.pid()) + rss_kib(self.nats.pid()),
        }
    }

    /// Whether the media server is still running (it may fall over under load).
    pub fn running(&mut self) -> bool {
        self.server.is_running()
    }
}

/// The directory `relay-bench --videocall-rs` reads the servers from by default.
pub fn default_bin_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/videocall-rs-bench/target/release")
}

async fn wait_tcp(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
