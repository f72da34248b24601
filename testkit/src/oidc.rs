//! A real, certified OpenID Connect provider for tests: the npm package `oidc-provider`, run
//! with Node.js by `web/e2e/oidc-provider.mjs` on a loopback port of its own, stopped (by PID)
//! when dropped. Its login form takes a username of `people` (the tests are the people).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ChildGuard;

/// The client id the provider knows.
pub const CLIENT_ID: &str = "videocall";
/// Its secret.
pub const CLIENT_SECRET: &str = "client-secret-for-tests-0123456789";

/// A running provider.
pub struct TestProvider {
    _child: ChildGuard,
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
}

/// How the provider behaves.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Where client `videocall` may send browsers back to.
    pub redirect_uri: String,
    /// Username → claims (email, email_verified, name, picture, groups, …).
    pub people: serde_json::Value,
    /// How long an authorization code lives.
    pub code_ttl_secs: u32,
    /// Claims in the ID token too (by default only in userinfo, as the code flow has it).
    pub claims_in_id_token: bool,
}

impl TestProvider {
    /// The control plane's (and `videocall up`'s) flags for this provider, shown as "Test
    /// Provider".
    pub fn control_plane_args(&self) -> Vec<String> {
        [
            "--oidc-issuer",
            &self.issuer,
            "--oidc-client-id",
            CLIENT_ID,
            "--oidc-client-secret",
            CLIENT_SECRET,
            "--oidc-name",
            "Test Provider",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Starts one from the repository at `root` (which has `web/node_modules/oidc-provider`).
    pub async fn start(root: &Path, options: &ProviderOptions) -> TestProvider {
        let script = root.join("web/e2e/oidc-provider.mjs");
        assert!(
            root.join("web/node_modules/oidc-provider").is_dir(),
            "web/node_modules/oidc-provider is needed: run scripts/web-build.sh (npm ci in web/)"
        );
        let clients = serde_json::json!([{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [options.redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }]);
        let mut child = Command::new("node")
            .arg(&script)
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_USERS", options.people.to_string())
            .env("OIDC_CODE_TTL", options.code_ttl_secs.to_string())
            .env(
                "OIDC_ID_TOKEN_CLAIMS",
                if options.claims_in_id_token { "1" } else { "0" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (Node.js) runs the test provider");
        let stdout = child.stdout.take().expect("stdout");
        let child = ChildGuard(child);
        // Its output is read to the end: a closed pipe would kill it at its next line.
        let (said, issuer) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut said = Some(said);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    if let Some(said) = said.take() {
                        let _ = said.send(issuer.to_owned());
                    }
                }
            }
        });
        let issuer = tokio::time::timeout(Duration::from_secs(30), issuer)
            .await
            .expect("the provider starts within 30 s")
            .expect("the provider says its issuer");
        TestProvider {
            _child: child,
            issuer,
        }
    }
}
