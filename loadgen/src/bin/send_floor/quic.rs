//! The QUIC floors: the same packets as `udp-sealed`, now as datagrams of real QUIC connections
//! (handshake, packet numbers, the ACKs that come back, loss detection, timers), sent two ways:
//! - `quinn`: quinn's endpoint on a tokio runtime of two workers, as the relay has it through
//!   wtransport: one thread calls `send_datagram` on every subscriber's connection, and each
//!   call wakes that connection's driver task, which builds the packet and sends it;
//! - `quinn-proto`: the same protocol state machines (quinn-proto, which quinn drives) driven
//!   by hand on one thread, with no tasks, no channels and no locks: for each subscriber, queue
//!   the datagram, build its packet, send it with quinn-udp; read the ACKs (and run the
//!   connections' timers) while waiting for the next tick.
//!
//! The difference between the two is what quinn's tasks cost per packet; the difference between
//! `quinn-proto` and `udp-sealed` is what QUIC's state costs. The subscribers are quinn clients
//! in a second process, each an endpoint (a socket) of its own, reading datagrams and dropping
//! them.

use std::io::{ErrorKind, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use quinn_proto as proto;
use wtransport::quinn::{self, rustls, udp};

use crate::{sleep_until, spawn_subscribers, tick, Cli};

/// How long the subscribers may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A self-signed certificate for `localhost`, its key, and the file the subscribers read the
/// certificate from.
struct Identity {
    certificate: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    certificate_file: tempfile::NamedTempFile,
}

impl Identity {
    fn new() -> anyhow::Result<Self> {
        let identity = wtransport::Identity::self_signed(["localhost"])?;
        let certificate = identity
            .certificate_chain()
            .as_slice()
            .first()
            .context("a self-signed certificate")?
            .der()
            .to_vec();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            identity.private_key().secret_der().to_vec().into(),
        );
        let certificate_file = tempfile::NamedTempFile::new()?;
        std::fs::write(certificate_file.path(), &certificate)?;
        Ok(Identity {
            certificate: certificate.into(),
            key,
            certificate_file,
        })
    }

    /// The server's configuration: quinn's defaults, and the ACK frequency `cli` asks for.
    fn server_config(&self, cli: &Cli) -> anyhow::Result<proto::ServerConfig> {
        let mut config = proto::ServerConfig::with_single_cert(
            vec![self.certificate.clone()],
            self.key.clone_key(),
        )?;
        if cli.quic_ack_threshold > 1 {
            let mut ack_frequency = proto::AckFrequencyConfig::default();
            ack_frequency
                .ack_eliciting_threshold(proto::VarInt::from_u32(cli.quic_ack_threshold))
                .max_ack_delay(Some(Duration::from_millis(cli.quic_max_ack_delay_ms)));
            let mut transport = proto::TransportConfig::default();
            transport.ack_frequency_config(Some(ack_frequency));
            config.transport_config(Arc::new(transport));
        }
        Ok(config)
    }

    /// Starts the subscribers of a server at `server`.
    fn spawn_subscribers(
        &self,
        cli: &Cli,
        server: SocketAddr,
    ) -> anyhow::Result<videocall_testkit::ChildGuard> {
        spawn_subscribers(&[
            "--subscribe-quic".into(),
            server.to_string(),
            "--certificate".into(),
            self.certificate_file.path().display().to_string(),
            "--subscribers".into(),
            cli.subscribers.to_string(),
        ])
    }
}

/// `quinn`: quinn's endpoint and tasks; returns the packets sent and the CPU seconds.
pub fn send_quinn(cli: &Cli) -> anyhow::Result<(u64, f64)> {
    let identity = Identity::new()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let endpoint = {
        let _guard = runtime.enter();
        quinn::Endpoint::server(
            identity.server_config(cli)?,
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )?
    };
    let _subscribers = identity.spawn_subscribers(cli, endpoint.local_addr()?)?;
    let connections = runtime.block_on(async {
        let mut connections = Vec::with_capacity(cli.subscribers);
        while connections.len() < cli.subscribers {
            let incoming = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.accept())
                .await
                .context("waiting for a subscriber")?
                .context("the endpoint closed")?;
            connections.push(incoming.await?);
        }
        anyhow::Ok(connections)
    })?;
    let payload = Bytes::from(vec![0x5a; cli.bytes]);
    let result = tick(
        cli,
        || {
            for connection in &connections {
                connection.send_datagram(payload.clone())?;
            }
            Ok(connections.len())
        },
        sleep_until,
    );
    endpoint.close(0u32.into(), b"done");
    result
}

