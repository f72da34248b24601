//! Test support: a fake Kubernetes API server behind kube's `tower-test` mock (it records
//! every request the reconcilers make and answers like an API server would), a real
//! control plane and real relays on loopback.

#![allow(dead_code)]

pub mod cluster;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use serde_json::{json, Value};
use videocall_operator::control_plane::ControlPlaneClient;
use videocall_operator::controller::Context;
use videocall_operator::metrics::Metrics;

pub const OPERATOR_KEY: (&str, &str) = ("vk_operator", "operator-secret-0123456789");
pub const RELAY_KEY: (&str, &str) = ("vk_relays", "relay-secret-0123456789");

/// One request the reconcilers made.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// Objects by path, and every request in order.
#[derive(Default)]
pub struct FakeApi {
    pub objects: HashMap<String, Value>,
    pub requests: Vec<Recorded>,
}

impl FakeApi {
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .cloned()
            .collect()
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A kube client answered by a fake API server holding `objects`.
pub fn fake_kube(objects: HashMap<String, Value>) -> (Client, Arc<Mutex<FakeApi>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api = Arc::new(Mutex::new(FakeApi {
        objects,
        requests: Vec::new(),
    }));
    let state = api.clone();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (status, answer) = {
                let mut api = state.lock().unwrap();
                api.requests.push(Recorded {
                    method: method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
                match method.as_str() {
                    "GET" => match api.objects.get(&path) {
                        Some(object) => (StatusCode::OK, object.clone()),
                        None => (StatusCode::NOT_FOUND, not_found(&path)),
                    },
                    "POST" => {
                        let name = body["metadata"]["name"]
                            .as_str()
                            .unwrap_or("generated")
                            .to_owned();
                        api.objects.insert(format!("{path}/{name}"), body.clone());
                        (StatusCode::CREATED, body)
                    }
                    "PATCH" | "PUT" => {
                        let target = path.strip_suffix("/status").unwrap_or(&path).to_owned();
                        let object = api.objects.entry(target).or_insert_with(|| json!({}));
                        match &body {
                            Value::Array(ops) => json_patch(object, ops),
                            _ => merge(object, &body),
                        }
                        (StatusCode::OK, object.clone())
                    }
                    "DELETE" => {
                        api.objects.remove(&path);
                        (
                            StatusCode::OK,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                        )
                    }
                    _ => (StatusCode::METHOD_NOT_ALLOWED, not_found(&path)),
                }
            };
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
    });
    (Client::new(service, "default"), api)
}

/// The JSON Patch operations kube's finalizer helper sends (add, remove, replace, test).
fn json_patch(target: &mut Value, ops: &[Value]) {
    for op in ops {
        let path = op["path"].as_str().unwrap_or("");
        let (parent_path, last) = path.rsplit_once('/').unwrap_or(("", path));
        let kind = op["op"].as_str().unwrap_or("");
        if kind == "test" {
            continue;
        }
        if kind != "remove" && parent_path.is_empty() && last.is_empty() {
            *target = op["value"].clone();
            continue;
        }
        let Some(parent) = target.pointer_mut(parent_path) else {
            continue;
        };
        match (kind, parent) {
            ("add", Value::Array(items)) if last == "-" => items.push(op["value"].clone()),
            ("add" | "replace", Value::Array(items)) => {
                if let Ok(i) = last.parse::<usize>() {
                    if kind == "replace" && i < items.len() {
                        items[i] = op["value"].clone();
                    } else if i <= items.len() {
                        items.insert(i, op["value"].clone());
                    }
                }
            }
            ("add" | "replace", Value::Object(map)) => {
                map.insert(last.to_owned(), op["value"].clone());
            }
            ("remove", Value::Array(items)) => {
                if let Ok(i) = last.parse::<usize>() {
                    if i < items.len() {
                        items.remove(i);
                    }
                }
            }
            ("remove", Value::Object(map)) => {
                map.remove(last);
            }
            _ => {}
        }
    }
}

fn not_found(path: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{path} not found"), "reason": "NotFound", "code": 404
    })
}

/// A control plane on loopback (SQLite) with an operator (admin) key and a relay key.
pub async fn control_plane(dir: &std::path::Path) -> videocall_control_plane::ControlPlaneServer {
    control_plane_with_keys(
        dir,
        vec![
            format!("operator:admin:{}:{}", OPERATOR_KEY.0, OPERATOR_KEY.1),
            format!("relays:relay:{}:{}", RELAY_KEY.0, RELAY_KEY.1),
        ],
        None,
    )
    .await
}

/// A control plane on loopback (SQLite) provisioned with `bootstrap_api_keys`
/// (`name:role:key-id:secret`, as `--bootstrap-api-key` takes them), placing at most
/// `meeting_share_per_relay` of a meeting's participants on one relay when set.
pub async fn control_plane_with_keys(
    dir: &std::path::Path,
    bootstrap_api_keys: Vec<String>,
    meeting_share_per_relay: Option<u32>,
) -> videocall_control_plane::ControlPlaneServer {
    let mut config = videocall_control_plane::ControlPlaneConfig::defaults();
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = format!("sqlite://{}?mode=rwc", dir.join("cp.db").display());
    config.heartbeat_interval_ms = 200;
    config.relay_stale_after_ms = 1500;
    config.bootstrap_api_keys = bootstrap_api_keys;
    config.meeting_share_per_relay = meeting_share_per_relay;
    videocall_control_plane::ControlPlaneServer::start(config)
        .await
        .expect("control plane")
}

#[derive(Parser)]
struct RelayArgs {
    #[command(flatten)]
    config: videocall_relay::RelayConfig,
}

