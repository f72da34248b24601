//! Relay configuration: every setting is a command-line flag and an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Everything a relay needs to run.
#[derive(Debug, Clone, Args)]
pub struct RelayConfig {
    /// Identity of this relay in logs, metrics and `Joined` messages.
    #[arg(long, env = "RELAY_ID", default_value = "relay-0")]
    pub relay_id: String,

    /// This relay's number in its pool. Every QUIC connection ID the relay issues carries it,
    /// so a gateway routes packets here without a connection table. Defaults to the number
    /// at the end of `--relay-id` (`relays-3` is 3), else 0.
    #[arg(long, env = "RELAY_QUIC_SERVER_ID")]
    pub quic_server_id: Option<u16>,

    /// WebTransport URL clients are given, when they reach the relay through a gateway
    /// (e.g. `https://relay-{server_id}.meet.example.org:443/`); `{server_id}` is replaced.
    /// Defaults to `https://<public-host>:<bound port>/`.
    #[arg(long, env = "RELAY_PUBLIC_WEBTRANSPORT_URL")]
    pub public_webtransport_url: Option<String>,

    /// WebSocket URL clients are given, when they reach the relay through a gateway
    /// (e.g. `wss://meet.example.org/relay/{server_id}/ws`); `{server_id}` is replaced.
    /// Defaults to `ws://<public-host>:<bound port>/ws`.
    #[arg(long, env = "RELAY_PUBLIC_WEBSOCKET_URL")]
    pub public_websocket_url: Option<String>,

    /// UDP address for WebTransport (QUIC).
    #[arg(
        long,
        env = "RELAY_WEBTRANSPORT_ADDR",
        default_value = "127.0.0.1:4433"
    )]
    pub webtransport_addr: SocketAddr,

    /// TCP address for WebSocket (`/ws`) and public relay information (`/info`).
    #[arg(long, env = "RELAY_WEBSOCKET_ADDR", default_value = "127.0.0.1:8081")]
    pub websocket_addr: SocketAddr,

    /// TCP address for operations: `/metrics`, `/healthz`, `/readyz`, `POST /drain`.
    /// Keep it off the public network.
    #[arg(long, env = "RELAY_ADMIN_ADDR", default_value = "127.0.0.1:9091")]
    pub admin_addr: SocketAddr,

    /// Host name clients use to reach this relay (in advertised URLs).
    #[arg(long, env = "RELAY_PUBLIC_HOST", default_value = "127.0.0.1")]
    pub public_host: String,

    /// PEM certificate chain for WebTransport; a self-signed one is generated when absent.
    #[arg(long, env = "RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Subject alternative names of the self-signed certificate.
    #[arg(
        long,
        env = "RELAY_SELF_SIGNED_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub self_signed_names: Vec<String>,

    /// Where to write the generated self-signed certificate and key (PEM), if anywhere.
    #[arg(long, env = "RELAY_SELF_SIGNED_DIR")]
    pub self_signed_dir: Option<PathBuf>,

    /// Trusted token verification keys as `kid=base64url-ed25519-public-key`, comma separated.
    #[arg(long = "token-key", env = "RELAY_TOKEN_KEYS", value_delimiter = ',')]
    pub token_keys: Vec<String>,

    /// Control-plane API (`http://host:port`): the relay registers there, heartbeats its
    /// load, and fetches token verification keys from it.
    #[arg(
        long,
        env = "RELAY_CONTROL_PLANE_URL",
        requires = "control_plane_api_key"
    )]
    pub control_plane_url: Option<String>,

    /// The relay's control-plane API key, as `key-id:secret` (role relay).
    #[arg(long, env = "RELAY_CONTROL_PLANE_API_KEY", hide_env_values = true)]
    pub control_plane_api_key: Option<String>,

    /// Participants this relay is sized for (placement fills relays relative to it).
    #[arg(long, env = "RELAY_CAPACITY_PARTICIPANTS", default_value_t = 500)]
    pub capacity_participants: u32,

    /// Write a JSON file with the bound addresses and certificate hash once serving.
    #[arg(long, env = "RELAY_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: Limits,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub timing: Timing,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub bus: BusConfig,
}

