//! `nats-server` processes of a test's own (Debian's `nats-server`), on free loopback ports,
//! stopped by PID (SIGKILL) when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// A `nats-server` of the test's own.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with configuration file text `config` (may be empty) and `args`.
    pub fn start(config: &str, args: &[&str]) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = tempfile::tempdir().expect("dir");
        let conf = dir.path().join("nats.conf");
        std::fs::write(&conf, config).expect("config");
        let mut all = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-c".to_owned(),
            conf.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut server = NatsServer {
            child: None,
            port,
            args: all,
            _dir: dir,
        };
        server.start_again();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The same server again, on the same port (after [`Self::kill`]).
    pub fn start_again(&mut self) {
        self.kill();
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt install nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + LISTEN_WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, then the same server again on the same port.
    pub fn restart(&mut self) {
        self.start_again();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The NATS server every machine of this project runs (`127.0.0.1:4222`).
pub const SHARED_NATS: &str = "nats://127.0.0.1:4222";

/// A subject prefix no other run shares (the shared server outlives tests).
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("test.{name}.{:x}{:x}", nanos, std::process::id())
}
