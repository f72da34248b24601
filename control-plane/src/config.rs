//! Control-plane configuration: every setting is a flag and an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Everything the control plane needs to run.
#[derive(Debug, Clone, Args)]
pub struct ControlPlaneConfig {
    /// Address of the gRPC and grpc-web API.
    #[arg(long, env = "CONTROL_PLANE_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// `sqlite://<file>?mode=rwc` (embedded default) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://control-plane.db?mode=rwc"
    )]
    pub database_url: String,

    /// Database connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Lifetime of join tokens, in seconds.
    #[arg(long, env = "CONTROL_PLANE_TOKEN_TTL_SECS", default_value_t = 600)]
    pub token_ttl_secs: u64,

    /// Lifetime of login sessions, in seconds.
    #[arg(long, env = "CONTROL_PLANE_SESSION_TTL_SECS", default_value_t = 86_400)]
    pub session_ttl_secs: u64,

    /// A grant holds its seat this long for its holder to connect, in seconds; after that
    /// the seat is held only while the holder is connected.
    #[arg(long, env = "CONTROL_PLANE_CONNECT_WINDOW_SECS", default_value_t = 60)]
    pub connect_window_secs: u64,

    /// How often relays heartbeat, in milliseconds.
    #[arg(
        long,
        env = "CONTROL_PLANE_HEARTBEAT_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub heartbeat_interval_ms: u32,

    /// Most people in one meeting's waiting room at once; past it, JoinMeeting answers
    /// RESOURCE_EXHAUSTED to those who would wait.
    #[arg(
        long,
        env = "CONTROL_PLANE_MAX_WAITING_PER_MEETING",
        default_value_t = 1000
    )]
    pub max_waiting_per_meeting: u32,

    /// A relay silent this long gets no new participants, in milliseconds.
    #[arg(
        long,
        env = "CONTROL_PLANE_RELAY_STALE_AFTER_MS",
        default_value_t = 5000
    )]
    pub relay_stale_after_ms: u64,

    /// At most this many of one meeting's participants on one relay before new joiners
    /// spill to the next least-loaded relay (the relays share the meeting over the mesh).
    /// Unset: a meeting fills a relay to its capacity first. A host takes more than its
    /// share only when no other relay has room.
    #[arg(long, env = "CONTROL_PLANE_MEETING_SHARE_PER_RELAY")]
    pub meeting_share_per_relay: Option<u32>,

    /// Participant limit of meetings created without one.
    #[arg(
        long,
        env = "CONTROL_PLANE_DEFAULT_MAX_PARTICIPANTS",
        default_value_t = 100
    )]
    pub default_max_participants: u32,

    /// Highest participant limit a meeting may ask for.
    #[arg(
        long,
        env = "CONTROL_PLANE_MAX_PARTICIPANTS_LIMIT",
        default_value_t = 1000
    )]
    pub max_participants_limit: u32,

    /// Failed logins allowed per username (and per peer, times four) in a window.
    #[arg(long, env = "CONTROL_PLANE_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Length of the failed-login window, in seconds.
    #[arg(long, env = "CONTROL_PLANE_LOGIN_WINDOW_SECS", default_value_t = 60)]
    pub login_window_secs: u64,

    /// Creates this admin when no user exists yet (with `--bootstrap-admin-password`).
    #[arg(long, env = "CONTROL_PLANE_ADMIN_USER", default_value = "admin")]
    pub bootstrap_admin_user: String,

    /// Password of the bootstrap admin.
    #[arg(long, env = "CONTROL_PLANE_ADMIN_PASSWORD", hide_env_values = true)]
    pub bootstrap_admin_password: Option<String>,

    /// API keys to provision at start, as `name:role:key-id:secret` (role: admin, user or
    /// relay), comma separated. Existing ids are left alone.
    #[arg(
        long = "bootstrap-api-key",
        env = "CONTROL_PLANE_BOOTSTRAP_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub bootstrap_api_keys: Vec<String>,

    /// Other origins browsers may call grpc-web from (e.g. `https://admin.example.org`; `*`:
    /// any). The platform's own page is served from the API's origin and needs none; by
    /// default no other origin may call.
    #[arg(long, env = "CONTROL_PLANE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Where to serve `/metrics` (Prometheus) and `/healthz`, apart from the API so that
    /// they are not public behind the gateway. None: not served.
    #[arg(long, env = "CONTROL_PLANE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// The built browser client (`web/dist`), served at `/meeting/<user>/<meeting>` and
    /// `/assets/` beside the API so the page calls grpc-web on its own origin.
    #[arg(long, env = "CONTROL_PLANE_WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,

    /// The address browsers reach this server at (e.g. `https://meet.example.org`): the
    /// OpenID Connect redirect URI is `<public url>/auth/oidc/callback`.
    #[arg(long, env = "CONTROL_PLANE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Sign-in through an OpenID Connect provider.
    #[command(flatten)]
    pub oidc: OidcConfig,
}

