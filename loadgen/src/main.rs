//! `relay-bench`: drives a relay process with synthetic participants and prints what it
//! forwards, how fast, and at what cost. Speed goals are checked here, not in tests.
//!
//! The relay runs as its own process so its CPU time and memory can be read from /proc.
//! The load generator shares the machine with it: on 2 cores both halves compete. With
//! `--relays 2` the participants join through a control plane, which spreads them evenly
//! over two relays sharing the meeting over NATS.
//!
//! With `--soak-minutes N` it runs the soak instead (`soak`): a meeting held for N minutes
//! with churn, the relay sampled every 10 s (`scripts/soak.sh`).

mod deployment;
mod e2ee;
mod layout;
mod measure;
mod scenario;
mod soak;
mod videocall_rs;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use videocall_client::Transport;

use deployment::Setup;
use scenario::Scenario;

/// Benchmark the relay.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    /// Scenarios to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<ScenarioName>,
    /// Transports to run each scenario on (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    transport: Vec<TransportName>,
    /// Seconds measured per scenario, after a warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// The relay binary (default: `videocall-relay` next to this binary).
    #[arg(long, env = "RELAY_BIN")]
    relay_bin: Option<PathBuf>,
    /// Relays to spread each scenario's participants over (more than one: joined through
    /// the control plane, sharing the meeting over NATS).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    relays: Vec<usize>,
    /// The NATS server the relays share meetings over.
    #[arg(long, env = "RELAY_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The control-plane binary (default: `videocall-control-plane` next to this binary).
    #[arg(long, env = "CONTROL_PLANE_BIN")]
    control_plane_bin: Option<PathBuf>,
    /// Run the scenarios in an end-to-end encrypted meeting: every participant
    /// joins the meeting's group, seals what it publishes and opens what it receives.
    #[arg(long)]
    e2ee: bool,
    /// Run the soak for this many minutes instead of the scenarios: one meeting on one
    /// relay, one participant replaced every second, the relay sampled periodically.
    #[arg(long)]
    soak_minutes: Option<u64>,
    /// Measure end-to-end encryption's join and rekey times with this many participants
    /// instead of the scenarios: through one relay, or as many as `--relays` says.
    #[arg(long)]
    e2ee_participants: Option<usize>,
    /// The soak's meeting size.
    #[arg(long, default_value_t = 50)]
    soak_participants: usize,
    /// Soak participants who publish audio.
    #[arg(long, default_value_t = 10)]
    soak_audio_publishers: usize,
    /// Of those, how many publish video too.
    #[arg(long, default_value_t = 3)]
    soak_video_publishers: usize,
    /// Seconds between two soak samples.
    #[arg(long, default_value_t = 10)]
    soak_sample_seconds: u64,
    /// After each of our rows, the same scenario against videocall-rs's media server (the
    /// system we replace, with NATS), built outside this repository into
    /// `--videocall-rs-dir`; then the ratio of the two.
    #[arg(long)]
    videocall_rs: bool,
    /// Where videocall-rs's `websocket_server` and `webtransport_server` are
    /// (default: ~/.cache/videocall-rs-bench/target/release).
    #[arg(long, env = "VIDEOCALL_RS_DIR")]
    videocall_rs_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioName {
    Meeting2,
    Meeting10,
    Meeting50,
    Fanout100,
    Fanout500,
    /// One publisher at 1 Mbit/s video (and audio) to 1,000 subscribers.
    Fanout1000,
    /// Ten participants publishing three simulcast layers each, each showing three of the
    /// others (one large, two thumbnails); publishers stop the layers nobody gets (dynacast).
    Simulcast10,
    /// The same with publishers that send every layer whatever the relay says.
    Simulcast10Nodynacast,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportName {
    Webtransport,
    Websocket,
}

impl ScenarioName {
    fn scenario(self) -> Scenario {
        match self {
            ScenarioName::Meeting2 => Scenario::meeting(2),
            ScenarioName::Meeting10 => Scenario::meeting(10),
            ScenarioName::Meeting50 => Scenario::meeting(50),
            ScenarioName::Fanout100 => Scenario::fanout(100),
            ScenarioName::Fanout500 => Scenario::fanout(500),
            ScenarioName::Fanout1000 => Scenario::fanout_at(1000, 1_000_000),
            ScenarioName::Simulcast10 => Scenario::simulcast(10, 3, true),
            ScenarioName::Simulcast10Nodynacast => Scenario::simulcast(10, 3, false),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let beside = |name: &str| -> anyhow::Result<PathBuf> {
        std::env::current_exe()?
            .parent()
            .map(|dir| dir.join(name))
            .ok_or_else(|| anyhow::anyhow!("cannot locate {name}"))
    };
    let relay_bin = match cli.relay_bin {
        Some(path) => path,
        None => beside("videocall-relay")?,
    };
    let control_plane_bin = match cli.control_plane_bin {
        Some(path) => path,
        None => beside("videocall-control-plane")?,
    };
    anyhow::ensure!(
        relay_bin.exists(),
        "{} not found: build it with `cargo build --release -p videocall-relay`",
        relay_bin.display()
    );
    anyhow::ensure!(
        cli.relays.iter().all(|&n| n <= 1) || control_plane_bin.exists(),
        "{} not found: build it with `cargo build --release -p videocall-control-plane`",
        control_plane_bin.display()
    );
    if let Some(participants) = cli.e2ee_participants {
        let setup = Setup {
            relay_bin,
            control_plane_bin,
            relays: cli.relays.iter().copied().max().unwrap_or(1).max(1),
            nats_url: cli.nats_url,
            participants,
            e2ee: true,
        };
        return e2ee::run(&setup, participants).await;
    }
    if let Some(minutes) = cli.soak_minutes {
        let setup = Setup {
            relay_bin,
            control_plane_bin,
            relays: 1,
            nats_url: cli.nats_url,
            participants: cli.soak_participants,
            e2ee: false,
        };
        let soak = soak::Soak {
            duration: Duration::from_secs(minutes * 60),
            participants: cli.soak_participants,
            audio_publishers: cli.soak_audio_publishers,
            video_publishers: cli.soak_video_publishers,
            sample_every: Duration::from_secs(cli.soak_sample_seconds.max(1)),
        };
        return soak::run(&setup, &soak).await;
    }
    let scenarios = if cli.scenario.is_empty() {
        ScenarioName::value_variants().to_vec()
    } else {
        cli.scenario
    };
    let transports: Vec<Transport> = if cli.transport.is_empty() {
        vec![Transport::WebTransport, Transport::WebSocket]
    } else {
        cli.transport
            .iter()
            .map(|t| match t {
                TransportName::Webtransport => Transport::WebTransport,
                TransportName::Websocket => Transport::WebSocket,
            })
            .collect()
    };
    println!("{}", measure::Report::header());
    for name in scenarios {
        for &relays in &cli.relays {
            for transport in &transports {
                let scenario = name.scenario();
                let setup = Setup {
                    relay_bin: relay_bin.clone(),
                    control_plane_bin: control_plane_bin.clone(),
                    relays: relays.max(1),
                    nats_url: cli.nats_url.clone(),
                    participants: scenario.participants,
                    e2ee: cli.e2ee,
                };
                let report =
                    scenario::run(&setup, &scenario, *transport, cli.warmup, cli.seconds).await?;
                println!("{}", report.row());
                if cli.videocall_rs {
                    let dir = cli
                        .videocall_rs_dir
                        .clone()
                        .unwrap_or_else(videocall_rs::default_bin_dir);
                    let mut theirs =
                        videocall_rs::run(&dir, &scenario, *transport, cli.warmup, cli.seconds)
                            .await?;
                    theirs.scenario = format!("vcrs:{}", theirs.scenario);
                    println!("{}", theirs.row());
                    println!("{}", measure::ratio_row(&theirs, &report));
                }
            }
        }
    }
    Ok(())
}
