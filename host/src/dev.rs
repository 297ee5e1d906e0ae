//! `hookbox serve --dev`: a working default with nothing on disk.
//!
//! A self-signed certificate generated at start, one tenant `dev` whose
//! secret comes from `HOOKBOX_DEV_SECRET` (or is generated and printed), and
//! the reference login-conflict plugin embedded at build time.

use std::path::PathBuf;

use hyper::header::AUTHORIZATION;

use crate::auth::{Auth, Secret, TenantAuth};
use crate::config::{Config, ConfigError, ServerConfig, TenantConfig, TlsSource};
use crate::plugin::{EngineConfig, Limits, hex};

/// The reference plugin, built from `plugins/login-conflict` by the build script (empty if that failed).
const EMBEDDED_PLUGIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/login_conflict.wasm"));

/// The tenant id `--dev` serves.
pub const DEV_TENANT: &str = "dev";

/// This build has no embedded reference plugin (its build script could not build it).
#[derive(Debug, thiserror::Error)]
#[error(
    "this hookbox binary was built without the reference plugin ({}); \
     install the target with `rustup target add wasm32-wasip2` and rebuild, or pass --plugin FILE",
    env!("HOOKBOX_EMBED_ERROR")
)]
pub struct NotEmbedded;

/// The reference plugin's component bytes, or why it was not embedded.
pub fn reference_plugin() -> Result<&'static [u8], NotEmbedded> {
    if EMBEDDED_PLUGIN.is_empty() {
        return Err(NotEmbedded);
    }
    Ok(EMBEDDED_PLUGIN)
}

/// The development setup.
pub struct Dev {
    /// One tenant, `dev`, on a self-signed certificate.
    pub config: Config,
    /// The secret Okta (or curl) must send in `Authorization`.
    pub secret: String,
    /// True when the secret was generated (so it must be shown to the user).
    pub secret_generated: bool,
    /// The plugin bytes to serve (`--plugin FILE`, else the embedded reference plugin).
    pub plugin: Vec<u8>,
}

/// Builds the dev configuration; `listen` defaults to `127.0.0.1:8443`.
pub fn setup(
    listen: Option<&str>,
    plugin: Option<PathBuf>,
    secret: Option<String>,
) -> Result<Dev, ConfigError> {
    let mut server = ServerConfig::default();
    if let Some(l) = listen {
        server.listen = crate::config::parse_listen(l)?;
    }
    let plugin_bytes = match &plugin {
        Some(path) => std::fs::read(path).map_err(|e| {
            ConfigError::new(format!("--plugin: cannot read {}: {e}", path.display()))
        })?,
        None => reference_plugin()
            .map_err(|e| ConfigError::new(e.to_string()))?
            .to_vec(),
    };
    let (secret, secret_generated) = match secret.filter(|s| !s.is_empty()) {
        Some(s) => (s, false),
        None => (random_secret(), true),
    };
    let auth = Auth::new(AUTHORIZATION, vec![Secret::new(secret.clone())])
        .map_err(|e| ConfigError::new(e.to_string()))?;
    let tenant = TenantConfig {
        id: DEV_TENANT.to_owned(),
        plugin: plugin.unwrap_or_else(|| PathBuf::from("<embedded login-conflict>")),
        auth: TenantAuth::secret(auth),
        limits: Limits::default(),
        settings: Default::default(),
        smoke: None,
    };
    let config = Config {
        server,
        tls: TlsSource::SelfSigned,
        engine: EngineConfig::default(),
        tenants: vec![tenant],
        admin: None,
        secret_files: Vec::new(),
    };
    Ok(Dev {
        config,
        secret,
        secret_generated,
        plugin: plugin_bytes,
    })
}

fn random_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    hex(&bytes)
}
