//! The Helm chart and the example manifests are valid Kubernetes objects: every rendered
//! document deserialises into its `k8s-openapi` (or our CRD) type and serialises back
//! unchanged (an unknown or misplaced field would be lost on the way), and our custom
//! resources validate against the generated CRD schemas. Bad values are refused by the
//! chart's schema.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cluster::{helm, kubectl_path, root};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use videocall_operator::crd::{Meeting, RelayPool};

fn helm_template(values: &[&str]) -> Result<String, String> {
    let mut command = Command::new(helm());
    command
        .args(["template", "videocall"])
        .arg(root().join("charts/videocall"));
    command.args(["--namespace", "calls", "--include-crds"]);
    for v in values {
        command.args(["-f", v]);
    }
    let output = command.output().expect("run helm");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value = Value::deserialize(doc).expect("YAML");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

use serde::Deserialize;

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        numbers_as_floats(back),
        numbers_as_floats(doc.clone()),
        "{} {} does not survive its type: a field is unknown or misplaced",
        doc["kind"],
        doc["metadata"]["name"]
    );
}

/// `1000` and `1000.0` are one number (kustomize prints the one, k8s-openapi the other).
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

fn crd_schema(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("crds").join(file)).unwrap();
    let crd = documents(&text).remove(0);
    let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    jsonschema::validator_for(&schema).expect("CRD schema compiles")
}

fn check_custom_resource(doc: &Value) {
    let (file, kind) = match doc["kind"].as_str() {
        Some("RelayPool") => ("relaypools.yaml", "RelayPool"),
        Some("Meeting") => ("meetings.yaml", "Meeting"),
        other => panic!("not ours: {other:?}"),
    };
    let validator = crd_schema(file);
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{kind} {}: {errors:?}",
        doc["metadata"]["name"]
    );
    match kind {
        "RelayPool" => drop(serde_json::from_value::<RelayPool>(doc.clone()).expect("RelayPool")),
        _ => drop(serde_json::from_value::<Meeting>(doc.clone()).expect("Meeting")),
    }
}

fn check(doc: &Value) {
    match doc["kind"].as_str().unwrap_or_default() {
        "Deployment" => round_trip::<Deployment>(doc),
        "StatefulSet" => round_trip::<StatefulSet>(doc),
        "DaemonSet" => round_trip::<DaemonSet>(doc),
        "ConfigMap" => round_trip::<ConfigMap>(doc),
        "Service" => round_trip::<Service>(doc),
        "Secret" => {
            // kustomize folds long base64 values over lines; the API server's decoder skips
            // the line breaks, so the test does too.
            let mut doc = doc.clone();
            if let Some(data) = doc["data"].as_object_mut() {
                for value in data.values_mut() {
                    if let Some(text) = value.as_str() {
                        *value = Value::String(text.replace('\n', ""));
                    }
                }
            }
            round_trip::<Secret>(&doc)
        }
        "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(doc),
        "ServiceAccount" => round_trip::<ServiceAccount>(doc),
        "ClusterRole" => round_trip::<ClusterRole>(doc),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(doc),
        "Role" => round_trip::<Role>(doc),
        "RoleBinding" => round_trip::<RoleBinding>(doc),
        "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(doc),
        "Namespace" => round_trip::<Namespace>(doc),
        "Ingress" => round_trip::<Ingress>(doc),
        "RelayPool" | "Meeting" => check_custom_resource(doc),
        "PrometheusRule" => check_prometheus_rule(doc),
        other => panic!("the chart renders a {other} the test does not know"),
    }
}

