//! Gateway figures: what the routing decision costs, the latency one gateway hop adds on
//! loopback, and datagrams forwarded per CPU-second of the gateway process.
//!
//! `cargo bench -p videocall-gateway --bench gateway` (prints figures; BENCHMARKS.md).
//! The "relay" behind the gateway is a UDP echo, so the figures are the gateway's alone.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::UdpSocket;
use videocall_gateway::router::{Router, RouterConfig};
use videocall_gateway::GatewayInfo;
use videocall_quic_lb::cid::encode;
use videocall_quic_lb::initial::{crypto_frame, seal_client_initial};
use videocall_quic_lb::ServerId;
use videocall_testkit::{cpu_seconds, wait_for_json, ChildGuard};

const PAYLOAD: usize = 1200;

fn short_packet(server: u16, seq: u64) -> Vec<u8> {
    let mut packet = vec![0x41];
    packet.extend_from_slice(&encode(ServerId(server), [7; 5]));
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.resize(PAYLOAD, 0xab);
    packet
}

fn decisions() {
    let mut router = Router::new(RouterConfig::default());
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap_or_else(|_| unreachable!());
    let packet = short_packet(3, 0);
    let n = 5_000_000u32;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(router.route(Instant::now(), from, std::hint::black_box(&packet)));
    }
    let short_ns = start.elapsed().as_nanos() as f64 / f64::from(n);

    // A first Initial: derive keys, decrypt, reassemble, read the name.
    let hello = videocall_quic_lb::client_hello::real_client_hello("relay-3.meet.example.org")
        .expect("a ClientHello");
    let initials: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let mut dcid = [0u8; 8];
            dcid[..4].copy_from_slice(&i.to_be_bytes());
            seal_client_initial(&dcid, &[], 0, &crypto_frame(0, &hello)).unwrap_or_default()
        })
        .collect();
    let start = Instant::now();
    for datagram in &initials {
        std::hint::black_box(router.route(Instant::now(), from, datagram));
    }
    let initial_us = start.elapsed().as_secs_f64() * 1e6 / initials.len() as f64;
    println!("routing decision, short header (1-RTT):      {short_ns:.0} ns");
    println!("routing decision, first Initial (decrypt+SNI): {initial_us:.1} µs");
}

async fn echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn round_trips(target: SocketAddr, n: u64) -> Histogram<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(target).await.expect("connect");
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let mut buf = vec![0u8; 65_535];
    for seq in 0..n {
        let packet = short_packet(0, seq);
        let start = Instant::now();
        socket.send(&packet).await.expect("send");
        match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
            Ok(Ok(_)) => {
                let _ = histogram.record(start.elapsed().as_nanos() as u64);
            }
            _ => continue,
        }
    }
    histogram
}

/// `flows` clients each keep `window` datagrams in flight for `per_flow` round trips.
async fn throughput(
    target: SocketAddr,
    flows: usize,
    per_flow: u64,
    window: u64,
) -> (u64, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..flows {
        tasks.push(tokio::spawn(async move {
            let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
            socket.connect(target).await.expect("connect");
            let mut buf = vec![0u8; 65_535];
            let mut sent = 0u64;
            let mut received = 0u64;
            while received < per_flow {
                while sent < per_flow && sent - received < window {
                    let _ = socket.send(&short_packet(0, sent)).await;
                    sent += 1;
                }
                match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
                {
                    Ok(Ok(_)) => received += 1,
                    // A lost datagram: count it and move on.
                    _ => received += sent - received,
                }
            }
            received
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap_or(0);
    }
    (total, start.elapsed())
}

fn micros(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    decisions();

    let backend = echo().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = dir.path().join("ready.json");
    let child = Command::new(env!("CARGO_BIN_EXE_videocall-gateway"))
        .args(["--quic-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--admin-addr", "127.0.0.1:0", "--relay"])
        .arg(format!("0={backend}/127.0.0.1:9"))
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let mut child = ChildGuard(child);
    let info: GatewayInfo = wait_for_json(&ready, &mut child, Duration::from_secs(20)).await;

    // Warm both paths, then measure.
    round_trips(backend, 1_000).await;
    round_trips(info.quic_addr, 1_000).await;
    let direct = round_trips(backend, 20_000).await;
    let through = round_trips(info.quic_addr, 20_000).await;
    println!(
        "round trip, 1200-byte datagram, direct:          p50 {:.1} µs  p99 {:.1} µs",
        micros(&direct, 0.5),
        micros(&direct, 0.99)
    );
    println!(
        "round trip, 1200-byte datagram, via gateway:     p50 {:.1} µs  p99 {:.1} µs",
        micros(&through, 0.5),
        micros(&through, 0.99)
    );
    println!(
        "added per gateway hop (half the round-trip difference): p50 {:.1} µs",
        (micros(&through, 0.5) - micros(&direct, 0.5)) / 2.0
    );

    let cpu_before = cpu_seconds(child.pid());
    let (echoed, elapsed) = throughput(info.quic_addr, 8, 50_000, 32).await;
    let cpu = cpu_seconds(child.pid()) - cpu_before;
    // Each echo crosses the gateway twice: client → relay and relay → client.
    let forwarded = echoed * 2;
    println!(
        "throughput, 8 flows: {:.0} datagrams/s forwarded, gateway CPU {:.2} s → {:.0} datagrams per CPU-second",
        forwarded as f64 / elapsed.as_secs_f64(),
        cpu,
        forwarded as f64 / cpu.max(0.01)
    );
}