/// `quinn-proto`: the state machines driven by hand on this thread.
pub fn send_quinn_proto(cli: &Cli) -> anyhow::Result<(u64, f64)> {
    let identity = Identity::new()?;
    let mut server = ProtoServer::new(identity.server_config(cli)?)?;
    let _subscribers = identity.spawn_subscribers(cli, server.socket.local_addr()?)?;
    let connect_by = Instant::now() + CONNECT_TIMEOUT;
    while server.connected < cli.subscribers {
        anyhow::ensure!(
            Instant::now() < connect_by,
            "{} of {} subscribers connected",
            server.connected,
            cli.subscribers
        );
        server.wait_until(Instant::now() + Duration::from_millis(10))?;
    }
    let payload = Bytes::from(vec![0x5a; cli.bytes]);
    let result = {
        let server = std::cell::RefCell::new(&mut server);
        tick(
            cli,
            || server.borrow_mut().send_to_all(&payload),
            |deadline| server.borrow_mut().wait_until(deadline),
        )
    };
    anyhow::ensure!(
        server.lost == 0,
        "{} connections were lost while sending",
        server.lost
    );
    if server.refused > 0 {
        println!(
            "quinn-proto: the socket refused {} transmits (full)",
            server.refused
        );
    }
    result
}

/// One QUIC endpoint and its connections, driven by the calls of one thread.
struct ProtoServer {
    endpoint: proto::Endpoint,
    /// By `ConnectionHandle`'s index.
    connections: Vec<Option<proto::Connection>>,
    socket: UdpSocket,
    state: udp::UdpSocketState,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    /// The earliest timer of any connection, as of the last time each was driven.
    next_timeout: Option<Instant>,
    connected: usize,
    lost: usize,
    refused: u64,
}

