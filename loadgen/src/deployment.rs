//! What a scenario runs against: one relay that trusts the bench's own token key, or a
//! pool of relays sharing meetings over NATS behind a control plane that places every
//! participant (`--relays 2`), each server its own process so its CPU and memory can be read.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use std::sync::Arc;
use tonic::transport::Channel;
use tonic::Request;
use videocall_client::{Client, ConnectOptions, RelayAddress, Transport};
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::{
    CreateMeetingRequest, JoinGrant, JoinMeetingRequest, ListRelaysRequest, LoginRequest,
};
use videocall_e2ee::{ControlPlaneCredentials, Member, SigningKey};
use videocall_relay::RelayInfo;
use videocall_testkit::{http_request, metric_value, wait_for_json, ChildGuard};
use videocall_token::{Claims, E2eeCredential, Grants, TokenIssuer, TokenVerifier};

use crate::measure::cpu_seconds;

const MEETING: &str = "bench";
const ADMIN_PASSWORD: &str = "bench-admin-password";
const RELAY_KEY: (&str, &str) = ("vk_bench_relay", "bench-relay-secret-0123");

/// A member of the bench's meeting named `user`: a new key, and a credential for it signed by
/// `issuer` (the bench's own control-plane key), which every member checks.
pub fn bench_member(issuer: &TokenIssuer, user: &str) -> anyhow::Result<Member> {
    let mut verifier = TokenVerifier::new();
    verifier
        .add_key_base64(issuer.kid(), &issuer.public_key_base64())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let check = Arc::new(ControlPlaneCredentials::new(verifier, MEETING));
    let key = SigningKey::generate()?;
    let credential = issuer
        .issue_credential(&E2eeCredential::new(
            user,
            user,
            MEETING,
            false,
            &key.public(),
            Duration::from_secs(3600),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_bytes();
    Ok(Member::new(key, credential, check)?)
}

/// Where the servers' binaries are and how the relays are connected.
pub struct Setup {
    pub relay_bin: PathBuf,
    pub control_plane_bin: PathBuf,
    /// Relays in the pool; with more than one they share the meeting over `nats_url`.
    pub relays: usize,
    pub nats_url: String,
    /// Participants the meeting will have: the control plane puts an equal share of them
    /// on each relay.
    pub participants: usize,
    /// The meeting is end-to-end encrypted (the relays take only sealed media and chat).
    pub e2ee: bool,
}

/// A relay process and what it advertised.
pub struct RelayProcess {
    pub child: ChildGuard,
    pub info: RelayInfo,
}

enum Joining {
    /// Tokens signed here, for the one relay.
    Direct {
        issuer: TokenIssuer,
        address: RelayAddress,
        /// Tokens of an end-to-end encrypted meeting.
        e2ee: bool,
    },
    /// Grants from the control plane's `JoinMeeting`, which names the relay.
    ControlPlane {
        _child: ChildGuard,
        meetings: MeetingServiceClient<Channel>,
    },
}

/// Running servers for one scenario; dropping it stops them.
pub struct Deployment {
    pub relays: Vec<RelayProcess>,
    joining: Joining,
    _dir: tempfile::TempDir,
}

/// Summed over every relay.
pub struct Snapshot {
    pub fanout_buckets: Vec<(f64, f64)>,
    pub packets: f64,
    pub bytes: f64,
    pub bytes_in: f64,
    pub bus_bytes_out: f64,
    pub drops: f64,
    pub cpu: f64,
}

impl Deployment {
    /// Starts the servers and waits until every relay takes participants.
    pub async fn start(setup: &Setup) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        if setup.relays <= 1 {
            let issuer = TokenIssuer::generate("bench");
            let key = format!("bench={}", issuer.public_key_base64());
            let relay =
                start_relay(&setup.relay_bin, dir.path(), 0, &["--token-key", &key]).await?;
            let address = address(&relay.info);
            return Ok(Deployment {
                relays: vec![relay],
                joining: Joining::Direct {
                    issuer,
                    address,
                    e2ee: setup.e2ee,
                },
                _dir: dir,
            });
        }
        let (child, channel, api_addr) = start_control_plane(setup, dir.path()).await?;
        let api_url = format!("http://{api_addr}");
        let prefix = format!("bench{}", std::process::id());
        let relay_key = format!("{}:{}", RELAY_KEY.0, RELAY_KEY.1);
        let capacity = (setup.participants + 10).to_string();
        let mut relays = Vec::new();
        for n in 0..setup.relays {
            let id = format!("bench-{n}");
            let args = [
                "--relay-id",
                &id,
                "--control-plane-url",
                &api_url,
                "--control-plane-api-key",
                &relay_key,
                "--capacity-participants",
                &capacity,
                "--nats-url",
                &setup.nats_url,
                "--bus-subject-prefix",
                &prefix,
            ];
            relays.push(start_relay(&setup.relay_bin, dir.path(), n, &args).await?);
        }
        let admin = admin_session(&channel).await?;
        MeetingServiceClient::new(channel.clone())
            .create_meeting(authorized(
                &admin,
                CreateMeetingRequest {
                    id: MEETING.into(),
                    guests_allowed: true,
                    max_participants: u32::try_from(setup.participants + 10)?,
                    e2ee_required: setup.e2ee,
                    ..Default::default()
                },
            ))
            .await
            .context("creating the meeting")?;
        wait_for_fresh_relays(&channel, &admin, setup.relays).await?;
        Ok(Deployment {
            relays,
            joining: Joining::ControlPlane {
                _child: child,
                meetings: MeetingServiceClient::new(channel),
            },
            _dir: dir,
        })
    }

    /// Joins participant `i` over `transport`; returns it and how long joining took (the
    /// control plane's grant included).
    /// A join whose connection fails is tried once more, as a client would (said on stderr:
    /// one of 500 WebTransport joins at once has been seen closed by the relay's HTTP/3 layer).
    pub async fn join(&self, i: usize, transport: Transport) -> anyhow::Result<(Client, Duration)> {
        let (client, took, _) = match self.join_keyed(i, transport, None).await {
            Ok(joined) => joined,
            Err(error) => {
                eprintln!("join p{i} failed ({error:#}); trying once more");
                self.join_keyed(i, transport, None).await?
            }
        };
        Ok((client, took))
    }

    /// Joins participant `i` as a member of the meeting's end-to-end encryption: the client
    /// (not encrypting yet), how long joining took, and its member. On one relay its
    /// credential is signed with the bench's key; through the control plane it is the grant's,
    /// for a new key sent with the request.
    pub async fn join_member(
        &self,
        i: usize,
        transport: Transport,
    ) -> anyhow::Result<(Client, Duration, Member)> {
        if let Joining::Direct { issuer, .. } = &self.joining {
            let member = bench_member(issuer, &format!("p{i}"))?;
            let (client, took) = self.join(i, transport).await?;
            return Ok((client, took, member));
        }
        let key = SigningKey::generate()?;
        let (client, took, grant) = self.join_keyed(i, transport, Some(&key)).await?;
        let grant = grant.with_context(|| format!("p{i} got no grant"))?;
        let member = videocall_client::member_seed::e2ee_member(key, &grant)
            .map_err(|e| anyhow::anyhow!("p{i}'s member: {e}"))?;
        Ok((client, took, member))
    }

    /// Joins participant `i`; through the control plane with `e2ee_key` in the request, and
    /// then the grant too.
    async fn join_keyed(
        &self,
        i: usize,
        transport: Transport,
        e2ee_key: Option<&SigningKey>,
    ) -> anyhow::Result<(Client, Duration, Option<JoinGrant>)> {
        let started = Instant::now();
        let mut kept_grant = None;
        let (address, token) = match &self.joining {
            Joining::Direct {
                issuer,
                address,
                e2ee,
            } => {
                let mut claims = Claims::new(
                    &format!("p{i}"),
                    &format!("P{i}"),
                    MEETING,
                    Grants::default(),
                    Duration::from_secs(3600),
                );
                claims.e2ee = *e2ee;
                let token = issuer.issue(&claims).map_err(|e| anyhow::anyhow!("{e}"))?;
                (address.clone(), token)
            }
            Joining::ControlPlane { meetings, .. } => {
                let grant = meetings
                    .clone()
                    .join_meeting(JoinMeetingRequest {
                        meeting_id: MEETING.into(),
                        display_name: format!("P{i}"),
                        e2ee_signature_key: e2ee_key.map(SigningKey::public).unwrap_or_default(),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("grant for p{i}"))?
                    .into_inner();
                let relay = grant.relay.clone().context("a grant without a relay")?;
                let token = grant.token.clone();
                kept_grant = Some(grant);
                let address = RelayAddress {
                    webtransport_url: relay.webtransport_url,
                    websocket_url: relay.websocket_url,
                    certificate_sha256: relay.certificate_sha256.first().cloned(),
                };
                (address, token)
            }
        };
        let mut options = ConnectOptions::new(transport, address, MEETING, &token);
        options.event_buffer = 8192;
        let client = Client::connect(options)
            .await
            .map_err(|e| anyhow::anyhow!("join p{i}: {e}"))?;
        Ok((client, started.elapsed(), kept_grant))
    }

    /// Joins participant `i` and starts its end-to-end encryption (see
    /// [`Deployment::join_member`]): the scenarios with `--e2ee`.
    pub async fn join_encrypted(
        &self,
        i: usize,
        transport: Transport,
    ) -> anyhow::Result<(Client, Duration)> {
        let (mut client, took, member) = self.join_member(i, transport).await?;
        client
            .start_encryption(member)
            .await
            .map_err(|e| anyhow::anyhow!("p{i} encrypting: {e}"))?;
        Ok((client, took))
    }

    /// Resident memory of every relay, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.relays.iter().map(|r| r.child.rss_kib()).sum()
    }

    /// Every relay's counters, summed.
    pub async fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot {
            fanout_buckets: Vec::new(),
            packets: 0.0,
            bytes: 0.0,
            bytes_in: 0.0,
            bus_bytes_out: 0.0,
            drops: 0.0,
            cpu: 0.0,
        };
        for relay in &self.relays {
            let (_, metrics) = http_request(relay.info.admin_addr, "GET", "/metrics").await;
            let buckets = crate::measure::histogram_buckets(
                &metrics,
                "videocall_relay_fanout_latency_seconds_bucket",
            );
            if total.fanout_buckets.is_empty() {
                total.fanout_buckets = buckets;
            } else {
                for ((_, sum), (_, count)) in total.fanout_buckets.iter_mut().zip(buckets) {
                    *sum += count;
                }
            }
            total.packets += metric_value(&metrics, "videocall_relay_packets_out_total");
            total.bytes += metric_value(&metrics, "videocall_relay_bytes_out_total");
            total.bytes_in += metric_value(&metrics, "videocall_relay_bytes_in_total");
            total.bus_bytes_out += metric_value(
                &metrics,
                "videocall_relay_bus_bytes_total{direction=\"out\"}",
            );
            total.drops += metric_value(&metrics, "videocall_relay_drops_total");
            total.cpu += cpu_seconds(relay.child.pid());
        }
        total
    }
}

