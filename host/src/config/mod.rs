//! The configuration: what hookbox needs to start, validated.
//!
//! Three parts, one job each: [`mod@file`] mirrors the TOML file exactly,
//! `validate` turns it into the typed domain values below (durations, byte
//! sizes, absolute paths) once, before anything binds or loads, and `secrets`
//! reads the secrets it names from the environment and from files. The
//! plugin's own domain types ([`Limits`], [`EngineConfig`]) live in
//! [`crate::plugin`]; this module only fills them in. Every error names the
//! offending key.
//!
//! [`Limits`]: crate::plugin::Limits
//! [`EngineConfig`]: crate::plugin::EngineConfig

pub mod file;
mod secrets;
#[cfg(test)]
mod tests;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookbox_store::StoreConfig;

use crate::auth::{Auth, TenantAuth};
use crate::plugin::{EngineConfig, Limits, MIB, Settings};

pub use validate::{parse_duration, parse_listen, parse_size, validate_tenant_id};

/// Okta waits at most 3 s for the whole round trip; a plugin deadline must
/// leave room for TLS, decoding and the network.
pub const MAX_DEADLINE: Duration = Duration::from_millis(2500);

/// Default size limit of a request body (Okta's requests are a few KB).
pub const DEFAULT_BODY_LIMIT: u64 = MIB;

/// Default limit of a request head, in both HTTP versions (HTTP/2's own
/// default in hyper; Okta's headers are well under 1 KiB).
pub const DEFAULT_MAX_HEADER_SIZE: u32 = 16 * 1024;

/// Without `[store]`, the embedded store is this file, relative to the
/// configuration file's directory (like every relative path in it):
/// `hookbox-data/store.redb` beside `hookbox.toml`. Its directory is created
/// with mode 0700 (the store holds logins).
pub const DEFAULT_STORE_PATH: &str = "hookbox-data/store.redb";

/// A configuration error: a sentence naming the key and what is wrong.
/// Refused before anything binds: the process exits with [`ConfigError::EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// Exit code for a configuration or usage error (BSD `EX_USAGE`).
    pub const EXIT_CODE: u8 = 64;

    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::new(msg))
}

/// Everything hookbox needs to start, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`: fixed at start.
    pub server: ServerConfig,
    /// `[tls]`: fixed at start.
    pub tls: TlsSource,
    /// `[engine]`: fixed at start.
    pub engine: EngineConfig,
    /// `[store]`: the claim store (claims, idempotent answers); fixed at
    /// start. Default: embedded, at [`DEFAULT_STORE_PATH`]; a relative
    /// embedded `path` is resolved against the config file's directory.
    pub store: StoreConfig,
    /// `[[tenants]]`, in file order; ids are unique.
    pub tenants: Vec<TenantConfig>,
    /// `POST /admin/reload`'s credentials; `None` (the default) means the endpoint does not exist.
    pub admin: Option<Auth>,
    /// Every secret file read (tenants' and admin's), absolute: with
    /// `server.watch`, rotating a secret on disk reloads like a new plugin does.
    pub secret_files: Vec<PathBuf>,
}

/// `[server]`: the listener and its budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger → 413.
    pub body_limit: u64,
    /// Budget for reading one request's body and answering it.
    pub request_timeout: Duration,
    /// Budget for one TLS handshake.
    pub handshake_timeout: Duration,
    /// Budget for a request's head: from the end of the handshake to a new
    /// connection's first complete request, and on an HTTP/1.1 keep-alive
    /// connection from the first byte of the next request to its last header.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in flight
    /// (HTTP/1.1 keep-alive and HTTP/2 alike, PINGs or not).
    pub idle_timeout: Duration,
    /// How long a write to the client may make no progress (a client that
    /// does not read its answers) before the connection is closed.
    pub write_timeout: Duration,
    /// Largest request head: the request line and headers in HTTP/1.1 (431
    /// beyond), the header list in HTTP/2 (as HTTP/2 counts it).
    pub max_header_size: u32,
    /// Connections served at once; at the cap, the connection idle the
    /// longest (no request in flight) is closed to make room, and when every
    /// connection has a request in flight the accept loop waits.
    pub max_connections: usize,
    /// Reload when the config file or a plugin file changes on disk.
    pub watch: bool,
    /// A second, plain-HTTP listener serving only `/healthz`, `/readyz` and
    /// `/metrics` (for probes and Prometheus); `None`: those are served on
    /// `listen` only.
    pub ops_listen: Option<SocketAddr>,
    /// After the first SIGTERM or SIGINT: how long `/readyz` fails while the
    /// listeners keep serving, so load balancers stop sending traffic before
    /// connections are refused.
    pub shutdown_delay: Duration,
    /// Then, after the listeners stop accepting: how long requests in flight
    /// get to finish before the process exits anyway.
    pub shutdown_grace: Duration,
}

