//! `send-floor`: what the kernel alone charges a sender for one forwarded packet at 1 → N, the
//! floor under any relay that writes each packet to each subscriber when it arrives.
//!
//! A sender thread does nothing but the sends: every tick it writes one packet to each of N
//! loopback subscribers, as the relay does for a publisher's packet at 1 → 500 (80 packets a
//! second, 868 bytes on average, as `relay-bench`'s 1 → 500 carries). The subscribers are a
//! second process that reads and drops, as `relay-bench`'s are. The figure is the sending
//! process's CPU (user and system) per packet:
//! - `tcp`: one `write` of a WebSocket binary frame per subscriber socket;
//! - `udp`: one `sendto` of a datagram per subscriber, from one socket (as a QUIC endpoint);
//! - `udp-sealed`: the same, each datagram first sealed with AES-128-GCM and its header masked,
//!   as QUIC protects a packet (no QUIC state, no ACKs: still below what QUIC costs);
//! - `quinn-proto` and `quinn`: real QUIC connections, datagrams, ACKs and all, driven by hand on
//!   one thread or by quinn's tasks (`quic.rs`).
//!
//! ```sh
//! cargo build --release -p videocall-loadgen --bin send-floor
//! target/release/send-floor --subscribers 500 --seconds 10
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ring::aead::{self, quic as header_protection, Aad, LessSafeKey, Nonce, UnboundKey};
use videocall_testkit::{cpu_seconds, ChildGuard};

mod quic;

#[derive(Debug, Parser)]
#[command(about = "Kernel floor of a sender's CPU per packet written to N loopback subscribers")]
struct Cli {
    /// Ways of sending to measure (default: all).
    #[arg(long, value_enum)]
    mode: Vec<Mode>,
    /// Subscribers each packet goes to.
    #[arg(long, default_value_t = 500)]
    subscribers: usize,
    /// Packets per second to each subscriber.
    #[arg(long, default_value_t = 80)]
    rate: u32,
    /// Bytes per packet.
    #[arg(long, default_value_t = 868)]
    bytes: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// QUIC modes: ask each subscriber to acknowledge after this many packets (the ACK
    /// frequency extension; 1 is QUIC's usual every other packet, unasked).
    #[arg(long, default_value_t = 1)]
    quic_ack_threshold: u32,
    /// QUIC modes, with `--quic-ack-threshold` above 1: the longest a subscriber may hold an ACK.
    #[arg(long, default_value_t = 25)]
    quic_max_ack_delay_ms: u64,
    /// Internal: be the subscribers of a TCP sender at this address.
    #[arg(long, hide = true)]
    subscribe_tcp: Option<SocketAddr>,
    /// Internal: be N UDP subscribers, printing their ports.
    #[arg(long, hide = true)]
    subscribe_udp: bool,
    /// Internal: be N QUIC subscribers of a sender at this address.
    #[arg(long, hide = true, requires = "certificate")]
    subscribe_quic: Option<SocketAddr>,
    /// Internal: the QUIC sender's certificate (DER), for `--subscribe-quic`.
    #[arg(long, hide = true)]
    certificate: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Tcp,
    Udp,
    UdpSealed,
    QuinnProto,
    Quinn,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(addr) = cli.subscribe_tcp {
        return subscribe_tcp(addr, cli.subscribers);
    }
    if cli.subscribe_udp {
        return subscribe_udp(cli.subscribers);
    }
    if let (Some(server), Some(certificate)) = (cli.subscribe_quic, &cli.certificate) {
        return quic::subscribe(server, certificate, cli.subscribers);
    }
    let modes = if cli.mode.is_empty() {
        vec![
            Mode::Tcp,
            Mode::Udp,
            Mode::UdpSealed,
            Mode::QuinnProto,
            Mode::Quinn,
        ]
    } else {
        cli.mode.clone()
    };
    println!(
        "{:<11} {:>5} {:>9} {:>7} {:>9}",
        "mode", "subs", "pkt/s", "cpu %", "µs/pkt"
    );
    for mode in modes {
        let (packets, cpu) = match mode {
            Mode::Tcp => send_tcp(&cli)?,
            Mode::Udp => send_udp(&cli, false)?,
            Mode::UdpSealed => send_udp(&cli, true)?,
            Mode::QuinnProto => quic::send_quinn_proto(&cli)?,
            Mode::Quinn => quic::send_quinn(&cli)?,
        };
        let seconds = cli.seconds as f64;
        println!(
            "{:<11} {:>5} {:>9.0} {:>7.1} {:>9.2}",
            mode.to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default(),
            cli.subscribers,
            packets as f64 / seconds,
            cpu / seconds * 100.0,
            cpu * 1e6 / packets.max(1) as f64
        );
    }
    Ok(())
}