/// The bus the relays of a pool share meetings over. Without `--nats-url` (and without a
/// bus handed in by an embedding process) the relay hosts its meetings alone.
#[derive(Debug, Clone, Args)]
pub struct BusConfig {
    /// NATS server URL(s), comma separated (`nats://127.0.0.1:4222`, `tls://…`).
    #[arg(long, env = "RELAY_NATS_URL")]
    pub nats_url: Option<String>,

    /// NATS user (with `--nats-password`).
    #[arg(long, env = "RELAY_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password of `--nats-user`.
    #[arg(long, env = "RELAY_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,

    /// NATS token authentication.
    #[arg(long, env = "RELAY_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// NATS nkey seed (`SU…`) authentication.
    #[arg(long, env = "RELAY_NATS_NKEY_SEED", hide_env_values = true)]
    pub nats_nkey_seed: Option<String>,

    /// NATS credentials file (JWT and nkey seed, `.creds`).
    #[arg(long, env = "RELAY_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// PEM CA certificates to trust for the NATS server's certificate.
    #[arg(long, env = "RELAY_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,

    /// PEM client certificate for mutual TLS with NATS (with `--nats-tls-key`).
    #[arg(long, env = "RELAY_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,

    /// PEM key of `--nats-tls-cert`.
    #[arg(long, env = "RELAY_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,

    /// Refuse to talk to NATS without TLS.
    #[arg(long, env = "RELAY_NATS_REQUIRE_TLS")]
    pub nats_require_tls: bool,

    /// First token of every subject; relays share meetings only under the same prefix.
    #[arg(long, env = "RELAY_BUS_SUBJECT_PREFIX", default_value = "vc")]
    pub bus_subject_prefix: String,

    /// Events queued for the bus before new ones are dropped (counted).
    #[arg(long, env = "RELAY_BUS_EVENT_QUEUE", default_value_t = 4096)]
    pub bus_event_queue: usize,

    /// Media packets queued for the bus before new ones are dropped (counted).
    #[arg(long, env = "RELAY_BUS_MEDIA_QUEUE", default_value_t = 4096)]
    pub bus_media_queue: usize,
}

impl BusConfig {
    /// How to connect to NATS, if `--nats-url` is set; `name` is the connection's name.
    pub fn nats_options(
        &self,
        name: &str,
        max_message: usize,
    ) -> Option<videocall_bus::NatsOptions> {
        Some(videocall_bus::NatsOptions {
            url: self.nats_url.clone()?,
            name: name.to_owned(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            nkey_seed: self.nats_nkey_seed.clone(),
            credentials_file: self.nats_creds.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
            require_tls: self.nats_require_tls,
            max_message,
            log_stream: crate::subjects::log_stream(&self.bus_subject_prefix),
            log_subjects: crate::subjects::log_subjects(&self.bus_subject_prefix),
        })
    }
}

impl RelayConfig {
    /// `--public-host` as it goes into a URL (IPv6 addresses in brackets).
    pub fn public_url_host(&self) -> String {
        let host = &self.public_host;
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        }
    }

    /// The server id in this relay's QUIC connection IDs (see [`Self::quic_server_id`]).
    pub fn server_id(&self) -> u16 {
        self.quic_server_id.unwrap_or_else(|| {
            let digits = self
                .relay_id
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or_default();
            digits.parse().unwrap_or(0)
        })
    }
}

