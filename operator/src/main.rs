//! `videocall-operator`: `run` reconciles RelayPools and Meetings; `crdgen` writes the CRDs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};
use videocall_operator::control_plane::ControlPlaneClient;
use videocall_operator::controller::{self, error_policy, Context};
use videocall_operator::crd::{Meeting, RelayPool};
use videocall_operator::metrics::Metrics;

/// The videocall Kubernetes operator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconcile RelayPools and Meetings in every namespace.
    Run(RunArgs),
    /// Print the CRDs as YAML, or write them into a directory.
    Crdgen {
        /// Write `relaypools.yaml` and `meetings.yaml` here instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Control-plane API URL.
    #[arg(long, env = "OPERATOR_CONTROL_PLANE_URL")]
    control_plane_url: String,
    /// Admin API key for the control plane, `key-id:secret`.
    #[arg(long, env = "OPERATOR_CONTROL_PLANE_API_KEY", hide_env_values = true)]
    control_plane_api_key: String,
    /// Base URL of the web client, for meetings' join URLs.
    #[arg(
        long,
        env = "OPERATOR_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    public_url: String,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "OPERATOR_METRICS_ADDR", default_value = "127.0.0.1:9095")]
    metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "OPERATOR_LEASE_NAME",
        default_value = "videocall-operator"
    )]
    lease_name: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "videocall-operator")]
    identity: String,
    /// Run without leader election (a single replica).
    #[arg(long, env = "OPERATOR_NO_LEADER_ELECTION")]
    no_leader_election: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    videocall_process::init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
        Command::Run(args) => run(args).await,
    }
}

fn crdgen(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
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

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let metrics = Metrics::new()?;
    serve_metrics(args.metrics_addr, metrics.clone()).await?;
    let lost = if args.no_leader_election {
        tokio_util::sync::CancellationToken::new()
    } else {
        videocall_operator::leader::acquire(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &args.identity,
            Duration::from_secs(15),
        )
        .await
        .lost
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        control_plane: ControlPlaneClient::new(
            &args.control_plane_url,
            &args.control_plane_api_key,
        )?,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "videocall-operator".into(),
                instance: Some(args.identity.clone()),
            },
        ),
        public_url: args.public_url,
        scale_memory: Default::default(),
        metrics,
    });
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=videocall-operator");
    let pools = Controller::new(
        Api::<RelayPool>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<StatefulSet>::all(client.clone()), owned)
    .graceful_shutdown_on(lost.clone().cancelled_owned())
    .run(
        |pool, ctx: Arc<Context>| {
            measured(
                "relaypool",
                ctx.clone(),
                controller::relay_pool::reconcile(pool, ctx),
            )
        },
        |pool, error, ctx| error_policy(pool, error, ctx, "relaypool"),
        ctx.clone(),
    )
    .for_each(|_| async {});
    let meetings = Controller::new(
        Api::<Meeting>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(lost.clone().cancelled_owned())
    .run(
        |meeting, ctx: Arc<Context>| {
            measured(
                "meeting",
                ctx.clone(),
                controller::meeting::reconcile(meeting, ctx),
            )
        },
        |meeting, error, ctx| error_policy(meeting, error, ctx, "meeting"),
        ctx.clone(),
    )
    .for_each(|_| async {});
    tokio::select! {
        _ = futures_util::future::join(pools, meetings) => {}
        _ = videocall_process::stop_signal() => tracing::info!("stopping"),
    }
    anyhow::ensure!(!lost.is_cancelled(), "leadership lost");
    Ok(())
}

async fn measured<F>(
    controller: &str,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<kube::runtime::controller::Action, controller::Error>
where
    F: std::future::Future<Output = Result<kube::runtime::controller::Action, controller::Error>>,
{
    let started = Instant::now();
    let result = reconcile.await;
    ctx.metrics
        .reconciles
        .with_label_values(&[controller])
        .inc();
    ctx.metrics
        .durations
        .with_label_values(&[controller])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn serve_metrics(addr: SocketAddr, metrics: Metrics) -> anyhow::Result<()> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "metrics server failed");
        }
    });
    Ok(())
}
