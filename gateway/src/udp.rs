//! The QUIC side: one public UDP socket, a flow per client address and relay.
//!
//! The routing decision is stateless ([`crate::router`]); a flow is only the return path:
//! an upstream socket whose replies go back to the client from the public socket. Losing
//! flows (a gateway restart) costs a client nothing but a new upstream port, which the relay
//! sees as a path migration and validates.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use videocall_quic_lb::ServerId;

use crate::backends::{Backends, Listener};
use crate::metrics::{ForwardFailure, Metrics};
use crate::router::{Decision, Router};

/// Largest datagram read; QUIC never sends more than a path's MTU, but never truncate.
const MAX_DATAGRAM: usize = 65_535;
/// How often held handshakes and idle flows are swept.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Limits of the UDP side.
#[derive(Debug, Clone)]
pub struct FlowLimits {
    /// A flow without client datagrams this long is closed.
    pub idle_timeout: Duration,
    /// Most flows.
    pub max_flows: usize,
    /// Datagrams queued per flow.
    pub queue: usize,
    /// Kernel buffer bytes asked for each flow's upstream socket (0: the default).
    pub udp_buffer_bytes: usize,
}

struct Flow {
    to_relay: mpsc::Sender<Bytes>,
    last_seen: Instant,
    task: tokio::task::JoinHandle<()>,
}

/// How long a relay that could not be found is not looked for again.
const UNKNOWN_RELAY_BACKOFF: Duration = Duration::from_secs(2);

/// The flows of one gateway and what opening one needs.
struct Flows {
    open: HashMap<(SocketAddr, ServerId), Flow>,
    public: Arc<UdpSocket>,
    backends: Arc<Backends>,
    limits: FlowLimits,
    metrics: Metrics,
    /// Relays that did not resolve, and when: their datagrams drop without a lookup each.
    unknown: HashMap<ServerId, Instant>,
    failed: mpsc::UnboundedSender<ServerId>,
}

impl Flows {
    /// Queues `datagram` from `client` for `server`, opening a flow if needed.
    fn forward(&mut self, client: SocketAddr, server: ServerId, datagram: Bytes) {
        if let Some(at) = self.unknown.get(&server) {
            if at.elapsed() < UNKNOWN_RELAY_BACKOFF {
                self.metrics.drop_forward(ForwardFailure::NoRelay);
                return;
            }
            self.unknown.remove(&server);
        }
        let key = (client, server);
        match self.open.get(&key).map(|flow| flow.to_relay.is_closed()) {
            Some(false) => {}
            None if self.open.len() >= self.limits.max_flows => {
                self.metrics.drop_forward(ForwardFailure::FlowLimit);
                return;
            }
            // New, or its task ended (the relay was unreachable): start one.
            _ => {
                let flow = self.start_flow(client, server);
                self.open.insert(key, flow);
            }
        }
        let Some(flow) = self.open.get_mut(&key) else {
            return;
        };
        flow.last_seen = Instant::now();
        if flow.to_relay.try_send(datagram).is_err() {
            self.metrics.drop_forward(ForwardFailure::QueueFull);
        }
    }

    /// A flow whose task forwards `client`'s datagrams to `server` and the replies back.
    fn start_flow(&self, client: SocketAddr, server: ServerId) -> Flow {
        let (tx, rx) = mpsc::channel(self.limits.queue.max(1));
        let task = tokio::spawn(run_flow(
            client,
            server,
            rx,
            FlowShared {
                public: self.public.clone(),
                backends: self.backends.clone(),
                metrics: self.metrics.clone(),
                failed: self.failed.clone(),
                udp_buffer_bytes: self.limits.udp_buffer_bytes,
            },
        ));
        Flow {
            to_relay: tx,
            last_seen: Instant::now(),
            task,
        }
    }

    /// Closes flows whose client went quiet.
    fn sweep(&mut self, now: Instant) {
        let idle_timeout = self.limits.idle_timeout;
        self.open.retain(|_, flow| {
            let keep =
                now.duration_since(flow.last_seen) < idle_timeout && !flow.to_relay.is_closed();
            if !keep {
                flow.task.abort();
            }
            keep
        });
        self.unknown
            .retain(|_, at| now.duration_since(*at) < UNKNOWN_RELAY_BACKOFF);
    }
}

impl Drop for Flows {
    fn drop(&mut self) {
        for flow in self.open.values() {
            flow.task.abort();
        }
    }
}