/// Runs `send_all` (a packet to every subscriber) once per tick, for the warm-up and then the
/// measured seconds, and `wait_until` (the next tick) between ticks;
/// returns the packets sent and this process's CPU seconds while measuring.
fn tick(
    cli: &Cli,
    mut send_all: impl FnMut() -> anyhow::Result<usize>,
    mut wait_until: impl FnMut(Instant) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, f64)> {
    let period = Duration::from_secs_f64(1.0 / f64::from(cli.rate.max(1)));
    let me = std::process::id();
    let start = Instant::now();
    let measured_from = start + Duration::from_secs(cli.warmup);
    let end = measured_from + Duration::from_secs(cli.seconds);
    let mut next = start;
    let mut cpu_before = None;
    let mut packets = 0u64;
    while next < end {
        wait_until(next)?;
        if cpu_before.is_none() && next >= measured_from {
            cpu_before = Some(cpu_seconds(me));
        }
        let sent = send_all()?;
        if cpu_before.is_some() {
            packets += sent as u64;
        }
        next += period;
    }
    let cpu = cpu_seconds(me) - cpu_before.unwrap_or_default();
    Ok((packets, cpu))
}

fn spawn_subscribers(args: &[String]) -> anyhow::Result<ChildGuard> {
    let exe = std::env::current_exe().context("this binary's path")?;
    let child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .context("starting the subscribers")?;
    Ok(ChildGuard(child))
}

