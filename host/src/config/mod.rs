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

use crate::auth::Auth;
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
}

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
    /// How Okta authenticates to this tenant.
    pub auth: Auth,
    /// What one invocation may use.
    pub limits: Limits,
    /// What `config-get` answers the plugin.
    pub settings: Arc<Settings>,
    /// A request file a new plugin version must answer without error before a reload makes it live.
    pub smoke: Option<PathBuf>,
}

/// Values given on the command line or in `HOOKBOX_*` variables; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
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