/// Admission and size limits.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Most participants in one meeting.
    #[arg(
        long,
        env = "RELAY_MAX_PARTICIPANTS_PER_MEETING",
        default_value_t = 100
    )]
    pub max_participants_per_meeting: usize,

    /// Most meetings on this relay.
    #[arg(long, env = "RELAY_MAX_MEETINGS", default_value_t = 1000)]
    pub max_meetings: usize,

    /// Largest envelope accepted, in bytes.
    #[arg(long, env = "RELAY_MAX_FRAME_SIZE", default_value_t = videocall_protocol::DEFAULT_MAX_FRAME_SIZE)]
    pub max_frame_size: usize,

    /// Joins admitted per second (sustained), across all clients.
    #[arg(long = "join-rate", env = "RELAY_JOIN_RATE", default_value_t = 100)]
    pub join_rate_per_sec: u32,

    /// Joins admitted in a burst above the sustained rate.
    #[arg(long, env = "RELAY_JOIN_BURST", default_value_t = 200)]
    pub join_burst: u32,

    /// Joins admitted per second (sustained) for one identity (token subject), charged
    /// before the relay's shared budget: one person's, or one leaked token's, rejoin loop
    /// cannot spend everyone's. 0 turns it off.
    #[arg(
        long = "identity-join-rate",
        env = "RELAY_IDENTITY_JOIN_RATE",
        default_value_t = 1
    )]
    pub identity_join_rate_per_sec: u32,

    /// Joins one identity may make in a burst.
    #[arg(long, env = "RELAY_IDENTITY_JOIN_BURST", default_value_t = 10)]
    pub identity_join_burst: u32,

    /// Refused joins per second (sustained) one client address may cause; past its burst, the
    /// address's connections are refused before anything of theirs is read. 0 turns it off.
    #[arg(
        long = "address-refusal-rate",
        env = "RELAY_ADDRESS_REFUSAL_RATE",
        default_value_t = 10
    )]
    pub address_refusal_rate_per_sec: u32,

    /// Refused joins one client address may cause in a burst.
    #[arg(long, env = "RELAY_ADDRESS_REFUSAL_BURST", default_value_t = 50)]
    pub address_refusal_burst: u32,

    /// Clients (identities, addresses) whose budgets are remembered at once.
    #[arg(long, env = "RELAY_MAX_METERED_CLIENTS", default_value_t = 100_000)]
    pub max_metered_clients: usize,

    /// Peers whose `X-Forwarded-For` names the client of a WebSocket (the gateway's
    /// addresses): comma-separated addresses or CIDR ranges. From anyone else the header is
    /// ignored and the peer's own address counts.
    #[arg(long, env = "RELAY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Video packets queued per subscribed track on WebTransport before video is dropped.
    #[arg(long, env = "RELAY_TRACK_QUEUE_PACKETS", default_value_t = 96)]
    pub track_queue_packets: usize,

    /// Video packets queued per WebSocket subscriber (all tracks share the socket).
    #[arg(long, env = "RELAY_SOCKET_QUEUE_PACKETS", default_value_t = 1024)]
    pub socket_queue_packets: usize,

    /// Video bytes queued per subscriber (all its tracks) before its video is dropped.
    #[arg(long, env = "RELAY_SUBSCRIBER_QUEUE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub subscriber_queue_bytes: usize,

    /// Audio packets queued per WebSocket subscriber.
    #[arg(long, env = "RELAY_AUDIO_QUEUE_PACKETS", default_value_t = 256)]
    pub audio_queue_packets: usize,

    /// Control messages queued per participant; a participant that lets this fill is disconnected.
    #[arg(long, env = "RELAY_CONTROL_QUEUE_MESSAGES", default_value_t = 512)]
    pub control_queue_messages: usize,

    /// WebTransport: packets a subscriber's QUIC may take before it must acknowledge (else
    /// within its ACK delay, at most 25 ms), asked of peers that have QUIC's ACK frequency
    /// extension (quinn-based clients; others acknowledge as usual). 1 is QUIC's usual: an
    /// ACK for every other packet. Out-of-order packets are still acknowledged at once.
    #[arg(long, env = "RELAY_QUIC_ACK_THRESHOLD", default_value_t = 1)]
    pub quic_ack_threshold: u32,

    /// WebTransport: kernel buffer bytes asked for the UDP socket, each way (0: the kernel's
    /// default, 208 KiB on Linux). Packets that arrive while it is full are dropped and count
    /// as loss; the kernel caps the ask at `net.core.rmem_max` / `wmem_max`.
    #[arg(long, env = "RELAY_UDP_BUFFER_BYTES", default_value_t = videocall_udp_socket::DEFAULT_BUFFER_BYTES)]
    pub udp_buffer_bytes: usize,
}

