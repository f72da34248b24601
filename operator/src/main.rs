//! `videocall-operator`: `crdgen` writes the CRDs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// The videocall Kubernetes operator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CRDs as YAML, or write them into a directory.
    Crdgen {
        /// Write `relaypools.yaml` and `meetings.yaml` here instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir } => {
            let documents = videocall_operator::crd::crd_documents().context("rendering CRDs")?;
            match out_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    for (name, yaml) in documents {
                        let path = dir.join(name);
                        std::fs::write(&path, yaml)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                }
                None => {
                    for (_, yaml) in documents {
                        println!("---\n{yaml}");
                    }
                }
            }
            Ok(())
        }
    }
}