/// A PrometheusRule's shape (the Prometheus Operator's CRD is not here): groups of rules,
/// each an alert with an expression, a duration and a summary.
fn check_prometheus_rule(doc: &Value) {
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    let groups = doc["spec"]["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    for group in groups {
        assert!(group["name"].is_string());
        for rule in group["rules"].as_array().expect("rules") {
            let alert = rule["alert"].as_str().expect("alert name");
            assert!(
                rule["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{alert}"
            );
            let duration = rule["for"].as_str().expect("for");
            assert!(
                duration
                    .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .parse::<u32>()
                    .is_ok(),
                "{alert}: for {duration}"
            );
            assert!(rule["annotations"]["summary"].is_string(), "{alert}");
        }
    }
}

/// Every `videocall_<component>_<name>` in `text`, each checked to be a metric its
/// component registers: `<name>` (less a histogram's `_bucket`, `_sum` or `_count`) is a
/// string in that component's metrics source.
fn assert_metrics_exist(text: &str, context: &str) -> usize {
    let sources = [
        ("videocall_control_plane_", "control-plane/src/metrics.rs"),
        ("videocall_relay_", "relay/src/metrics.rs"),
        ("videocall_gateway_", "gateway/src/metrics.rs"),
        ("videocall_streamer_", "streamer/src/metrics.rs"),
        ("videocall_operator_", "operator/src/metrics.rs"),
    ];
    let mut found = 0;
    let mut rest = text;
    while let Some(at) = rest.find("videocall_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let Some((prefix, file)) = sources.iter().find(|(p, _)| name.starts_with(p)) else {
            continue; // not a metric (a uid, a ConfigMap key)
        };
        let short = name.trim_start_matches(prefix);
        let short = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| short.strip_suffix(suffix))
            .unwrap_or(short);
        let source = std::fs::read_to_string(root().join(file)).expect("metrics source");
        assert!(
            source.contains(&format!("\"{short}\"")),
            "{context}: {name} is not a metric of {file}"
        );
        found += 1;
    }
    found
}

#[test]
fn the_chart_ships_a_dashboard_and_alerts_on_metrics_that_exist() {
    let docs = documents(&helm_template(&[]).expect("helm template"));
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "videocall-dashboard")
        .expect("the dashboard's ConfigMap");
    assert_eq!(
        dashboard["metadata"]["labels"]["grafana_dashboard"], "1",
        "the label Grafana's sidecar looks for"
    );
    let json: Value = serde_json::from_str(
        dashboard["data"]["videocall-platform.json"]
            .as_str()
            .expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] == "timeseries") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            queries += assert_metrics_exist(expr, &format!("panel {}", panel["title"]));
        }
    }
    assert!(queries >= 20, "{queries} metrics in the dashboard");
    assert!(
        !docs.iter().any(|d| d["kind"] == "PrometheusRule"),
        "alerts only where the Prometheus Operator is"
    );

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("alerts.yaml");
    std::fs::write(
        &values,
        "monitoring:\n  prometheusRule:\n    enabled: true\n    labels: {release: prom}\n",
    )
    .unwrap();
    let docs = documents(&helm_template(&[values.to_str().unwrap()]).expect("helm template"));
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the alerts");
    check(rule);
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            assert_metrics_exist(r["expr"].as_str().unwrap_or_default(), "alert");
            r["alert"].as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(
        alerts,
        [
            "VideocallRelayDown",
            "VideocallDropsRising",
            "VideocallJoinErrors",
            "VideocallDrainStuck"
        ]
    );
    let drops = rule["spec"]["groups"][0]["rules"][1]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(drops.contains("Over 5%"), "{drops}");
    let down = rule["spec"]["groups"][0]["rules"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        down.contains("{{ $value }}"),
        "Prometheus's own template survives: {down}"
    );
}

#[test]
fn the_chart_renders_valid_objects_for_every_values_file() {
    let ci = root().join("charts/videocall/ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ci)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut cases: Vec<Vec<String>> = vec![Vec::new()];
    cases.extend(files.iter().map(|f| vec![f.display().to_string()]));
    for values in cases {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let yaml = helm_template(&refs).unwrap_or_else(|e| panic!("helm template {values:?}: {e}"));
        let docs = documents(&yaml);
        assert!(docs.len() >= 4, "{values:?}: only {} objects", docs.len());
        for doc in &docs {
            check(doc);
        }
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == "CustomResourceDefinition")
                .count(),
            2,
            "{values:?}"
        );
    }
}