fn send_tcp(cli: &Cli) -> anyhow::Result<(u64, f64)> {
    anyhow::ensure!(
        (126..=usize::from(u16::MAX)).contains(&cli.bytes),
        "--bytes: 126 to 65535 for a frame with a 16-bit length"
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let _subscribers = spawn_subscribers(&[
        "--subscribe-tcp".into(),
        addr.to_string(),
        "--subscribers".into(),
        cli.subscribers.to_string(),
    ])?;
    let mut sockets = Vec::with_capacity(cli.subscribers);
    for _ in 0..cli.subscribers {
        let (socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        sockets.push(socket);
    }
    // One WebSocket binary frame, unmasked as a server's: 0x82, a 16-bit length, the payload.
    let mut frame = vec![0x82, 126];
    frame.extend_from_slice(&(cli.bytes as u16).to_be_bytes());
    frame.resize(4 + cli.bytes, 0x5a);
    tick(
        cli,
        || {
            for socket in &mut sockets {
                socket.write_all(&frame)?;
            }
            Ok(sockets.len())
        },
        sleep_until,
    )
}

fn send_udp(cli: &Cli, sealed: bool) -> anyhow::Result<(u64, f64)> {
    let mut subscribers = spawn_subscribers(&[
        "--subscribe-udp".into(),
        "--subscribers".into(),
        cli.subscribers.to_string(),
    ])?;
    let ports = subscribers
        .0
        .stdout
        .take()
        .context("the subscribers' ports")?;
    let targets: Vec<SocketAddr> = BufReader::new(ports)
        .lines()
        .take(cli.subscribers)
        .map(|port| {
            Ok(SocketAddr::from((
                [127, 0, 0, 1],
                port?.trim().parse::<u16>()?,
            )))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        targets.len() == cli.subscribers,
        "subscribers gave {} ports",
        targets.len()
    );
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let seal = Seal::new()?;
    let mut packet = vec![0x5a; cli.bytes];
    let mut number = 0u64;
    tick(
        cli,
        || {
            for target in &targets {
                if sealed {
                    number += 1;
                    seal.protect(number, &mut packet)?;
                }
                socket.send_to(&packet, target)?;
            }
            Ok(targets.len())
        },
        sleep_until,
    )
}

/// Sleeps until `deadline`: the wait between ticks of a sender that reads nothing.
fn sleep_until(deadline: Instant) -> anyhow::Result<()> {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    Ok(())
}

/// QUIC's packet protection, without QUIC: AES-128-GCM over the payload (its tag replacing
/// the last 16 bytes, so the size stays) and the header mask from a sample of it.
struct Seal {
    key: LessSafeKey,
    header: header_protection::HeaderProtectionKey,
}

/// Bytes of the short header that the mask covers and the AEAD takes as associated data.
const HEADER: usize = 21;
const TAG: usize = 16;

impl Seal {
    fn new() -> anyhow::Result<Self> {
        let key = UnboundKey::new(&aead::AES_128_GCM, &[7; 16])
            .map_err(|_| anyhow::anyhow!("AES-128-GCM key"))?;
        let header =
            header_protection::HeaderProtectionKey::new(&header_protection::AES_128, &[9; 16])
                .map_err(|_| anyhow::anyhow!("header protection key"))?;
        Ok(Seal {
            key: LessSafeKey::new(key),
            header,
        })
    }

    fn protect(&self, number: u64, packet: &mut [u8]) -> anyhow::Result<()> {
        anyhow::ensure!(
            packet.len() >= HEADER + TAG + 20,
            "packet too small to seal"
        );
        let (header, rest) = packet.split_at_mut(HEADER);
        let (payload, tag_space) = rest.split_at_mut(rest.len() - TAG);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(number), Aad::from(&header[..]), payload)
            .map_err(|_| anyhow::anyhow!("sealing"))?;
        tag_space.copy_from_slice(tag.as_ref());
        self.mask_header(packet)
    }

    /// XORs the header's first byte and packet number with the mask of the payload's sample:
    /// the same call protects and unprotects.
    fn mask_header(&self, packet: &mut [u8]) -> anyhow::Result<()> {
        let mask = self
            .header
            .new_mask(&packet[HEADER + 4..HEADER + 20])
            .map_err(|_| anyhow::anyhow!("header mask"))?;
        packet[0] ^= mask[0] & 0x1f;
        for (byte, m) in packet[HEADER - 4..HEADER].iter_mut().zip(&mask[1..]) {
            *byte ^= m;
        }
        Ok(())
    }
}

/// The AEAD nonce of packet `number` (QUIC XORs it with an IV; a fixed one here).
fn nonce(number: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&number.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// The subscribers of a TCP sender: `n` connections, each read and dropped by a task.
fn subscribe_tcp(addr: SocketAddr, n: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = tokio::net::TcpStream::from_std(connect(addr)?)?;
            readers.push(tokio::spawn(read_all(stream)));
        }
        for reader in readers {
            let _ = reader.await;
        }
        Ok(())
    })
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

async fn read_all(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// The subscribers of a UDP sender: `n` sockets, their ports printed one a line, each read
/// and dropped by a task until the sender stops this process.
fn subscribe_udp(n: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut sockets = Vec::with_capacity(n);
        let mut ports = String::new();
        for _ in 0..n {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            ports.push_str(&format!("{}\n", socket.local_addr()?.port()));
            sockets.push(socket);
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(ports.as_bytes())?;
        stdout.flush()?;
        let readers: Vec<_> = sockets
            .into_iter()
            .map(|socket| {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 2048];
                    while socket.recv(&mut buf).await.is_ok() {}
                })
            })
            .collect();
        for reader in readers {
            let _ = reader.await;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_keeps_its_size_and_opens_with_the_same_key() {
        let seal = Seal::new().expect("keys");
        let original = vec![0x5a; 868];
        let mut packet = original.clone();
        seal.protect(1, &mut packet).expect("sealed");
        assert_eq!(packet.len(), original.len());
        assert_ne!(
            packet[HEADER..],
            original[HEADER..],
            "the payload is encrypted"
        );
        // Undo the header mask, then open the payload with its tag.
        seal.mask_header(&mut packet).expect("mask");
        assert_eq!(packet[..HEADER], original[..HEADER]);
        let (header, rest) = packet.split_at_mut(HEADER);
        let opened = seal
            .key
            .open_in_place(nonce(1), Aad::from(&header[..]), rest)
            .expect("opens");
        assert_eq!(opened, &original[HEADER..original.len() - TAG]);
    }
}
