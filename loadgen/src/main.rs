//! `relay-bench`: drives a relay process with synthetic participants and prints what it
//! forwards, how fast, and at what cost. Speed goals are checked here, not in tests.
//!
//! The relay runs as its own process so its CPU time and memory can be read from /proc.
//! The load generator shares the machine with it: on 2 cores both halves compete.

mod measure;
mod scenario;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use videocall_client::Transport;

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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioName {
    Meeting2,
    Meeting10,
    Meeting50,
    Fanout100,
    Fanout500,
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
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let relay_bin = match cli.relay_bin {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("videocall-relay"))
            .ok_or_else(|| anyhow::anyhow!("cannot locate videocall-relay; pass --relay-bin"))?,
    };
    anyhow::ensure!(
        relay_bin.exists(),
        "{} not found: build it with `cargo build --release -p videocall-relay`",
        relay_bin.display()
    );
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
        for transport in &transports {
            let scenario = name.scenario();
            let report =
                scenario::run(&relay_bin, &scenario, *transport, cli.warmup, cli.seconds).await?;
            println!("{}", report.row());
        }
    }
    Ok(())
}