#[test]
fn the_gateway_fronts_relays_by_name_and_path() {
    let ingress = root().join("charts/videocall/ci/ingress-values.yaml");
    let yaml = helm_template(&[ingress.to_str().unwrap()]).expect("helm template");
    let docs = documents(&yaml);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let service: Service = serde_json::from_value(find("Service", "videocall-gateway")).unwrap();
    let ports = service.spec.unwrap().ports.unwrap();
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap()
            .clone()
    };
    assert_eq!(
        (port("quic").port, port("quic").protocol.as_deref()),
        (443, Some("UDP"))
    );
    assert_eq!(port("http").protocol.as_deref(), Some("TCP"));

    let deployment: Deployment =
        serde_json::from_value(find("Deployment", "videocall-gateway")).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let container = pod.containers[0].clone();
    let env = container.env.unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap()
    };
    // The relays' StatefulSet pods through the pool's headless Service.
    assert_eq!(
        value("GATEWAY_RELAY_HOST_TEMPLATE"),
        "relays-{server_id}.relays.calls.svc"
    );
    assert_eq!(
        value("GATEWAY_CONTROL_PLANE_ADDR"),
        "videocall-control-plane.calls.svc:50051"
    );

    // Relays advertise names the gateway routes by.
    let pool = find("RelayPool", "relays");
    assert_eq!(
        pool["spec"]["gateway"]["webTransportUrl"],
        "https://relay-{server_id}.meet.example.test:443/"
    );
    assert_eq!(
        pool["spec"]["gateway"]["webSocketUrl"],
        "wss://meet.example.test/relay/{server_id}/ws"
    );
    // HTTP enters through the Ingress into the gateway.
    let ingress = find("Ingress", "videocall-control-plane");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "videocall-gateway");
    assert_eq!(backend["port"]["name"], "http");

    // An IP address has no server names to route by: relays keep their own URLs.
    let plain = helm_template(&[]).expect("helm template");
    let pool = documents(&plain)
        .into_iter()
        .find(|d| d["kind"] == "RelayPool")
        .unwrap();
    assert!(pool["spec"].get("gateway").is_none());
}

#[test]
fn the_control_plane_takes_a_meeting_share_per_relay() {
    let share = |yaml: &str| -> Option<String> {
        let docs = documents(yaml);
        let workload = docs
            .iter()
            .find(|d| {
                (d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
                    && d["metadata"]["name"] == "videocall-control-plane"
            })
            .expect("the control plane's workload");
        let env = workload["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        env.iter()
            .find(|e| e["name"] == "CONTROL_PLANE_MEETING_SHARE_PER_RELAY")
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    };
    assert_eq!(share(&helm_template(&[]).expect("helm template")), None);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("share.yaml");
    std::fs::write(&values, "controlPlane:\n  meetingSharePerRelay: 25\n").unwrap();
    let yaml = helm_template(&[values.to_str().unwrap()]).expect("helm template");
    assert_eq!(share(&yaml).as_deref(), Some("25"));
}

/// The env value `name` of the first container of `workload`.
fn env_value<'a>(workload: &'a Value, name: &str) -> Option<&'a str> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

#[test]
fn the_streamer_daemonset_runs_on_camera_nodes_with_per_node_options() {
    let find = |docs: &[Value], kind: &str| -> Option<Value> {
        let name = match kind {
            "ConfigMap" => "videocall-streamer-nodes",
            _ => "videocall-streamer",
        };
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
    };
    // Off by default.
    let plain = documents(&helm_template(&[]).expect("helm template"));
    assert!(find(&plain, "DaemonSet").is_none());

    let values = root().join("charts/videocall/ci/streamer-values.yaml");
    let docs = documents(&helm_template(&[values.to_str().unwrap()]).expect("helm template"));
    let daemonset = find(&docs, "DaemonSet").expect("the streamer DaemonSet");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["videocall.io/camera"], "true");
    assert!(pod["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "kubernetes.io/arch" && t["value"] == "arm64"));
    // The camera: the node's device, opened as the group `video`.
    let camera = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "camera")
        .expect("the camera volume");
    assert_eq!(camera["hostPath"]["path"], "/dev/video0");
    assert_eq!(camera["hostPath"]["type"], "CharDevice");
    assert_eq!(pod["securityContext"]["supplementalGroups"][0], 44);
    // Sound: the node's ALSA devices, opened as the group `audio`.
    let sound = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "sound")
        .expect("the sound volume");
    assert_eq!(sound["hostPath"]["path"], "/dev/snd");
    assert_eq!(pod["securityContext"]["supplementalGroups"][1], 29);
    assert_eq!(env_value(&daemonset, "STREAMER_AUDIO"), Some("true"));
    assert_eq!(
        env_value(&daemonset, "STREAMER_AUDIO_DEVICE"),
        Some("default")
    );
    let container = &pod["containers"][0];
    assert!(container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == "/dev/snd"));
    assert_eq!(container["securityContext"]["privileged"], true);
    assert_eq!(env_value(&daemonset, "STREAMER_SOURCE"), Some("camera"));
    assert_eq!(
        env_value(&daemonset, "STREAMER_VIDEO_DEVICE"),
        Some("/dev/video0")
    );
    assert_eq!(
        env_value(&daemonset, "STREAMER_FRAME_FORMAT"),
        Some("MJPEG")
    );
    assert_eq!(env_value(&daemonset, "STREAMER_MEETING_ID"), Some("lobby"));
    assert_eq!(
        env_value(&daemonset, "STREAMER_USER_ID"),
        Some("$(NODE_NAME)")
    );
    assert_eq!(
        env_value(&daemonset, "STREAMER_OPTIONS_FILE"),
        Some("/etc/videocall-streamer/nodes/$(NODE_NAME)")
    );
    assert_eq!(
        env_value(&daemonset, "STREAMER_CONTROL_PLANE_URL"),
        Some("http://videocall-control-plane.calls.svc:50051")
    );
    let api_key = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "STREAMER_API_KEY")
        .expect("the API key from the Secret");
    assert_eq!(
        api_key["valueFrom"]["secretKeyRef"]["name"],
        "streamer-credentials"
    );
    // Probes on the admin port; limits for a Pi 4.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["ports"][0]["containerPort"], 9096);
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    // Per-node options: the file each node's streamer reads.
    let nodes = find(&docs, "ConfigMap").expect("the per-node ConfigMap");
    assert_eq!(
        nodes["data"]["pi-kitchen"],
        "STREAMER_FPS=15\nSTREAMER_MEETING_ID=kitchen\nSTREAMER_RESOLUTION=640x480\n"
    );
    assert_eq!(
        nodes["data"]["pi-porch"],
        "STREAMER_AUDIO_DEVICE=test-tone\nSTREAMER_SOURCE=test-pattern\n"
    );

    // A device plugin's resource instead of a privileged hostPath (and no microphone, whose
    // /dev/snd would need one).
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.yaml");
    std::fs::write(
        &plugin,
        "streamer:\n  camera:\n    devicePluginResource: squat.ai/video\n  audio:\n    enabled: false\n",
    )
    .unwrap();
    let docs = documents(
        &helm_template(&[values.to_str().unwrap(), plugin.to_str().unwrap()])
            .expect("helm template"),
    );
    let daemonset = find(&docs, "DaemonSet").expect("DaemonSet");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert!(!pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "camera" || v["name"] == "sound"));
    let container = &pod["containers"][0];
    assert_eq!(container["resources"]["limits"]["squat.ai/video"], "1");
    assert_eq!(container["resources"]["limits"]["cpu"], "2");
    assert!(container["securityContext"]["privileged"].is_null());
    check(&daemonset);
}

