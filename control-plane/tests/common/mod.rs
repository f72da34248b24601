//! Test harness: the real control-plane binary on a loopback port of its own, over a
//! fresh SQLite file or a fresh PostgreSQL database, stopped by PID.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use sqlx::Connection;
use tonic::transport::Channel;
use tonic::Request;
use videocall_control_api::v1::auth_service_client::AuthServiceClient;
use videocall_control_api::v1::host_service_client::HostServiceClient;
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::relay_service_client::RelayServiceClient;
use videocall_control_api::v1::*;
use videocall_testkit::{wait_for_json, ChildGuard};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const RELAY_KEY_ID: &str = "vk_test_relay";
pub const RELAY_SECRET: &str = "relay-secret-0123456789";
pub const PASSWORD: &str = "password-123";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of one test's own.
pub struct Database {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn postgres_admin_url() -> String {
    std::env::var("VIDEOCALL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Database {
    pub async fn create(backend: Backend) -> Database {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("cp.db").display());
                Database {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("vc_test_{}", rand::random::<u64>());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL at {admin} is needed (scripts/services.sh starts it): {e}"
                        )
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Database {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Drops a PostgreSQL database (SQLite files go with their temp dir).
    pub async fn remove(self) {
        if let Some(name) = &self.pg_name {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            }
        }
    }
}

#[derive(Deserialize)]
struct Ready {
    grpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

/// A control-plane process.
pub struct ControlPlane {
    child: ChildGuard,
    pub addr: SocketAddr,
    /// Where `/metrics` is served (with `--metrics-addr`).
    pub metrics_addr: Option<SocketAddr>,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl ControlPlane {
    pub async fn start(db: &Database, extra: &[&str]) -> ControlPlane {
        Self::start_at(db, "127.0.0.1:0", extra).await
    }

    pub async fn start_at(db: &Database, addr: &str, extra: &[&str]) -> ControlPlane {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready.json");
        let child = Command::new(env!("CARGO_BIN_EXE_videocall-control-plane"))
            .args(["--grpc-addr", addr, "--database-url", &db.url])
            .args(["--bootstrap-admin-password", ADMIN_PASSWORD])
            .args([
                "--bootstrap-api-key",
                &format!("relay-key:relay:{RELAY_KEY_ID}:{RELAY_SECRET}"),
            ])
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("CONTROL_PLANE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn control plane");
        let mut child = ChildGuard(child);
        let ready: Ready = wait_for_json(&ready, &mut child, Duration::from_secs(30)).await;
        ControlPlane {
            child,
            addr: ready.grpc_addr,
            metrics_addr: ready.metrics_addr,
            url: format!("http://{}", ready.grpc_addr),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// SIGTERM, then wait for the exit.
    pub async fn stop(mut self) {
        self.child.signal("TERM");
        assert!(
            self.child
                .wait_exit(Duration::from_secs(10))
                .await
                .is_some(),
            "control plane did not stop on SIGTERM"
        );
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    pub async fn api(&self) -> Api {
        let channel = Channel::from_shared(self.url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect to the control plane");
        Api { channel }
    }
}

/// gRPC clients over one channel.
#[derive(Clone)]
pub struct Api {
    pub channel: Channel,
}

/// A request with an `authorization` value (or none).
pub fn req<T>(message: T, auth: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(auth) = auth {
        request
            .metadata_mut()
            .insert("authorization", auth.parse().expect("ascii"));
    }
    request
}

pub fn relay_auth() -> String {
    videocall_control_api::api_key_authorization(RELAY_KEY_ID, RELAY_SECRET)
}

impl Api {
    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }
    pub fn meetings(&self) -> MeetingServiceClient<Channel> {
        MeetingServiceClient::new(self.channel.clone())
    }
    pub fn relays(&self) -> RelayServiceClient<Channel> {
        RelayServiceClient::new(self.channel.clone())
    }
    pub fn hosts(&self) -> HostServiceClient<Channel> {
        HostServiceClient::new(self.channel.clone())
    }

    /// Logs in; returns the `authorization` value.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .auth()
            .login(req(
                LoginRequest {
                    username: username.into(),
                    password: password.into(),
                },
                None,
            ))
            .await
            .unwrap_or_else(|e| panic!("login {username}: {e}"))
            .into_inner();
        videocall_control_api::bearer_authorization(&response.session_token)
    }

    pub async fn admin(&self) -> String {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    /// Creates a user (as admin) and logs them in.
    pub async fn user(&self, admin: &str, username: &str) -> String {
        self.auth()
            .create_user(req(
                CreateUserRequest {
                    username: username.into(),
                    password: PASSWORD.into(),
                    display_name: username.to_uppercase(),
                    role: Role::User as i32,
                },
                Some(admin),
            ))
            .await
            .unwrap_or_else(|e| panic!("create user {username}: {e}"));
        self.login(username, PASSWORD).await
    }

    pub async fn create_meeting(&self, auth: &str, request: CreateMeetingRequest) -> Meeting {
        self.meetings()
            .create_meeting(req(request, Some(auth)))
            .await
            .expect("create meeting")
            .into_inner()
    }

    /// Registers a pretend relay (its endpoints are never dialled by these tests).
    pub async fn register_relay(&self, id: &str, capacity: u32) {
        self.relays()
            .register_relay(req(
                RegisterRelayRequest {
                    endpoints: Some(RelayEndpoints {
                        relay_id: id.into(),
                        webtransport_url: format!("https://127.0.0.1:4433/{id}"),
                        websocket_url: format!("ws://127.0.0.1:8081/{id}"),
                        certificate_sha256: vec!["ab".repeat(32)],
                    }),
                    capacity_participants: capacity,
                    admin_url: "http://127.0.0.1:9091".into(),
                },
                Some(&relay_auth()),
            ))
            .await
            .expect("register relay");
    }

    /// A heartbeat reporting `participants` as `(meeting, identity)`.
    pub async fn heartbeat(&self, id: &str, participants: &[(&str, &str)]) -> HeartbeatResponse {
        let with_roles: Vec<(&str, &str, MeetingRole)> = participants
            .iter()
            .map(|(m, i)| (*m, *i, MeetingRole::Participant))
            .collect();
        self.heartbeat_with_roles(id, &with_roles).await
    }

    /// A heartbeat reporting `participants` as `(meeting, identity, role)`; participant ids
    /// count from 1 in order.
    pub async fn heartbeat_with_roles(
        &self,
        id: &str,
        participants: &[(&str, &str, MeetingRole)],
    ) -> HeartbeatResponse {
        self.heartbeat_request(id, participants, Vec::new(), Vec::new())
            .await
            .expect("heartbeat")
    }

    /// A heartbeat with host actions and done commands too.
    pub async fn heartbeat_request(
        &self,
        id: &str,
        participants: &[(&str, &str, MeetingRole)],
        host_actions: Vec<HostActionRecord>,
        done_command_ids: Vec<String>,
    ) -> Result<HeartbeatResponse, tonic::Status> {
        let mut loads: Vec<MeetingLoad> = Vec::new();
        for (i, (meeting, identity, role)) in participants.iter().enumerate() {
            let live = LiveParticipant {
                participant_id: i as u64 + 1,
                identity: (*identity).into(),
                display_name: identity.to_uppercase(),
                relay_id: String::new(),
                joined_at_ms: 1,
                role: *role as i32,
            };
            match loads.iter_mut().find(|l| l.meeting_id == *meeting) {
                Some(load) => load.participants.push(live),
                None => loads.push(MeetingLoad {
                    meeting_id: (*meeting).into(),
                    participants: vec![live],
                }),
            }
        }
        self.relays()
            .heartbeat(req(
                HeartbeatRequest {
                    relay_id: id.into(),
                    participants: participants.len() as u32,
                    meetings: loads.len() as u32,
                    bitrate_bps: 1000,
                    draining: false,
                    meeting_loads: loads,
                    host_actions,
                    done_command_ids,
                },
                Some(&relay_auth()),
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn join(
        &self,
        auth: Option<&str>,
        meeting: &str,
        name: &str,
    ) -> Result<JoinGrant, tonic::Status> {
        self.meetings()
            .join_meeting(req(
                JoinMeetingRequest {
                    meeting_id: meeting.into(),
                    display_name: name.into(),
                    password: String::new(),
                    receive_only: false,
                    avoid_relay_ids: Vec::new(),
                    e2ee_signature_key: Vec::new(),
                    admission_ticket: String::new(),
                },
                auth,
            ))
            .await
            .map(|r| r.into_inner())
    }
}

/// Asserts a gRPC failure's code and that its message contains `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    needle: &str,
) {
    match result {
        Ok(value) => panic!("expected {code:?} ({needle}), got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{}", status.message());
            assert!(
                status.message().contains(needle),
                "message {:?} should contain {needle:?}",
                status.message()
            );
        }
    }
}

/// Defines `<name>_sqlite` and `<name>_postgres` tests running `scenario` on each database.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident => $scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::Database::create($crate::common::Backend::Sqlite).await;
                    super::$scenario(&db).await;
                    db.remove().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::Database::create($crate::common::Backend::Postgres).await;
                    super::$scenario(&db).await;
                    db.remove().await;
                }
            )*
        }
    };
}
