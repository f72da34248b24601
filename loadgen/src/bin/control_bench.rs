//! `control-bench`: Join RPC throughput and latency of the control plane, on SQLite and on
//! PostgreSQL. Open loop: requests are sent on a fixed schedule and latency is measured
//! from the scheduled send time, so a stalled server cannot hide its queue.
//!
//!     cargo build --release -p videocall-control-plane -p videocall-loadgen
//!     target/release/control-bench --rate 1000 --seconds 10

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use sqlx::Connection;
use tonic::transport::Channel;
use tonic::Request;
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::*;
use videocall_testkit::{cpu_seconds, rss_kib, wait_for_json, ChildGuard};

const ADMIN_PASSWORD: &str = "bench-admin-password";
const RELAY_KEY: (&str, &str) = ("vk_bench_relay", "bench-relay-secret-0123");

#[derive(Debug, Parser)]
#[command(about = "Join RPC throughput and latency on SQLite and PostgreSQL")]
struct Cli {
    /// Databases to measure (default: both).
    #[arg(long, value_enum)]
    database: Vec<Db>,
    /// Join requests per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Meetings the joins spread over.
    #[arg(long, default_value_t = 100)]
    meetings: usize,
    /// PostgreSQL server (a fresh database is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// The control-plane binary (default: next to this one).
    #[arg(long)]
    control_plane_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Db {
    Sqlite,
    Postgres,
}

/// CPU time of every PostgreSQL server process on this machine (0 when none runs): the
/// database shares the cores with the control plane and this generator.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "postgres")
                .unwrap_or(false)
        })
        .map(cpu_seconds)
        .sum()
}

/// `message` with an `authorization` header.
fn with<T>(auth: &str, mut request: Request<T>) -> Request<T> {
    if let Ok(value) = auth.parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = match &cli.control_plane_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("videocall-control-plane"))
            .context("locating videocall-control-plane")?,
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: cargo build --release -p videocall-control-plane",
        bin.display()
    );
    let databases = if cli.database.is_empty() {
        vec![Db::Sqlite, Db::Postgres]
    } else {
        cli.database.clone()
    };
    println!(
        "{:<9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8}",
        "database",
        "rate/s",
        "done/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cpu %",
        "gen %",
        "db %",
        "RSS MiB"
    );
    for db in databases {
        run(&cli, &bin, db).await?;
    }
    Ok(())
}

async fn run(cli: &Cli, bin: &PathBuf, db: Db) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pg_name = format!("vc_bench_{}", std::process::id());
    let url = match db {
        Db::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&cli.postgres_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {pg_name}"
            )))
            .execute(&mut conn)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {pg_name}")))
                .execute(&mut conn)
                .await?;
            let base = cli
                .postgres_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or("");
            format!("{base}/{pg_name}")
        }
    };
    let ready = dir.path().join("ready.json");
    let child = Command::new(bin)
        .args(["--grpc-addr", "127.0.0.1:0", "--database-url", &url])
        .args(["--bootstrap-admin-password", ADMIN_PASSWORD])
        .args([
            "--bootstrap-api-key",
            &format!("bench:relay:{}:{}", RELAY_KEY.0, RELAY_KEY.1),
        ])
        .args(["--max-participants-limit", "1000000"])
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("spawning the control plane")?;
    let mut child = ChildGuard(child);
    #[derive(serde::Deserialize)]
    struct Ready {
        grpc_addr: std::net::SocketAddr,
    }
    let ready: Ready = wait_for_json(&ready, &mut child, Duration::from_secs(30)).await;
    let channel = Channel::from_shared(format!("http://{}", ready.grpc_addr))?
        .connect()
        .await?;

    let login = AuthServiceClient::new(channel.clone())
        .login(LoginRequest {
            username: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await?
        .into_inner();
    let admin = format!("Bearer {}", login.session_token);
    let relay_auth = videocall_control_api::api_key_authorization(RELAY_KEY.0, RELAY_KEY.1);
    RelayServiceClient::new(channel.clone())
        .register_relay(with(
            &relay_auth,
            Request::new(RegisterRelayRequest {
                endpoints: Some(RelayEndpoints {
                    relay_id: "bench-relay".into(),
                    webtransport_url: "https://127.0.0.1:4433/".into(),
                    websocket_url: "ws://127.0.0.1:8081/ws".into(),
                    certificate_sha256: vec![],
                }),
                capacity_participants: 10_000_000,
                admin_url: String::new(),
            }),
        ))
        .await?;
    // Heartbeats keep the relay fresh, as a real relay's would.
    let beating = {
        let mut relays = RelayServiceClient::new(channel.clone());
        let auth = relay_auth.clone();
        tokio::spawn(async move {
            loop {
                let request = Request::new(HeartbeatRequest {
                    relay_id: "bench-relay".into(),
                    ..Default::default()
                });
                let _ = relays.heartbeat(with(&auth, request)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut meetings = MeetingServiceClient::new(channel.clone());
    for i in 0..cli.meetings {
        meetings
            .create_meeting(with(
                &admin,
                Request::new(CreateMeetingRequest {
                    id: format!("bench-{i}"),
                    guests_allowed: true,
                    max_participants: 1_000_000,
                    ..Default::default()
                }),
            ))
            .await?;
    }

    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / cli.rate.max(1) as f64);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(cli.warmup);
    let end = measure_from + Duration::from_secs(cli.seconds);
    let mut cpu_start = None;
    let mut tasks = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    loop {
        let scheduled = start + interval.mul_f64(n as f64);
        if scheduled >= end {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        if cpu_start.is_none() && scheduled >= measure_from {
            cpu_start = Some((
                cpu_seconds(child.pid()),
                cpu_seconds(std::process::id()),
                postgres_cpu_seconds(),
            ));
        }
        let measured = scheduled >= measure_from;
        let mut client = meetings.clone();
        let (histogram, errors, done) = (histogram.clone(), errors.clone(), done.clone());
        let meeting = format!("bench-{}", n as usize % cli.meetings);
        tasks.spawn(async move {
            let result = client
                .join_meeting(JoinMeetingRequest {
                    meeting_id: meeting,
                    display_name: "Bench".into(),
                    ..Default::default()
                })
                .await;
            if measured {
                let us = scheduled.elapsed().as_micros() as u64;
                if let Ok(mut h) = histogram.lock() {
                    let _ = h.record(us.max(1));
                }
                match result {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        n += 1;
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = end.saturating_duration_since(measure_from).as_secs_f64();
    let (cpu0, gen0, db0) = cpu_start.unwrap_or((0.0, 0.0, 0.0));
    let db_cpu = postgres_cpu_seconds() - db0;
    let cpu = cpu_seconds(child.pid()) - cpu0;
    let gen = cpu_seconds(std::process::id()) - gen0;
    beating.abort();
    let (p50, p99, max) = {
        let h = histogram
            .lock()
            .map_err(|_| anyhow::anyhow!("histogram lock"))?;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        (ms(0.5), ms(0.99), h.max() as f64 / 1000.0)
    };
    println!(
        "{:<9} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>7.0} {:>7.0} {:>7.0} {:>8.1}",
        format!("{db:?}").to_lowercase(),
        cli.rate,
        done.load(Ordering::Relaxed) as f64 / elapsed,
        p50,
        p99,
        max,
        errors.load(Ordering::Relaxed),
        100.0 * cpu / elapsed,
        100.0 * gen / elapsed,
        100.0 * db_cpu / elapsed,
        rss_kib(child.pid()) as f64 / 1024.0,
    );
    drop(child);
    if db == Db::Postgres {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&cli.postgres_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }
    Ok(())
}