impl ProtoServer {
    fn new(server_config: proto::ServerConfig) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        socket.set_nonblocking(true)?;
        let state = udp::UdpSocketState::new((&socket).into())?;
        let endpoint = proto::Endpoint::new(
            Arc::new(proto::EndpointConfig::default()),
            Some(Arc::new(server_config)),
            !state.may_fragment(),
            None,
        );
        let recv_buf = vec![0; 64 * 1024 * state.gro_segments().max(1) * udp::BATCH_SIZE];
        Ok(ProtoServer {
            endpoint,
            connections: Vec::new(),
            socket,
            state,
            recv_buf,
            send_buf: Vec::new(),
            next_timeout: None,
            connected: 0,
            lost: 0,
            refused: 0,
        })
    }

    /// Queues `payload` as a datagram on every connection and sends each one's packets.
    fn send_to_all(&mut self, payload: &Bytes) -> anyhow::Result<usize> {
        let now = Instant::now();
        let mut sent = 0;
        for index in 0..self.connections.len() {
            let Some(connection) = self.connections[index].as_mut() else {
                continue;
            };
            connection.datagrams().send(payload.clone(), true)?;
            self.drive(index, now)?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Reads what arrives and runs the connections' timers until `deadline`.
    fn wait_until(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let now = Instant::now();
            if self.next_timeout.is_some_and(|timeout| timeout <= now) {
                self.run_timers(now)?;
            }
            if now >= deadline {
                return Ok(());
            }
            let wake = self.next_timeout.map_or(deadline, |t| t.min(deadline));
            if readable(&self.socket, wake.saturating_duration_since(now))? {
                self.receive()?;
            }
        }
    }

    /// Hands every datagram waiting on the socket to the endpoint and its connections.
    fn receive(&mut self) -> anyhow::Result<()> {
        let mut metas = [udp::RecvMeta::default(); udp::BATCH_SIZE];
        loop {
            let chunk = self.recv_buf.len() / udp::BATCH_SIZE;
            let mut chunks = self.recv_buf.chunks_mut(chunk).map(IoSliceMut::new);
            let mut iovs: [IoSliceMut; udp::BATCH_SIZE] =
                std::array::from_fn(|_| chunks.next().unwrap_or_else(|| IoSliceMut::new(&mut [])));
            let count = match self
                .state
                .recv((&self.socket).into(), &mut iovs, &mut metas)
            {
                Ok(count) => count,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            // Copied out as quinn's endpoint does, so the buffer is free for the next read.
            let datagrams: Vec<(udp::RecvMeta, BytesMut)> = metas
                .iter()
                .zip(iovs.iter())
                .take(count)
                .map(|(meta, buf)| (*meta, BytesMut::from(&buf[..meta.len])))
                .collect();
            let now = Instant::now();
            for (meta, mut data) in datagrams {
                while !data.is_empty() {
                    let segment = data.split_to(meta.stride.min(data.len()));
                    self.handle(now, &meta, segment)?;
                }
            }
        }
    }

    fn handle(&mut self, now: Instant, meta: &udp::RecvMeta, data: BytesMut) -> anyhow::Result<()> {
        let mut response = Vec::new();
        let ecn = meta
            .ecn
            .and_then(|ecn| proto::EcnCodepoint::from_bits(ecn as u8));
        match self
            .endpoint
            .handle(now, meta.addr, meta.dst_ip, ecn, data, &mut response)
        {
            Some(proto::DatagramEvent::NewConnection(incoming)) => {
                match self.endpoint.accept(incoming, now, &mut response, None) {
                    Ok((handle, connection)) => {
                        if self.connections.len() <= handle.0 {
                            self.connections.resize_with(handle.0 + 1, || None);
                        }
                        self.connections[handle.0] = Some(connection);
                        self.drive(handle.0, now)?;
                    }
                    Err(error) => {
                        if let Some(transmit) = error.response {
                            self.send(&transmit, &response)?;
                        }
                    }
                }
            }
            Some(proto::DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(connection) =
                    self.connections.get_mut(handle.0).and_then(Option::as_mut)
                {
                    connection.handle_event(event);
                    self.drive(handle.0, now)?;
                }
            }
            Some(proto::DatagramEvent::Response(transmit)) => self.send(&transmit, &response)?,
            None => {}
        }
        Ok(())
    }

    fn run_timers(&mut self, now: Instant) -> anyhow::Result<()> {
        self.next_timeout = None;
        for index in 0..self.connections.len() {
            let Some(connection) = self.connections[index].as_mut() else {
                continue;
            };
            match connection.poll_timeout() {
                Some(timeout) if timeout <= now => {
                    connection.handle_timeout(now);
                    self.drive(index, now)?;
                }
                Some(timeout) => {
                    self.next_timeout = Some(self.next_timeout.map_or(timeout, |t| t.min(timeout)));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// What quinn's connection driver does on a wake-up: the endpoint's events both ways, the
    /// application's events, then every packet the connection has to send.
    fn drive(&mut self, index: usize, now: Instant) -> anyhow::Result<()> {
        let Some(connection) = self.connections.get_mut(index).and_then(Option::as_mut) else {
            return Ok(());
        };
        let handle = proto::ConnectionHandle(index);
        while let Some(event) = connection.poll_endpoint_events() {
            if let Some(event) = self.endpoint.handle_event(handle, event) {
                connection.handle_event(event);
            }
        }
        while let Some(event) = connection.poll() {
            match event {
                proto::Event::Connected => self.connected += 1,
                proto::Event::ConnectionLost { reason } => {
                    eprintln!("quinn-proto: a subscriber's connection was lost: {reason}");
                    self.lost += 1;
                }
                _ => {}
            }
        }
        let segments = self.state.max_gso_segments();
        loop {
            self.send_buf.clear();
            let Some(transmit) = connection.poll_transmit(now, segments, &mut self.send_buf) else {
                break;
            };
            let contents = &self.send_buf[..transmit.size];
            let datagram = udp::Transmit {
                destination: transmit.destination,
                ecn: transmit
                    .ecn
                    .and_then(|ecn| udp::EcnCodepoint::from_bits(ecn as u8)),
                contents,
                segment_size: transmit.segment_size,
                src_ip: transmit.src_ip,
            };
            match self.state.send((&self.socket).into(), &datagram) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => self.refused += 1,
                Err(error) => return Err(error.into()),
            }
        }
        if let Some(timeout) = connection.poll_timeout() {
            self.next_timeout = Some(self.next_timeout.map_or(timeout, |t| t.min(timeout)));
        }
        Ok(())
    }

    /// Sends a transmit the endpoint made itself (a refusal, a stateless reset).
    fn send(&mut self, transmit: &proto::Transmit, buf: &[u8]) -> anyhow::Result<()> {
        let datagram = udp::Transmit {
            destination: transmit.destination,
            ecn: None,
            contents: &buf[..transmit.size],
            segment_size: transmit.segment_size,
            src_ip: transmit.src_ip,
        };
        match self.state.send((&self.socket).into(), &datagram) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                self.refused += 1;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Waits up to `timeout` for `socket` to have something to read.
fn readable(socket: &UdpSocket, timeout: Duration) -> anyhow::Result<bool> {
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up, so a wait for less than a millisecond is not a busy loop.
    let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `poll` points at one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    if ready < 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() == ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(error.into());
    }
    Ok(ready > 0)
}

/// The subscribers of a QUIC sender: `n` quinn clients, each an endpoint of its own, that
/// trust `certificate` (DER), read datagrams and drop them until the sender stops this process.
pub fn subscribe(server: SocketAddr, certificate: &Path, n: usize) -> anyhow::Result<()> {
    let client_config = client_config(&std::fs::read(certificate)?)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let (endpoint, connection) = connect(server, &client_config).await?;
            readers.push(tokio::spawn(async move {
                let _endpoint = endpoint;
                while connection.read_datagram().await.is_ok() {}
            }));
        }
        for reader in readers {
            let _ = reader.await;
        }
        Ok(())
    })
}

/// A client configuration that trusts `certificate` (DER) alone.
fn client_config(certificate: &[u8]) -> anyhow::Result<quinn::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(
        certificate.to_vec(),
    ))?;
    Ok(quinn::ClientConfig::with_root_certificates(Arc::new(
        roots,
    ))?)
}

