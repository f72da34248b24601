//! Gateway configuration: every setting is a command-line flag and an environment variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

/// Everything a gateway needs to run.
#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    /// Public UDP address for QUIC (WebTransport): datagrams are routed to relays.
    #[arg(long, env = "GATEWAY_QUIC_ADDR", default_value = "127.0.0.1:4433")]
    pub quic_addr: SocketAddr,

    /// Public TCP address for HTTP: `/relay/<server id>/…` goes to that relay's WebSocket
    /// listener, everything else (the web client, grpc-web) to the control plane.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,

    /// TCP address for `/metrics`, `/healthz` and `/readyz`. Keep it off the public network.
    #[arg(long, env = "GATEWAY_ADMIN_ADDR", default_value = "127.0.0.1:9093")]
    pub admin_addr: SocketAddr,

    /// Control plane's HTTP address (`host:port`), for the web client and grpc-web.
    #[arg(
        long,
        env = "GATEWAY_CONTROL_PLANE_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub control_plane_addr: String,

    /// Relays by server id: `ID=QUIC_ADDR/WEBSOCKET_ADDR`, comma separated
    /// (e.g. `0=127.0.0.1:4433/127.0.0.1:8081`). Checked before the host template.
    #[arg(long = "relay", env = "GATEWAY_RELAYS", value_delimiter = ',')]
    pub relays: Vec<RelayBackend>,

    /// Host of relay `{server_id}`, resolved when a flow starts (e.g. a StatefulSet pod:
    /// `relays-{server_id}.relays.videocall.svc.cluster.local`).
    #[arg(long, env = "GATEWAY_RELAY_HOST_TEMPLATE")]
    pub relay_host_template: Option<String>,

    /// Relays' QUIC port, with `--relay-host-template`.
    #[arg(long, env = "GATEWAY_RELAY_QUIC_PORT", default_value_t = 4433)]
    pub relay_quic_port: u16,

    /// Relays' WebSocket port, with `--relay-host-template`.
    #[arg(long, env = "GATEWAY_RELAY_WEBSOCKET_PORT", default_value_t = 8081)]
    pub relay_websocket_port: u16,

    /// A TLS server name `<prefix><n>.…` routes a new QUIC connection to relay `n`.
    #[arg(long, env = "GATEWAY_SNI_PREFIX", default_value = "relay-")]
    pub sni_prefix: String,

    /// Relay for new connections whose server name names none.
    #[arg(long, env = "GATEWAY_DEFAULT_RELAY", default_value_t = 0)]
    pub default_relay: u16,

    /// A client address silent this long loses its flow (its upstream socket).
    #[arg(long, env = "GATEWAY_FLOW_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub flow_idle_timeout_secs: u64,

    /// Most flows at once; datagrams that would open more are dropped.
    #[arg(long, env = "GATEWAY_MAX_FLOWS", default_value_t = 100_000)]
    pub max_flows: usize,

    /// Datagrams queued per flow towards its relay before new ones are dropped.
    #[arg(long, env = "GATEWAY_FLOW_QUEUE", default_value_t = 1024)]
    pub flow_queue: usize,

    /// Kernel buffer bytes asked for each UDP socket (the public QUIC socket and each flow's
    /// upstream socket), each way; 0 leaves the kernel's default (208 KiB on Linux), which
    /// datagrams arriving faster than they are read overflow. Capped by `net.core.rmem_max`.
    #[arg(long, env = "GATEWAY_UDP_BUFFER_BYTES", default_value_t = videocall_udp_socket::DEFAULT_BUFFER_BYTES)]
    pub udp_buffer_bytes: usize,

    /// Write a JSON file with the bound addresses once serving.
    #[arg(long, env = "GATEWAY_READY_FILE")]
    pub ready_file: Option<PathBuf>,
}

impl GatewayConfig {
    /// The configuration with every default, for embedding and tests.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: GatewayConfig,
        }
        use clap::Parser;
        Wrapper::parse_from(["gateway"]).config
    }

    /// [`Self::flow_idle_timeout_secs`] as a duration.
    pub fn flow_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.flow_idle_timeout_secs.max(1))
    }

    /// The relays named on the command line, by server id.
    pub fn static_relays(&self) -> BTreeMap<u16, RelayBackend> {
        self.relays
            .iter()
            .map(|r| (r.server_id, r.clone()))
            .collect()
    }
}

/// One relay named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayBackend {
    /// Its server id.
    pub server_id: u16,
    /// Its QUIC (WebTransport) address.
    pub quic: SocketAddr,
    /// Its WebSocket address.
    pub websocket: SocketAddr,
}

impl FromStr for RelayBackend {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let usage = || format!("relay `{spec}`: expected ID=QUIC_ADDR/WEBSOCKET_ADDR");
        let (id, addrs) = spec.split_once('=').ok_or_else(usage)?;
        let (quic, websocket) = addrs.split_once('/').ok_or_else(usage)?;
        Ok(RelayBackend {
            server_id: id.trim().parse().map_err(|_| usage())?,
            quic: quic.trim().parse().map_err(|_| usage())?,
            websocket: websocket.trim().parse().map_err(|_| usage())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_specs_parse_and_bad_ones_say_why() {
        let relay: RelayBackend = "3=127.0.0.1:4433/[::1]:8081".parse().unwrap();
        assert_eq!(relay.server_id, 3);
        assert_eq!(relay.websocket, "[::1]:8081".parse().unwrap());
        for bad in [
            "3",
            "x=1.2.3.4:1/1.2.3.4:2",
            "3=1.2.3.4:1",
            "3=host:1/host:2",
        ] {
            let error = bad.parse::<RelayBackend>().unwrap_err();
            assert!(error.contains("ID=QUIC_ADDR/WEBSOCKET_ADDR"), "{error}");
        }
    }
}
