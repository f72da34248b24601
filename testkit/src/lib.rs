//! Support for integration tests: child processes stopped by PID, files they write,
//! plain HTTP requests, Prometheus values and waiting on client events; a test PKI (`pki`);
//! slow links on loopback (`shaped_udp`, `shaped_tcp`).

pub mod nats;
pub mod oidc;
pub mod pki;
pub mod raw_join;
pub mod shaped_tcp;
pub mod shaped_udp;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videocall_client::{Client, Event};
use videocall_protocol::wire::envelope::Body;

/// Relay flags that put every listener on a loopback port chosen by the OS.
pub const LOOPBACK_RELAY_ADDRS: [&str; 6] = [
    "--webtransport-addr",
    "127.0.0.1:0",
    "--websocket-addr",
    "127.0.0.1:0",
    "--admin-addr",
    "127.0.0.1:0",
];

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server that must be told its
/// port before it starts).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A command that runs `program`: through `VIDEOCALL_TEST_RUNNER` when that is set, e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu` to run binaries cross-built for another
/// architecture (`scripts/aarch64.sh`). The runner keeps the program's PID and signals.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let runner = std::env::var("VIDEOCALL_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut command = std::process::Command::new(first);
            command.args(words).arg(program);
            command
        }
        None => std::process::Command::new(program),
    }
}

/// A child process that is killed and reaped when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `path` holds JSON of type `T`, failing early if `child` exits.
pub async fn wait_for_json<T: DeserializeOwned>(
    path: &Path,
    child: &mut ChildGuard,
    within: Duration,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(value) = serde_json::from_slice(&bytes) {
                return value;
            }
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("process exited before writing {}: {status}", path.display());
        }
        assert!(
            Instant::now() < deadline,
            "{} was not written in time",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A socket-buffer setting of this machine's kernel, `/proc/sys/net/core/<name>` (`rmem_max`,
/// `wmem_max`, `rmem_default`…); `None` where the system does not say.
pub fn net_core_setting(name: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// CPU time (user + system) of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every mainstream architecture.
    ticks as f64 / 100.0
}

/// The number in line `field` (e.g. `VmRSS:`) of `/proc/<pid>/status` (0 if unknown).
fn status_number(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of process `pid` in KiB (0 if unknown).
pub fn rss_kib(pid: u32) -> u64 {
    status_number(pid, "VmRSS:")
}

/// Threads of process `pid` (0 if unknown).
pub fn threads(pid: u32) -> u64 {
    status_number(pid, "Threads:")
}

/// Open file descriptors of process `pid` (0 if unknown).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A minimal HTTP/1.0 request; returns (status, body).
pub async fn http_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Sum of a Prometheus metric's samples, optionally filtered by `{label="value",...}`.
pub fn metric_value(body: &str, name_with_labels: &str) -> f64 {
    let (name, labels) = match name_with_labels.split_once('{') {
        Some((n, l)) => (n, Some(l.trim_end_matches('}'))),
        None => (name_with_labels, None),
    };
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.is_none_or(|want| want.split(',').all(|kv| l.contains(kv))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reads events until `pick` returns something, or `within` passes.
pub async fn wait_for<T>(
    client: &mut Client,
    within: Duration,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, client.next_event())
            .await
            .ok()??;
        if let Some(found) = pick(&event) {
            return Some(found);
        }
    }
}

/// Reads events until the message picker matches.
pub async fn wait_for_message<T>(
    client: &mut Client,
    within: Duration,
    mut pick: impl FnMut(&Body) -> Option<T>,
) -> Option<T> {
    wait_for(client, within, |event| match event {
        Event::Message(body) => pick(body),
        Event::Closed { .. } | Event::Encryption(_) => None,
    })
    .await
}

/// Announces `tracks` for `client` and waits until the relay has applied the announcement:
/// a ping sent after it on the same control stream comes back. Media sent afterwards is
/// forwarded from its first packet. Other events read meanwhile are discarded.
pub async fn announce(client: &mut Client, tracks: &[(u32, videocall_protocol::wire::MediaKind)]) {
    use videocall_protocol::wire::{Ping, Pong};
    let announced = tracks
        .iter()
        .map(|&(id, kind)| videocall_client::synthetic::track(id, kind))
        .collect();
    let sender = client.sender();
    sender.announce(announced).await.expect("announce");
    let nonce = 0xA11_0C8ED;
    sender
        .send(Body::Ping(Ping {
            nonce,
            sent_at_us: 1,
        }))
        .await
        .expect("ping after the announcement");
    let applied = wait_for_message(client, Duration::from_secs(10), |m| match m {
        Body::Pong(Pong { nonce: n, .. }) if *n == nonce => Some(()),
        _ => None,
    })
    .await;
    assert!(
        applied.is_some(),
        "the relay did not answer after the announcement"
    );
}