/// One subscriber: an endpoint of its own, connected to `server`.
async fn connect(
    server: SocketAddr,
    config: &quinn::ClientConfig,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    endpoint.set_default_client_config(config.clone());
    let connection = endpoint.connect(server, "localhost")?.await?;
    Ok((endpoint, connection))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The hand-driven endpoint is a real QUIC server: it completes the handshakes, delivers
    /// every datagram to every subscriber, and reads the ACKs that come back.
    #[test]
    fn the_hand_driven_endpoint_delivers_every_datagram_and_reads_the_acks() {
        const SUBSCRIBERS: usize = 3;
        const PACKETS: usize = 40;
        let identity = Identity::new().expect("identity");
        let mut server = ProtoServer::new(
            identity
                .server_config(&Cli::parse_from(["send-floor"]))
                .expect("config"),
        )
        .expect("server");
        let address = server.socket.local_addr().expect("address");
        let config = client_config(&identity.certificate).expect("client config");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let subscribers = std::thread::spawn(move || {
            let received = runtime.block_on(async move {
                let mut counts = Vec::new();
                for _ in 0..SUBSCRIBERS {
                    let (endpoint, connection) = connect(address, &config).await.expect("connect");
                    counts.push(tokio::spawn(async move {
                        let mut received = 0;
                        while received < PACKETS {
                            let datagram = tokio::time::timeout(
                                Duration::from_secs(10),
                                connection.read_datagram(),
                            )
                            .await
                            .expect("a datagram within 10 s")
                            .expect("the connection stays up");
                            assert_eq!(datagram.len(), 868);
                            received += 1;
                        }
                        // Kept open (and returned) so that no close reaches the server.
                        (received, endpoint, connection)
                    }));
                }
                let mut received = Vec::new();
                for count in counts {
                    received.push(count.await.expect("subscriber"));
                }
                received
            });
            (received, runtime)
        });
        let connect_by = Instant::now() + Duration::from_secs(10);
        while server.connected < SUBSCRIBERS {
            assert!(
                Instant::now() < connect_by,
                "{} connected",
                server.connected
            );
            server
                .wait_until(Instant::now() + Duration::from_millis(5))
                .expect("wait");
        }
        let payload = Bytes::from(vec![0x5a; 868]);
        for _ in 0..PACKETS {
            assert_eq!(server.send_to_all(&payload).expect("send"), SUBSCRIBERS);
            server
                .wait_until(Instant::now() + Duration::from_millis(5))
                .expect("wait");
        }
        // The ACKs of the last packets come within the peers' ACK delay (25 ms).
        server
            .wait_until(Instant::now() + Duration::from_millis(100))
            .expect("wait");
        let (received, runtime) = subscribers.join().expect("subscribers");
        assert_eq!(
            received.iter().map(|(count, _, _)| count).sum::<usize>(),
            SUBSCRIBERS * PACKETS
        );
        assert_eq!(server.lost, 0);
        for connection in server.connections.iter().flatten() {
            assert!(
                connection.stats().frame_rx.acks > 0,
                "the subscriber's ACKs were read"
            );
        }
        // The subscribers' connections close inside their runtime.
        drop(received);
        drop(runtime);
    }
}