fn address(info: &RelayInfo) -> RelayAddress {
    RelayAddress {
        webtransport_url: info.webtransport_url.clone(),
        websocket_url: info.websocket_url.clone(),
        certificate_sha256: Some(info.certificate_sha256.clone()),
    }
}

async fn start_relay(
    bin: &Path,
    dir: &Path,
    n: usize,
    extra: &[&str],
) -> anyhow::Result<RelayProcess> {
    let ready = dir.join(format!("relay-{n}.json"));
    let child = Command::new(bin)
        .args(videocall_testkit::LOOPBACK_RELAY_ADDRS)
        .args([
            "--max-participants-per-meeting",
            "10000",
            "--join-rate",
            "100000",
            "--join-burst",
            "100000",
        ])
        .args(extra)
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("starting a relay")?;
    let mut child = ChildGuard(child);
    let info: RelayInfo = wait_for_json(&ready, &mut child, Duration::from_secs(20)).await;
    Ok(RelayProcess { child, info })
}

#[derive(serde::Deserialize)]
struct ControlPlaneReady {
    grpc_addr: std::net::SocketAddr,
}

async fn start_control_plane(
    setup: &Setup,
    dir: &Path,
) -> anyhow::Result<(ChildGuard, Channel, std::net::SocketAddr)> {
    let ready = dir.join("control-plane.json");
    let database = format!("sqlite://{}?mode=rwc", dir.join("cp.db").display());
    let share = setup.participants.div_ceil(setup.relays.max(1)).to_string();
    let child = Command::new(&setup.control_plane_bin)
        .args(["--grpc-addr", "127.0.0.1:0", "--database-url", &database])
        .args(["--bootstrap-admin-password", ADMIN_PASSWORD])
        .args([
            "--bootstrap-api-key",
            &format!("bench:relay:{}:{}", RELAY_KEY.0, RELAY_KEY.1),
        ])
        .args(["--max-participants-limit", "1000000"])
        .args(["--meeting-share-per-relay", &share])
        .args(["--heartbeat-interval-ms", "500"])
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .spawn()
        .context("starting the control plane")?;
    let mut child = ChildGuard(child);
    let info: ControlPlaneReady = wait_for_json(&ready, &mut child, Duration::from_secs(30)).await;
    let channel = Channel::from_shared(format!("http://{}", info.grpc_addr))?
        .connect()
        .await
        .context("connecting to the control plane")?;
    Ok((child, channel, info.grpc_addr))
}

async fn admin_session(channel: &Channel) -> anyhow::Result<String> {
    let login = AuthServiceClient::new(channel.clone())
        .login(LoginRequest {
            username: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .context("admin login")?
        .into_inner();
    Ok(format!("Bearer {}", login.session_token))
}

fn authorized<T>(auth: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = auth.parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn wait_for_fresh_relays(
    channel: &Channel,
    admin: &str,
    wanted: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = RelayServiceClient::new(channel.clone())
            .list_relays(authorized(admin, ListRelaysRequest {}))
            .await
            .context("listing relays")?
            .into_inner()
            .relays
            .iter()
            .filter(|r| r.fresh)
            .count();
        if fresh >= wanted {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {fresh} of {wanted} relays registered with the control plane"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
