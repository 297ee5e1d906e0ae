//! `hookbox serve --dev`: a working default with nothing on disk.
//!
//! A self-signed certificate generated at start, one tenant `dev` whose
//! secret comes from `HOOKBOX_DEV_SECRET` (or is generated and printed),
//! the reference login-conflict plugin embedded at build time, and an
//! embedded claim store in a data directory: `--data-dir DIR` (kept across
//! runs: the same claims and answers next time), else a new directory under
//! the system's temporary directory per run (`hookbox-dev-XXXXXX`, left in
//! place when the server stops, so it can be inspected). Either way the
//! server prints it at start.

use std::path::{Path, PathBuf};

use hyper::header::AUTHORIZATION;

use crate::auth::{Auth, Secret, TenantAuth};
use hookbox_store::StoreConfig;

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
    /// The data directory (the embedded store is `store.redb` in it).
    pub data_dir: PathBuf,
}

/// The embedded store's file in a dev data directory.
pub fn store_file(data_dir: &Path) -> PathBuf {
    data_dir.join("store.redb")
}

/// Builds the dev configuration; `listen` defaults to `127.0.0.1:8443`;
/// `data_dir` defaults to a new temporary directory (created here).
pub fn setup(
    listen: Option<&str>,
    plugin: Option<PathBuf>,
    secret: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<Dev, ConfigError> {
    let mut server = ServerConfig {
        // On a developer's machine nothing routes traffic away first: Ctrl-C stops at once
        // (requests in flight still get shutdown_grace).
        shutdown_delay: std::time::Duration::ZERO,
        ..ServerConfig::default()
    };
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
        events: Default::default(),
    };
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("hookbox-dev-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(|e| {
                ConfigError::new(format!(
                    "cannot create a data directory for the dev store (pass --data-dir): {e}"
                ))
            })?,
    };
    let config = Config {
        server,
        tls: TlsSource::SelfSigned,
        engine: EngineConfig::default(),
        store: StoreConfig::embedded(store_file(&data_dir)),
        tenants: vec![tenant],
        admin: None,
        secret_files: Vec::new(),
    };
    Ok(Dev {
        config,
        secret,
        secret_generated,
        plugin: plugin_bytes,
        data_dir,
    })
}

fn random_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    hex(&bytes)
}