/// Timers.
#[derive(Debug, Clone, Args)]
pub struct Timing {
    /// Interval between relay pings.
    #[arg(long, env = "RELAY_HEARTBEAT_INTERVAL_MS", default_value_t = 2000)]
    pub heartbeat_interval_ms: u64,

    /// A participant silent this long is removed and announced as timed out.
    #[arg(long, env = "RELAY_PEER_TIMEOUT_MS", default_value_t = 6000)]
    pub peer_timeout_ms: u64,

    /// Time allowed between connecting and a valid `Join`.
    #[arg(long, env = "RELAY_JOIN_TIMEOUT_MS", default_value_t = 5000)]
    pub join_timeout_ms: u64,

    /// Least time between two keyframe requests to one published track.
    #[arg(
        long,
        env = "RELAY_KEYFRAME_REQUEST_INTERVAL_MS",
        default_value_t = 500
    )]
    pub keyframe_request_interval_ms: u64,

    /// After a drain starts, close remaining sessions after this long.
    #[arg(long, env = "RELAY_DRAIN_TIMEOUT_SECS", default_value_t = 300)]
    pub drain_timeout_secs: u64,

    /// Interval between this relay's presence messages to the other relays of each meeting.
    #[arg(long, env = "RELAY_MESH_PRESENCE_INTERVAL_MS", default_value_t = 1000)]
    pub mesh_presence_interval_ms: u64,

    /// Another relay of a meeting silent this long is gone: its participants are announced
    /// as timed out (unless they rejoin elsewhere first).
    #[arg(long, env = "RELAY_MESH_PRESENCE_TIMEOUT_MS", default_value_t = 5000)]
    pub mesh_presence_timeout_ms: u64,
}

impl Timing {
    /// [`Self::heartbeat_interval_ms`] as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(10))
    }
    /// [`Self::peer_timeout_ms`] as a duration.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms.max(100))
    }
    /// [`Self::join_timeout_ms`] as a duration.
    pub fn join_timeout(&self) -> Duration {
        Duration::from_millis(self.join_timeout_ms.max(10))
    }
    /// [`Self::mesh_presence_interval_ms`] as a duration.
    pub fn mesh_presence_interval(&self) -> Duration {
        Duration::from_millis(self.mesh_presence_interval_ms.max(10))
    }
    /// [`Self::drain_timeout_secs`] as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// A trusted proxy: a CIDR range, or one address.
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, ipnet::AddrParseError> {
    match text.trim().parse::<std::net::IpAddr>() {
        Ok(address) => Ok(address.into()),
        Err(_) => text.trim().parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: RelayConfig,
    }

    fn config(args: &[&str]) -> RelayConfig {
        Cli::parse_from(std::iter::once("relay").chain(args.iter().copied())).config
    }

    #[test]
    fn the_server_id_comes_from_the_flag_else_the_relay_ids_number() {
        assert_eq!(config(&["--relay-id", "relays-12"]).server_id(), 12);
        assert_eq!(config(&["--relay-id", "relay"]).server_id(), 0);
        assert_eq!(config(&["--relay-id", "relays-99999"]).server_id(), 0);
        assert_eq!(
            config(&["--relay-id", "relays-3", "--quic-server-id", "7"]).server_id(),
            7
        );
        // A StatefulSet pod name, as the operator passes it.
        assert_eq!(config(&["--relay-id", "edge-0"]).server_id(), 0);
        assert_eq!(config(&["--relay-id", "edge-4"]).server_id(), 4);
    }
}
