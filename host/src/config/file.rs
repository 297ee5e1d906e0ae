//! The configuration file as written: structs that mirror the TOML exactly.
//!
//! `deny_unknown_fields` everywhere: a misspelt key is an error, never
//! silently ignored. Values are kept as written (strings for sizes and
//! durations); `validate` turns them into typed values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerFile,
    pub tls: Option<TlsFile>,
    #[serde(default)]
    pub engine: EngineFile,
    #[serde(default)]
    pub tenants: Vec<TenantFile>,
    /// `[admin]`: the reload endpoint, off unless given; same shape as a tenant's `auth`.
    pub admin: Option<AuthFile>,
    /// `[store]`: the claim store, as `hookbox-store` reads it (`backend =
    /// "embedded" | "redis"`, and that backend's keys; unknown keys refused),
    /// once the validator has filled in the defaults (`backend`, `path`).
    pub store: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub body_limit: Option<String>,
    pub request_timeout: Option<String>,
    pub handshake_timeout: Option<String>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub max_header_size: Option<String>,
    pub max_connections: Option<usize>,
    pub watch: Option<bool>,
    /// Plain-HTTP address of `/healthz`, `/readyz`, `/metrics`.
    pub ops_listen: Option<String>,
    pub shutdown_delay: Option<String>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    pub max_instances: Option<u32>,
    pub max_memory: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub cache_max_size: Option<String>,
    pub memory_keep_resident: Option<String>,
    pub table_keep_resident: Option<String>,
    pub max_unused_warm_slots: Option<u32>,
    pub idle_resident_limit: Option<String>,
    pub idle_resident_grace: Option<String>,
    pub cpu_slots: Option<u32>,
    pub cpu_slots_per_tenant: Option<u32>,
    pub heavy_priority: Option<crate::plugin::HeavyPriority>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub id: String,
    pub plugin: PathBuf,
    pub auth: AuthFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// A request (Okta's JSON) a new version of the plugin must answer without error before it goes live.
    pub smoke: Option<PathBuf>,
    /// Okta event hooks: which events reach the plugin's event handler, and how they are retried.
    pub events: Option<EventsFile>,
    /// The tenant's Okta directory (`directory.find-user`), as `hookbox-directory` reads it
    /// (`url`, `token_env` or `token_file`, `ca_file`, cache and rate keys; unknown keys refused).
    pub directory: Option<hookbox_directory::DirectoryConfig>,
}

/// A tenant's `events` table (all keys optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    /// `false` turns the tenant's event hook off (its routes answer 404).
    pub enabled: Option<bool>,
    /// Event types handed to the handler; others are acknowledged and dropped.
    pub types: Option<Vec<String>>,
    /// Events queued for the tenant at most; a delivery beyond it gets 503.
    pub max_queued: Option<usize>,
    /// Handling attempts before an event is dead.
    pub max_attempts: Option<u32>,
    /// Wait before the first retry; doubled at each later one.
    pub retry_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub header: Option<String>,
    #[serde(default)]
    pub secrets_env: Vec<String>,
    #[serde(default)]
    pub secrets_file: Vec<PathBuf>,
    /// OAuth 2.0 (tenants only; `[admin]` refuses it).
    pub oauth: Option<hookbox_oauth::OAuthConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub memory: Option<String>,
    pub deadline: Option<String>,
    pub fuel: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// `"fresh"` (default) or `"reuse"`: see [`crate::plugin::InstanceMode`].
    pub instance_mode: Option<String>,
    /// In `reuse` mode, requests one instance serves before it is dropped.
    pub reuse_max_requests: Option<u32>,
    /// Plugin log bytes per `log_window` (e.g. `"256KiB"`).
    pub log_volume: Option<String>,
    /// The window `log_volume` is counted over (e.g. `"10s"`).
    pub log_window: Option<String>,
}