/// `server.shutdown_delay`'s default: long enough for a Kubernetes endpoint
/// removal to reach kube-proxy and most load balancers.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(5);

/// `server.shutdown_grace`'s default: Okta waits 3 s for an answer, so a
/// request still running after this will not be waited for anyway.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_millis(2800),
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(5),
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_connections: 4096,
            watch: false,
            ops_listen: None,
            shutdown_delay: DEFAULT_SHUTDOWN_DELAY,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsSource {
    /// PEM files.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// A self-signed certificate generated at start (`--dev` only).
    SelfSigned,
}

/// One `[[tenants]]` entry: the one source of truth of a tenant's identity,
/// auth, plugin file, limits and settings (a running [`crate::tenant::Tenant`]
/// keeps it whole, and a reload compares against it).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// The id in `/hooks/{id}/import`.
    pub id: String,
    /// The component file, absolute.
    pub plugin: PathBuf,
    /// How Okta authenticates to this tenant (header secrets, OAuth, or both).
    pub auth: TenantAuth,
    /// What one invocation may use.
    pub limits: Limits,
    /// What `config-get` answers the plugin.
    pub settings: Arc<Settings>,
    /// A request file a new plugin version must answer without error before a reload makes it live.
    pub smoke: Option<PathBuf>,
    /// Okta event hooks: which events reach the plugin's event handler.
    pub events: EventsConfig,
}

/// A tenant's `events`: its event hook (`/hooks/{id}/events`), served when
/// it is enabled and the tenant's plugin exports the event handler.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// `false`: the event routes answer 404 even if the plugin has a handler.
    pub enabled: bool,
    /// The event types queued for the handler (others are acknowledged and
    /// dropped); default [`crate::events::SYNC_EVENT_TYPE`].
    pub types: Vec<String>,
    /// Events queued for the tenant at most; a delivery that would exceed it
    /// is refused whole with 503 (Okta retries once).
    pub max_queued: usize,
    /// Handling attempts (the first included) before an event is dead.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled at each later one (capped at
    /// [`crate::events::MAX_BACKOFF`]).
    pub retry_backoff: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            types: vec![crate::events::SYNC_EVENT_TYPE.to_owned()],
            max_queued: 10_000,
            max_attempts: 5,
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// Values given on the command line or in `HOOKBOX_*` variables; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--ops-listen`.
    pub ops_listen: Option<String>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
}

/// What the operator tools (`hookbox claims`, `hookbox run --config`) need of
/// a configuration file: `[store]` and the tenant ids, validated like the
/// server validates them, without reading any secret or TLS file.
#[derive(Debug, Clone)]
pub struct StoreSection {
    /// `[store]`, default and relative path resolved.
    pub store: StoreConfig,
    /// The ids of `[[tenants]]`, in file order.
    pub tenants: Vec<String>,
}

impl StoreSection {
    /// Reads `[store]` and the tenant ids of a configuration file.
    pub fn load(path: &Path) -> Result<StoreSection, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let in_file = |e: ConfigError| ConfigError::new(format!("{}: {e}", path.display()));
        let file: file::ConfigFile =
            toml::from_str(&text).map_err(|e| in_file(ConfigError::new(e.to_string())))?;
        let tenants = file.tenants.into_iter().map(|t| t.id).collect();
        let store = validate::store(file.store, base).map_err(in_file)?;
        Ok(StoreSection { store, tenants })
    }

    /// `id` if it is one of the file's tenants.
    pub fn tenant(&self, id: &str) -> Result<(), ConfigError> {
        if self.tenants.iter().any(|t| t == id) {
            return Ok(());
        }
        err(format!(
            "--tenant: no tenant '{id}' in the configuration (its tenants: {})",
            if self.tenants.is_empty() {
                "none".to_owned()
            } else {
                self.tenants.join(", ")
            }
        ))
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, overrides)
            .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))
    }

    /// Parses and validates configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file: file::ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::new(e.to_string()))?;
        validate::config(file, base, overrides)
    }
}