#[test]
fn bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, yaml, needle) in [
        (
            "negative.yaml",
            "relayPool:\n  minReplicas: -1\n",
            "minReplicas",
        ),
        ("unknown.yaml", "relayPool:\n  replicaz: 3\n", "replicaz"),
        (
            "sqlite.yaml",
            "controlPlane:\n  replicas: 2\n",
            "database.external",
        ),
        (
            "ingress.yaml",
            "ingress:\n  enabled: true\n",
            "ingress.host",
        ),
        (
            "streamer.yaml",
            "streamer:\n  enabled: true\n",
            "streamer.meetingId",
        ),
        ("streamer-fps.yaml", "streamer:\n  fps: 0\n", "fps"),
        (
            "streamer-node.yaml",
            "streamer:\n  nodes:\n    pi-1:\n      resolutoin: 640x480\n",
            "resolutoin",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        let error = helm_template(&[path.to_str().unwrap()]).expect_err(name);
        assert!(error.contains(needle), "{name}: {error}");
    }
}

#[test]
fn the_chart_ships_the_generated_crds() {
    for file in ["relaypools.yaml", "meetings.yaml"] {
        let generated = std::fs::read_to_string(root().join("crds").join(file)).unwrap();
        let shipped =
            std::fs::read_to_string(root().join("charts/videocall/crds").join(file)).unwrap();
        assert!(
            generated == shipped,
            "charts/videocall/crds/{file} is stale: copy crds/{file}"
        );
    }
}