/// A relay named `id` registered with the control plane at `url`.
pub async fn relay(id: &str, url: &str) -> videocall_relay::RelayHandle {
    relay_with_key(id, url, &format!("{}:{}", RELAY_KEY.0, RELAY_KEY.1)).await
}

/// A relay named `id` registered with the control plane at `url` with the relay API key
/// `key` (`key-id:secret`).
pub async fn relay_with_key(id: &str, url: &str, key: &str) -> videocall_relay::RelayHandle {
    relay_with_key_and(id, url, key, &[]).await
}

/// As [`relay_with_key`], with more relay flags (`extra`).
pub async fn relay_with_key_and(
    id: &str,
    url: &str,
    key: &str,
    extra: &[&str],
) -> videocall_relay::RelayHandle {
    let args = RelayArgs::parse_from(
        ["relay", "--relay-id", id, "--drain-timeout-secs", "300"]
            .into_iter()
            .chain(videocall_testkit::LOOPBACK_RELAY_ADDRS)
            .chain(["--control-plane-url", url, "--control-plane-api-key", key])
            .chain(extra.iter().copied()),
    );
    videocall_relay::start(args.config).await.expect("relay")
}

/// The reconcilers' context over `client` and the control plane at `url`.
pub fn context(client: Client, url: &str) -> Arc<Context> {
    Arc::new(Context {
        control_plane: ControlPlaneClient::new(
            url,
            &format!("{}:{}", OPERATOR_KEY.0, OPERATOR_KEY.1),
        )
        .unwrap(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "videocall-operator".into(),
                instance: None,
            },
        ),
        client,
        public_url: "https://meet.example.test".into(),
        scale_memory: Default::default(),
        metrics: Metrics::new().unwrap(),
    })
}

/// Waits until `check` holds, polling.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pool `calls/edge`: 1 to 4 relays of 2 participants each, no buffer, no scale-down delay.
pub fn pool(control_plane_url: &str) -> videocall_operator::crd::RelayPool {
    let mut pool = videocall_operator::crd::RelayPool::new(
        "edge",
        videocall_operator::crd::RelayPoolSpec {
            image: "videocall-relay:test".into(),
            min_replicas: 1,
            max_replicas: 4,
            target_participants_per_relay: 2,
            buffer_participants: 0,
            buffer_percent: 0,
            scale_down_delay_seconds: 0,
            drain_timeout_seconds: 300,
            resources: None,
            ports: videocall_operator::crd::RelayPorts::default(),
            public_host: None,
            gateway: None,
            nats: None,
            control_plane: videocall_operator::crd::ControlPlaneRef {
                url: control_plane_url.into(),
                api_key_secret: "relay-key".into(),
            },
        },
    );
    pool.metadata.namespace = Some("calls".into());
    pool.metadata.uid = Some("pool-uid".into());
    pool.metadata.generation = Some(1);
    pool
}

/// Meeting `calls/<name>` in `pool`: guests, 10 seats, generation 1.
pub fn meeting(name: &str, pool: &str) -> videocall_operator::crd::Meeting {
    let mut meeting = videocall_operator::crd::Meeting::new(
        name,
        videocall_operator::crd::MeetingSpec {
            title: "Standup".into(),
            relay_pool: pool.into(),
            access: Default::default(),
            allowed_users: Vec::new(),
            hosts: Vec::new(),
            guests_allowed: true,
            waiting_room: None,
            locked: None,
            max_participants: 10,
            e2ee_required: false,
            start_time: None,
            end_time: None,
        },
    );
    meeting.metadata.namespace = Some("calls".into());
    meeting.metadata.uid = Some(format!("{name}-uid"));
    meeting.metadata.generation = Some(1);
    meeting
}

/// A guest in `meeting`, over WebSocket, through a grant from the control plane at `url`.
pub async fn guest(url: &str, meeting: &str) -> videocall_client::Client {
    let mut meetings =
        videocall_control_api::v1::meeting_service_client::MeetingServiceClient::connect(
            url.to_owned(),
        )
        .await
        .unwrap();
    let grant = meetings
        .join_meeting(videocall_control_api::v1::JoinMeetingRequest {
            meeting_id: meeting.into(),
            display_name: "Guest".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let relay = grant.relay.unwrap();
    let address = videocall_client::RelayAddress {
        webtransport_url: relay.webtransport_url,
        websocket_url: relay.websocket_url,
        certificate_sha256: relay.certificate_sha256.first().cloned(),
    };
    videocall_client::Client::connect(videocall_client::ConnectOptions::new(
        videocall_client::Transport::WebSocket,
        address,
        meeting,
        &grant.token,
    ))
    .await
    .unwrap()
}

/// Meeting `id` admitting guests, created with the operator's admin key.
pub async fn create_meeting(url: &str, id: &str) {
    let mut meetings =
        videocall_control_api::v1::meeting_service_client::MeetingServiceClient::connect(
            url.to_owned(),
        )
        .await
        .unwrap();
    let mut request = tonic::Request::new(videocall_control_api::v1::CreateMeetingRequest {
        id: id.into(),
        guests_allowed: true,
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        videocall_control_api::api_key_authorization(OPERATOR_KEY.0, OPERATOR_KEY.1)
            .parse()
            .unwrap(),
    );
    meetings.create_meeting(request).await.unwrap();
}

/// Prints p50, p99 and max of `samples` in milliseconds (for the benchmarks).
pub fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1e3
    };
    println!(
        "{label:<52} n={:<5} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        samples.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// Participants the control plane's fresh relays report.
pub async fn participants(control_plane: &ControlPlaneClient) -> u32 {
    control_plane
        .relays()
        .await
        .map(|relays| {
            relays
                .iter()
                .filter(|r| r.fresh)
                .map(|r| r.participants)
                .sum()
        })
        .unwrap_or(0)
}
