//! A slow link on loopback: a UDP proxy that passes a client's datagrams to a server at once
//! and the server's back to the client at a set rate, through a drop-tail queue of a set
//! length, as an access link with a bottleneck does. The rate can change while it runs (0: no
//! limit). Tests put a QUIC client behind it to see what a relay does with a slow subscriber.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running proxy; it stops when dropped.
pub struct ShapedUdp {
    /// Where clients send (it forwards to the server).
    pub addr: SocketAddr,
    rate_bps: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ShapedUdp {
    /// A proxy on a loopback port for `server`, sending to clients at `rate_bps` (0: no limit)
    /// through a queue that holds `queue` worth of that rate.
    pub async fn start(
        server: SocketAddr,
        rate_bps: u64,
        queue: Duration,
    ) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let rate = Arc::new(AtomicU64::new(rate_bps));
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(
            front,
            server,
            Link {
                rate_bps: rate.clone(),
                queue,
                dropped: dropped.clone(),
            },
        ));
        Ok(ShapedUdp {
            addr,
            rate_bps: rate,
            dropped,
            task,
        })
    }

    /// Changes the rate towards clients (0: no limit).
    pub fn set_rate(&self, rate_bps: u64) {
        self.rate_bps.store(rate_bps, Ordering::Relaxed);
    }

    /// Datagrams towards clients dropped at the full queue so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for ShapedUdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The link's settings, shared by every client's pacer.
#[derive(Clone)]
struct Link {
    rate_bps: Arc<AtomicU64>,
    queue: Duration,
    dropped: Arc<AtomicU64>,
}

async fn run(front: Arc<UdpSocket>, server: SocketAddr, link: Link) {
    let mut backends: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buf).await else {
            break;
        };
        let backend = match backends.get(&client) {
            Some(backend) => backend.clone(),
            None => {
                let Ok(backend) = connect(server).await else {
                    continue;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.push(tokio::spawn(read_server(backend.clone(), tx)));
                tasks.push(tokio::spawn(pace(front.clone(), client, rx, link.clone())));
                backends.insert(client, backend.clone());
                backend
            }
        };
        let _ = backend.send(&buf[..len]).await;
    }
    for task in tasks {
        task.abort();
    }
}

async fn connect(server: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    Ok(Arc::new(socket))
}

async fn read_server(backend: Arc<UdpSocket>, tx: mpsc::UnboundedSender<Vec<u8>>) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(len) = backend.recv(&mut buf).await {
        if tx.send(buf[..len].to_vec()).is_err() {
            return;
        }
    }
}

/// Sends the server's datagrams to `client` no faster than the rate: each leaves when the
/// one before it has had its time on the link.
async fn pace(
    front: Arc<UdpSocket>,
    client: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    link: Link,
) {
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut queued = 0usize;
    let mut free_at = Instant::now();
    loop {
        let rate = link.rate_bps.load(Ordering::Relaxed);
        if rate == 0 {
            while let Some(datagram) = queue.pop_front() {
                let _ = front.send_to(&datagram, client).await;
            }
            queued = 0;
        }
        let waiting = !queue.is_empty();
        tokio::select! {
            datagram = rx.recv() => {
                let Some(datagram) = datagram else { return };
                let room = (rate as f64 / 8.0 * link.queue.as_secs_f64()) as usize;
                if rate > 0 && queued + datagram.len() > room.max(3_000) {
                    link.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    queued += datagram.len();
                    queue.push_back(datagram);
                }
            }
            _ = tokio::time::sleep_until(free_at), if waiting => {
                if let Some(datagram) = queue.pop_front() {
                    queued -= datagram.len();
                    let _ = front.send_to(&datagram, client).await;
                    if rate > 0 {
                        let on_link = Duration::from_secs_f64(datagram.len() as f64 * 8.0 / rate as f64);
                        free_at = free_at.max(Instant::now()) + on_link;
                    }
                }
            }
        }
    }
}