/// One OpenID Connect provider people sign in with (off without `--oidc-issuer`). Local
/// accounts keep working beside it.
#[derive(Debug, Clone, Default, Args)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is `<issuer>/.well-known/openid-configuration`).
    #[arg(long = "oidc-issuer", env = "CONTROL_PLANE_OIDC_ISSUER")]
    pub issuer: Option<String>,

    /// This server's client id at the provider.
    #[arg(long = "oidc-client-id", env = "CONTROL_PLANE_OIDC_CLIENT_ID")]
    pub client_id: Option<String>,

    /// Its client secret (from a Secret in Kubernetes); none for a public client.
    #[arg(
        long = "oidc-client-secret",
        env = "CONTROL_PLANE_OIDC_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,

    /// The provider's name on the sign-in button ("Sign in with <name>").
    #[arg(
        long = "oidc-name",
        env = "CONTROL_PLANE_OIDC_NAME",
        default_value = "your organisation"
    )]
    pub name: String,

    /// Only people with a verified email in one of these domains, comma separated; none: anyone
    /// the provider signs in.
    #[arg(
        long = "oidc-allowed-domains",
        env = "CONTROL_PLANE_OIDC_ALLOWED_DOMAINS",
        value_delimiter = ','
    )]
    pub allowed_domains: Vec<String>,

    /// Only members of one of these groups (the `groups` claim), comma separated.
    #[arg(
        long = "oidc-allowed-groups",
        env = "CONTROL_PLANE_OIDC_ALLOWED_GROUPS",
        value_delimiter = ','
    )]
    pub allowed_groups: Vec<String>,

    /// Members of one of these groups are admins and everyone else a user, decided at every
    /// sign-in; without it, people who sign in are users unless an admin says otherwise.
    #[arg(
        long = "oidc-admin-groups",
        env = "CONTROL_PLANE_OIDC_ADMIN_GROUPS",
        value_delimiter = ','
    )]
    pub admin_groups: Vec<String>,
}

/// Why the OpenID Connect settings are not usable.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    /// A needed setting is missing.
    #[error("--oidc-issuer needs {0}")]
    Missing(&'static str),
}

impl ControlPlaneConfig {
    /// The provider's settings, `None` when sign-in through a provider is off.
    pub fn oidc_settings(&self) -> Result<Option<crate::oidc::ProviderSettings>, OidcConfigError> {
        let Some(issuer) = self.oidc.issuer.clone().filter(|issuer| !issuer.is_empty()) else {
            return Ok(None);
        };
        let client_id = self
            .oidc
            .client_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or(OidcConfigError::Missing("--oidc-client-id"))?;
        let public_url = self
            .public_url
            .clone()
            .filter(|url| !url.is_empty())
            .ok_or(OidcConfigError::Missing(
                "--public-url (the redirect URI is made from it)",
            ))?;
        let trimmed = |items: &[String]| -> Vec<String> {
            items
                .iter()
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        };
        Ok(Some(crate::oidc::ProviderSettings {
            id: "oidc".into(),
            name: self.oidc.name.clone(),
            issuer,
            client_id,
            client_secret: self.oidc.client_secret.clone().filter(|s| !s.is_empty()),
            redirect_url: format!("{}/auth/oidc/callback", public_url.trim_end_matches('/')),
            policy: crate::oidc::SignInPolicy {
                allowed_domains: trimmed(&self.oidc.allowed_domains)
                    .into_iter()
                    .map(|domain| domain.to_ascii_lowercase())
                    .collect(),
                allowed_groups: trimmed(&self.oidc.allowed_groups),
                admin_groups: trimmed(&self.oidc.admin_groups),
            },
        }))
    }
}

impl ControlPlaneConfig {
    /// Join token lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs.max(1))
    }

    /// Milliseconds a relay may stay silent and still count as fresh.
    pub fn stale_after_ms(&self) -> i64 {
        i64::try_from(self.relay_stale_after_ms).unwrap_or(i64::MAX / 2)
    }

    /// The configuration with every default, for embedding and tests.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: ControlPlaneConfig,
        }
        use clap::Parser;
        Wrapper::parse_from(["control-plane"]).config
    }
}