/// Routes datagrams until `shutdown`.
pub async fn serve(
    socket: Arc<UdpSocket>,
    mut router: Router,
    backends: Arc<Backends>,
    limits: FlowLimits,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let (failed, mut failures) = mpsc::unbounded_channel();
    let mut flows = Flows {
        open: HashMap::new(),
        public: socket.clone(),
        backends,
        limits,
        metrics: metrics.clone(),
        unknown: HashMap::new(),
        failed,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    let mut last_sweep = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(server) = failures.recv() => {
                flows.unknown.insert(server, Instant::now());
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                for (client, server, held) in router.expire(now) {
                    tracing::debug!(%client, %server, "handshake name incomplete: default relay");
                    for datagram in held {
                        flows.forward(client, server, Bytes::from(datagram));
                    }
                }
                if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                    last_sweep = now;
                    flows.sweep(now);
                }
                metrics.flows.set(flows.open.len() as i64);
                metrics.held.set(router.pending() as i64);
            }
            received = socket.recv_from(&mut buf) => {
                let (len, client) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        // ICMP errors surface here on some systems; they concern one peer.
                        tracing::debug!(%error, "UDP receive error");
                        continue;
                    }
                };
                let datagram = &buf[..len];
                match router.route(Instant::now(), client, datagram) {
                    Decision::Forward(server, by) => {
                        metrics.routed(by);
                        flows.forward(client, server, Bytes::copy_from_slice(datagram));
                    }
                    Decision::Release(server, by, held) => {
                        metrics.routed(by);
                        for earlier in held {
                            flows.forward(client, server, Bytes::from(earlier));
                        }
                        flows.forward(client, server, Bytes::copy_from_slice(datagram));
                    }
                    Decision::Held => {
                        tracing::debug!(%client, len, "ClientHello incomplete: datagram held");
                    }
                    Decision::Drop(reason) => {
                        tracing::debug!(%client, len, reason = reason.label(), "datagram dropped");
                        metrics.drop_routed(reason);
                    }
                }
            }
        }
    }
}

/// What every flow's task shares with the gateway.
struct FlowShared {
    /// The public QUIC socket, replies to the client go out on.
    public: Arc<UdpSocket>,
    backends: Arc<Backends>,
    metrics: Metrics,
    /// Where a flow says its relay could not be reached.
    failed: mpsc::UnboundedSender<ServerId>,
    /// Kernel buffer bytes asked for the upstream socket.
    udp_buffer_bytes: usize,
}

async fn run_flow(
    client: SocketAddr,
    server: ServerId,
    mut from_client: mpsc::Receiver<Bytes>,
    shared: FlowShared,
) {
    let FlowShared {
        public,
        backends,
        metrics,
        failed,
        udp_buffer_bytes,
    } = shared;
    let relay = match backends.resolve(server, Listener::Quic).await {
        Ok(addr) => addr,
        Err(error) => {
            // Logged once per back-off window: the loop drops the next ones unlooked.
            tracing::warn!(%client, %error, "datagrams for an unknown relay dropped");
            metrics.drop_forward(ForwardFailure::NoRelay);
            let _ = failed.send(server);
            return;
        }
    };
    let bind: SocketAddr = if relay.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = match UdpSocket::bind(bind).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%client, %error, "no upstream socket");
            return;
        }
    };
    if let Err(error) = videocall_udp_socket::set_buffers(&upstream, udp_buffer_bytes) {
        tracing::warn!(%client, %error, "upstream socket buffers left as the kernel's");
    }
    if let Err(error) = upstream.connect(relay).await {
        tracing::warn!(%client, %relay, %error, "cannot reach relay");
        return;
    }
    tracing::debug!(%client, %server, %relay, "flow opened");
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            datagram = from_client.recv() => match datagram {
                Some(datagram) => {
                    if upstream.send(&datagram).await.is_ok() {
                        metrics.to_relay.inc();
                    }
                }
                None => break,
            },
            received = upstream.recv(&mut buf) => match received {
                Ok(len) => {
                    if public.send_to(&buf[..len], client).await.is_ok() {
                        metrics.to_client.inc();
                    }
                }
                // A refused port (relay restarting) is reported per send; keep the flow.
                Err(error) => tracing::debug!(%client, %error, "upstream receive error"),
            },
        }
    }
}