#[test]
fn the_examples_validate_against_the_crds() {
    let dir = root().join("manifests/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in documents(&text) {
            check_custom_resource(&doc);
            seen += 1;
        }
    }
    assert!(seen >= 2);
    // And the schema does reject what it should.
    let mut bad: Value =
        documents(&std::fs::read_to_string(dir.join("meeting.yaml")).unwrap()).remove(0);
    bad["spec"]["maxParticipants"] = serde_json::json!(0);
    assert!(
        !crd_schema("meetings.yaml").is_valid(&bad),
        "maxParticipants 0 must be refused"
    );
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_manifests_are_the_rendered_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("videocall.yaml");
    let streamer = dir.path().join("streamer.yaml");
    run(Command::new(root().join("scripts/render-manifests.sh"))
        .arg(&out)
        .arg(&streamer)
        .env("VIDEOCALL_HELM", helm()));
    for (fresh, committed) in [
        (out, "manifests/videocall.yaml"),
        (streamer, "manifests/streamer/streamer.yaml"),
    ] {
        let fresh = std::fs::read_to_string(&fresh).unwrap();
        let committed = std::fs::read_to_string(root().join(committed)).unwrap();
        assert!(
            fresh == committed,
            "{committed} is stale: run scripts/render-manifests.sh"
        );
    }
}

/// `kubectl apply -k manifests/streamer/` gets the streamer's DaemonSet and ConfigMap, valid.
#[test]
fn the_streamer_example_builds_with_kustomize() {
    let yaml = run(Command::new(kubectl_path())
        .arg("kustomize")
        .arg(root().join("manifests/streamer")));
    let docs = documents(&yaml);
    let kinds: Vec<_> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"]);
    for doc in &docs {
        assert_eq!(doc["metadata"]["namespace"], "videocall");
        check(doc);
    }
    assert_eq!(env_value(&docs[1], "STREAMER_MEETING_ID"), Some("cameras"));
}

/// `kubectl apply -k manifests/` gets valid objects, all in one namespace, with a Secret whose
/// credentials a real control plane accepts.
#[tokio::test]
async fn the_manifests_build_with_kustomize_and_their_credentials_work() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["kustomization.yaml", "namespace.yaml", "videocall.yaml"] {
        std::fs::copy(root().join("manifests").join(file), dir.path().join(file)).unwrap();
    }
    run(Command::new(root().join("scripts/manifests-credentials.sh")).arg(dir.path()));
    let yaml = run(Command::new(kubectl_path())
        .arg("kustomize")
        .arg(dir.path()));
    let docs = documents(&yaml);
    for doc in &docs {
        check(doc);
    }
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "Deployment",
        "RelayPool",
        "Secret",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    for doc in &docs {
        if !cluster_scoped.contains(&doc["kind"].as_str().unwrap_or_default()) {
            assert_eq!(
                doc["metadata"]["namespace"], "videocall",
                "{}",
                doc["metadata"]["name"]
            );
        }
    }

    let mut secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap().clone();
    for value in secret["data"].as_object_mut().unwrap().values_mut() {
        *value = Value::String(value.as_str().unwrap().replace('\n', ""));
    }
    let secret: Secret = serde_json::from_value(secret).unwrap();
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("videocall-credentials")
    );
    let data = secret.data.unwrap_or_default();
    let value = |key: &str| {
        String::from_utf8(
            data.get(key)
                .unwrap_or_else(|| panic!("no {key}"))
                .0
                .clone(),
        )
        .unwrap()
    };

    let state = tempfile::tempdir().unwrap();
    let mut config = videocall_control_plane::ControlPlaneConfig::defaults();
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = format!("sqlite://{}?mode=rwc", state.path().join("cp.db").display());
    config.bootstrap_admin_password = Some(value("adminPassword"));
    config.bootstrap_api_keys = value("bootstrapApiKeys")
        .split(',')
        .map(str::to_owned)
        .collect();
    let server = videocall_control_plane::ControlPlaneServer::start(config)
        .await
        .expect("the control plane accepts the generated bootstrap keys");
    let url = format!("http://{}", server.addr);

    let operator =
        videocall_operator::control_plane::ControlPlaneClient::new(&url, &value("operatorApiKey"))
            .unwrap();
    // Draining is for admins: an unknown relay is "not found" for the operator's key...
    let missing = operator
        .drain("no-such-relay")
        .await
        .expect_err("no such relay");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    let mut auth =
        videocall_control_api::v1::auth_service_client::AuthServiceClient::connect(url.clone())
            .await
            .unwrap();
    auth.login(videocall_control_api::v1::LoginRequest {
        username: "admin".into(),
        password: value("adminPassword"),
    })
    .await
    .expect("the admin password logs in");

    // ...and refused to the relays' key, which is a relay key.
    let relay =
        videocall_operator::control_plane::ControlPlaneClient::new(&url, &value("apiKey")).unwrap();
    relay.relays().await.expect("the relay key is a relay key");
    let refused = relay
        .drain("no-such-relay")
        .await
        .expect_err("a relay key is no admin key");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    server.stop().await;
}
