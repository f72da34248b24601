//! A slow link on loopback for TCP: a proxy that passes a client's bytes to a server at once
//! and the server's back at a set rate (0: no limit), reading them from the server no faster
//! than that through a small receive buffer, so the server's socket fills as it would behind a
//! slow access link. Tests put a WebSocket client behind it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The proxy's receive buffer towards the server (small: the server's queue shows the limit).
const RECEIVE_BUFFER: u32 = 16 * 1024;
/// Most bytes read from the server at once.
const CHUNK: usize = 4 * 1024;

/// A running proxy; it stops when dropped.
pub struct ShapedTcp {
    /// Where clients connect (it forwards to the server).
    pub addr: SocketAddr,
    rate_bps: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ShapedTcp {
    /// A proxy on a loopback port for `server`, sending to clients at `rate_bps` (0: no limit).
    pub async fn start(server: SocketAddr, rate_bps: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let rate = Arc::new(AtomicU64::new(rate_bps));
        let task = tokio::spawn(accept(listener, server, rate.clone()));
        Ok(ShapedTcp {
            addr,
            rate_bps: rate,
            task,
        })
    }

    /// Changes the rate towards clients (0: no limit).
    pub fn set_rate(&self, rate_bps: u64) {
        self.rate_bps.store(rate_bps, Ordering::Relaxed);
    }
}

impl Drop for ShapedTcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, server: SocketAddr, rate: Arc<AtomicU64>) {
    let mut tasks = Vec::new();
    while let Ok((client, _)) = listener.accept().await {
        let Ok(upstream) = connect(server).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let (mut client_read, client_write) = client.into_split();
        let (upstream_read, mut upstream_write) = upstream.into_split();
        tasks.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        }));
        tasks.push(tokio::spawn(pace(
            upstream_read,
            client_write,
            rate.clone(),
        )));
    }
    for task in tasks {
        task.abort();
    }
}

async fn connect(server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Copies the server's bytes to the client, each chunk after the one before it has had its
/// time on the link.
async fn pace(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rate: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut free_at = Instant::now();
    loop {
        tokio::time::sleep_until(free_at).await;
        let Ok(read) = from.read(&mut buf).await else {
            return;
        };
        if read == 0 || to.write_all(&buf[..read]).await.is_err() {
            return;
        }
        let rate = rate.load(Ordering::Relaxed);
        if rate > 0 {
            let on_link = Duration::from_secs_f64(read as f64 * 8.0 / rate as f64);
            free_at = free_at.max(Instant::now()) + on_link;
        }
    }
}
