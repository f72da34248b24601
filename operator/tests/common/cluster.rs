//! A real Kubernetes API server for tests: etcd, kube-apiserver (v1.20.2, HTTPS, RBAC) and
//! kube-controller-manager started by `scripts/kube.sh` in a directory of the test's own, on
//! loopback ports of their own, and stopped by PID when the [`Cluster`] is dropped. `kubectl`
//! and `helm` (from `scripts/k8s-tools.sh`) talk to it as a cluster operator would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

/// The chart's values for a Kubernetes 1.20 API server.
pub const V1_20_VALUES: &str = "charts/videocall/ci/kube-1.20-values.yaml";

/// The chart's generated credentials (the Secret `videocall-credentials`).
pub struct Credentials {
    /// `key-id:secret` of the operator's admin API key.
    pub operator_api_key: String,
    /// `key-id:secret` of the relays' API key.
    pub relay_api_key: String,
    /// What the control plane is provisioned with (`name:role:key-id:secret`).
    pub bootstrap_api_keys: Vec<String>,
    /// The first admin's password.
    pub admin_password: String,
}
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `helm`, from `VIDEOCALL_HELM` or `scripts/k8s-tools.sh`'s cache.
pub fn helm() -> PathBuf {
    let path = std::env::var_os("VIDEOCALL_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/videocall-tools/bin/helm")
        });
    assert!(
        path.exists(),
        "{} missing: run scripts/k8s-tools.sh",
        path.display()
    );
    path
}

/// `kubectl`, beside `helm`.
pub fn kubectl_path() -> PathBuf {
    helm().with_file_name("kubectl")
}

/// What a command printed, or why it failed.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command`, feeding it `input`.
pub fn run(command: &mut Command, input: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait");
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running API server.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA that signed the API server's certificate.
    pub ca: PathBuf,
    /// A kubeconfig for the admin (system:masters).
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Starts etcd, the API server and the controller manager (builds them on first use).
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let output = run(
            Command::new(root().join("scripts/kube.sh"))
                .arg("start")
                .arg(dir.path()),
            None,
        );
        assert!(
            output.ok,
            "scripts/kube.sh start failed:\n{}",
            output.stderr
        );
        let env = std::fs::read_to_string(dir.path().join("cluster.env")).expect("cluster.env");
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing from cluster.env"))
                .to_owned()
        };
        let cluster = Cluster {
            url: value("KUBE_API_URL"),
            ca: PathBuf::from(value("KUBE_CA")),
            kubeconfig: PathBuf::from(value("KUBECONFIG")),
            dir,
        };
        eprintln!(
            "kube-apiserver v{} at {} ready in {:.1} s",
            value("KUBE_VERSION"),
            cluster.url,
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    /// The directory holding the cluster's state, certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client for the admin.
    pub async fn admin(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// `kubectl` as the admin.
    pub fn kubectl(&self, args: &[&str], input: Option<&str>) -> Output {
        run(
            Command::new(kubectl_path())
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
            input,
        )
    }

    /// `kubectl` as the admin; panics when it fails.
    pub fn kubectl_ok(&self, args: &[&str], input: Option<&str>) -> String {
        let output = self.kubectl(args, input);
        assert!(output.ok, "kubectl {args:?} failed: {}", output.stderr);
        output.stdout
    }

    /// `helm` as the admin.
    pub fn helm(&self, args: &[&str]) -> Output {
        run(
            Command::new(helm())
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
            None,
        )
    }

    /// `helm install videocall` of the chart into `namespace` with the v1.20 values; returns
    /// the credentials it generated.
    pub fn install_chart(&self, namespace: &str) -> Credentials {
        let chart = root().join("charts/videocall").display().to_string();
        let values = root().join(V1_20_VALUES).display().to_string();
        let install = self.helm(&[
            "install",
            "videocall",
            &chart,
            "--namespace",
            namespace,
            "--create-namespace",
            "-f",
            &values,
        ]);
        assert!(install.ok, "helm install failed: {}", install.stderr);
        self.credentials(namespace)
    }

    /// The chart's credentials in `namespace`, as stored now.
    pub fn credentials(&self, namespace: &str) -> Credentials {
        let json = self.kubectl_ok(
            &[
                "get",
                "secret",
                "videocall-credentials",
                "-n",
                namespace,
                "-o",
                "json",
            ],
            None,
        );
        let secret: Secret = serde_json::from_str(&json).expect("secret");
        let data = secret.data.expect("secret data");
        let text = |key: &str| {
            String::from_utf8(data.get(key).unwrap_or_else(|| panic!("{key}")).0.clone())
                .expect("text")
        };
        Credentials {
            operator_api_key: text("operatorApiKey"),
            relay_api_key: text("apiKey"),
            bootstrap_api_keys: text("bootstrapApiKeys")
                .split(',')
                .map(str::to_owned)
                .collect(),
            admin_password: text("adminPassword"),
        }
    }

    /// Applies RelayPool `edge` in `namespace`: up to 4 relays of 2 participants each, no
    /// scale-down delay, registering with the control plane at `control_plane`.
    pub fn apply_small_pool(&self, namespace: &str, control_plane: &str) {
        self.kubectl_ok(
            &["apply", "-n", namespace, "-f", "-"],
            Some(&format!(
                "apiVersion: videocall.dev/v1alpha1\nkind: RelayPool\nmetadata: {{name: edge}}\n\
                 spec:\n  image: videocall/relay:0.1.0\n  maxReplicas: 4\n  \
                 targetParticipantsPerRelay: 2\n  scaleDownDelaySeconds: 0\n  controlPlane: \
                 {{url: '{control_plane}', apiKeySecret: videocall-credentials}}\n"
            )),
        );
    }

    /// Applies the project's CRDs and waits until the API server serves them.
    pub fn apply_crds(&self) {
        let crds = root().join("crds");
        self.kubectl_ok(&["apply", "-f", &crds.display().to_string()], None);
        self.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/relaypools.videocall.dev",
                "crd/meetings.videocall.dev",
            ],
            None,
        );
    }

    /// A kubeconfig that authenticates as the ServiceAccount `namespace/name` with the token
    /// the controller manager issued it, as a pod running under that account would.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let admin = self.admin().await;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(admin, namespace);
        let deadline = Instant::now() + Duration::from_secs(60);
        let token = loop {
            let secret_name = accounts
                .get_opt(name)
                .await
                .expect("get service account")
                .and_then(|a| a.secrets?.first()?.name.clone());
            if let Some(secret_name) = secret_name {
                if let Some(token) = secrets
                    .get_opt(&secret_name)
                    .await
                    .expect("get token secret")
                    .and_then(|s| s.data?.get("token").cloned())
                {
                    break String::from_utf8(token.0).expect("token is text");
                }
            }
            assert!(
                Instant::now() < deadline,
                "no token issued for service account {namespace}/{name}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let path = self.dir().join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n  - name: test\n    cluster:\n      \
                 server: {}\n      certificate-authority: {}\nusers:\n  - name: {name}\n    \
                 user:\n      token: {token}\ncontexts:\n  - name: test\n    context: {{cluster: \
                 test, user: {name}, namespace: {namespace}}}\ncurrent-context: test\n",
                self.url,
                self.ca.display()
            ),
        )
        .expect("write kubeconfig");
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/kube.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Waits until `check` returns `Some`, polling; panics after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
