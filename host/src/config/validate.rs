//! Validation: the file as written ([`super::file`]) into the typed
//! [`Config`], once, before anything binds or loads. Every error names the
//! offending key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookbox_store::StoreConfig;

use super::file::{ConfigFile, EventsFile, TenantFile};
use super::{
    Config, ConfigError, DEFAULT_STORE_PATH, EventsConfig, MAX_DEADLINE, Overrides, ServerConfig,
    TenantConfig, TlsSource, err, secrets,
};
use crate::plugin::{
    DEFAULT_REUSE_MAX_REQUESTS, EngineConfig, InstanceMode, Limits, MIB,
    default_cpu_slots_per_tenant,
};

/// The whole file, validated; relative paths are resolved against `base`.
pub(super) fn config(
    file: ConfigFile,
    base: &Path,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut server = ServerConfig::default();
    let listen = overrides.listen.clone().or(file.server.listen);
    if let Some(listen) = listen {
        server.listen = parse_listen(&listen)?;
    }
    if let Some(v) = &file.server.body_limit {
        server.body_limit = parse_size("server.body_limit", v)?;
    }
    if let Some(v) = &file.server.request_timeout {
        server.request_timeout = parse_duration("server.request_timeout", v)?;
    }
    if let Some(v) = &file.server.handshake_timeout {
        server.handshake_timeout = parse_duration("server.handshake_timeout", v)?;
    }
    for (key, value, slot) in [
        (
            "server.header_timeout",
            &file.server.header_timeout,
            &mut server.header_timeout,
        ),
        (
            "server.idle_timeout",
            &file.server.idle_timeout,
            &mut server.idle_timeout,
        ),
        (
            "server.write_timeout",
            &file.server.write_timeout,
            &mut server.write_timeout,
        ),
    ] {
        if let Some(v) = value {
            *slot = parse_duration(key, v)?;
        }
    }
    for (key, d) in [
        ("server.request_timeout", server.request_timeout),
        ("server.handshake_timeout", server.handshake_timeout),
        ("server.header_timeout", server.header_timeout),
        ("server.idle_timeout", server.idle_timeout),
        ("server.write_timeout", server.write_timeout),
    ] {
        // Zero would cut every connection at once: there is no "off".
        if d.is_zero() {
            return err(format!("{key} must be above 0"));
        }
    }
    if let Some(v) = &file.server.max_header_size {
        let n = parse_size("server.max_header_size", v)?;
        // hyper reads a head into a buffer of at least 8 KiB; a limit below
        // 1 KiB would refuse ordinary requests, above 1 MiB it protects nothing.
        if !(1024..=MIB).contains(&n) {
            return err("server.max_header_size must be between 1KiB and 1MiB");
        }
        server.max_header_size = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = file.server.max_connections {
        if n == 0 {
            return err("server.max_connections must be at least 1");
        }
        server.max_connections = n;
    }
    server.watch = file.server.watch.unwrap_or(false);
    if let Some(ops) = overrides.ops_listen.clone().or(file.server.ops_listen) {
        let ops = parse_listen(&ops)?;
        if ops == server.listen && ops.port() != 0 {
            return err(format!(
                "server.ops_listen ({ops}) must differ from server.listen"
            ));
        }
        server.ops_listen = Some(ops);
    }
    if let Some(v) = &file.server.shutdown_delay {
        server.shutdown_delay = parse_duration("server.shutdown_delay", v)?;
    }
    if let Some(v) = &file.server.shutdown_grace {
        server.shutdown_grace = parse_duration("server.shutdown_grace", v)?;
    }

    let tls = match (overrides.cert.clone(), overrides.key.clone(), file.tls) {
        (Some(cert), Some(key), _) => TlsSource::Files { cert, key },
        (cert, key, Some(tls)) => TlsSource::Files {
            cert: cert.unwrap_or_else(|| base.join(tls.cert)),
            key: key.unwrap_or_else(|| base.join(tls.key)),
        },
        _ => return err("[tls] is required: cert and key (PEM files)"),
    };

    let mut engine = EngineConfig::default();
    if let Some(n) = file.engine.max_instances {
        if n == 0 {
            return err("engine.max_instances must be at least 1");
        }
        engine.max_instances = n;
    }
    if let Some(v) = &file.engine.max_memory {
        engine.max_memory = parse_size("engine.max_memory", v)?;
    }
    engine.cache_dir = file.engine.cache_dir.map(|p| base.join(p));
    if let Some(v) = &file.engine.cache_max_size {
        engine.cache_max_size = parse_size("engine.cache_max_size", v)?;
    }
    // Keep-resident sizes are per slot: one larger than a slot could ever
    // use is a typo, not a wish (and 1GiB per slot would be a memory leak).
    if let Some(v) = &file.engine.memory_keep_resident {
        let n = parse_size("engine.memory_keep_resident", v)?;
        if n > engine.max_memory {
            return err(format!(
                "engine.memory_keep_resident ({v}) is larger than engine.max_memory"
            ));
        }
        engine.memory_keep_resident = n;
    }
    if let Some(v) = &file.engine.table_keep_resident {
        let n = parse_size("engine.table_keep_resident", v)?;
        if n > 16 * MIB {
            return err(format!(
                "engine.table_keep_resident ({v}) is larger than 16MiB"
            ));
        }
        engine.table_keep_resident = n;
    }
    if let Some(n) = file.engine.max_unused_warm_slots {
        if n > engine.max_instances {
            return err("engine.max_unused_warm_slots is larger than engine.max_instances");
        }
        engine.max_unused_warm_slots = n;
    }
    if let Some(v) = &file.engine.idle_resident_limit {
        engine.idle_resident_limit = match v.trim() {
            "off" => None,
            _ => Some(parse_size(
                "engine.idle_resident_limit (a size, or \"off\")",
                v,
            )?),
        };
    }
    if let Some(v) = &file.engine.idle_resident_grace {
        let d = parse_duration("engine.idle_resident_grace", v)?;
        if d.is_zero() {
            return err("engine.idle_resident_grace must be more than 0s");
        }
        engine.idle_resident_grace = d;
    }
    if let Some(n) = file.engine.cpu_slots {
        if n == 0 {
            return err("engine.cpu_slots must be at least 1");
        }
        engine.cpu_slots = n;
        engine.cpu_slots_per_tenant = default_cpu_slots_per_tenant(n);
    }
    if let Some(n) = file.engine.cpu_slots_per_tenant {
        if n == 0 || n > engine.cpu_slots {
            return err(format!(
                "engine.cpu_slots_per_tenant must be between 1 and engine.cpu_slots ({})",
                engine.cpu_slots
            ));
        }
        engine.cpu_slots_per_tenant = n;
    }
    if let Some(p) = file.engine.heavy_priority {
        engine.heavy_priority = p;
    }

    if file.tenants.is_empty() {
        return err("no [[tenants]]: declare at least one");
    }
    let mut seen = BTreeSet::new();
    let mut tenants = Vec::with_capacity(file.tenants.len());
    let mut secret_files = Vec::new();
    for t in file.tenants {
        let tenant = validate_tenant(t, base, &engine, &mut secret_files)?;
        if !seen.insert(tenant.id.clone()) {
            return err(format!("tenant id '{}' is declared twice", tenant.id));
        }
        engine.fuel |= tenant.limits.fuel.is_some();
        tenants.push(tenant);
    }
    let admin = match file.admin {
        None => None,
        Some(a) => Some(secrets::auth("admin", a, base, &mut secret_files)?),
    };
    let store = store(file.store, base)?;
    Ok(Config {
        server,
        tls,
        engine,
        store,
        tenants,
        admin,
        secret_files,
    })
}

/// `[store]`, with the default and relative paths resolved against `base`.
/// What only opening can tell (a Redis URL, a writable directory) is
/// checked when the store is opened at start, before anything binds.
/// `backend` defaults to `"embedded"` and the embedded store's `path` to
/// [`DEFAULT_STORE_PATH`], as with no `[store]` at all: `[store]` with only
/// `answer_ttl` changes only that.
pub(super) fn store(file: Option<toml::Table>, base: &Path) -> Result<StoreConfig, ConfigError> {
    let file = match file {
        None => None,
        Some(mut table) => {
            let backend = table.entry("backend").or_insert_with(|| "embedded".into());
            if backend.as_str() == Some("embedded") {
                table
                    .entry("path")
                    .or_insert_with(|| DEFAULT_STORE_PATH.into());
            }
            let parsed: StoreConfig = toml::Value::Table(table)
                .try_into()
                .map_err(|e| ConfigError::new(format!("[store]: {e}")))?;
            Some(parsed)
        }
    };
    Ok(match file {
        None => StoreConfig::embedded(base.join(DEFAULT_STORE_PATH)),
        Some(StoreConfig::Embedded { path, answer_ttl }) => {
            if path.as_os_str().is_empty() {
                return err("store.path must name the embedded store's file");
            }
            StoreConfig::Embedded {
                path: base.join(path),
                answer_ttl,
            }
        }
        Some(redis @ StoreConfig::Redis { .. }) => redis,
    })
    .and_then(|store| {
        if store.answer_ttl() > MAX_ANSWER_TTL {
            return err("store.answer_ttl must be at most 365 days");
        }
        Ok(store)
    })
}

/// The store keeps answers at most a year (`hookbox_store` refuses longer).
const MAX_ANSWER_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

fn validate_tenant(
    t: TenantFile,
    base: &Path,
    engine: &EngineConfig,
    secret_files: &mut Vec<PathBuf>,
) -> Result<TenantConfig, ConfigError> {
    validate_tenant_id(&t.id)?;
    let key = |k: &str| format!("tenants.{}.{k}", t.id);

    let mut limits = Limits::default();
    if let Some(v) = &t.limits.memory {
        limits.memory = parse_size(&key("limits.memory"), v)?;
    }
    if limits.memory < MIB || limits.memory > engine.max_memory {
        return err(format!(
            "{} must be between 1MiB and engine.max_memory ({} bytes)",
            key("limits.memory"),
            engine.max_memory
        ));
    }
    if let Some(v) = &t.limits.deadline {
        limits.deadline = parse_duration(&key("limits.deadline"), v)?;
    }
    if limits.deadline.is_zero() || limits.deadline > MAX_DEADLINE {
        return err(format!(
            "{} must be above 0 and at most {}ms (Okta gives the whole call 3 s)",
            key("limits.deadline"),
            MAX_DEADLINE.as_millis()
        ));
    }
    if let Some(fuel) = t.limits.fuel {
        if fuel == 0 {
            return err(format!("{} must be above 0", key("limits.fuel")));
        }
        limits.fuel = Some(fuel);
    }
    if let Some(n) = t.limits.max_concurrency {
        if n == 0 {
            return err(format!(
                "{} must be at least 1",
                key("limits.max_concurrency")
            ));
        }
        limits.max_concurrency = n;
    }
    if let Some(v) = &t.limits.log_volume {
        limits.log_volume = parse_size(&key("limits.log_volume"), v)?;
    }
    if let Some(v) = &t.limits.log_window {
        limits.log_window = parse_duration(&key("limits.log_window"), v)?;
        if limits.log_window.is_zero() {
            return err(format!("{} must be above 0", key("limits.log_window")));
        }
    }
    limits.instance_mode = match (
        t.limits.instance_mode.as_deref(),
        t.limits.reuse_max_requests,
    ) {
        (None | Some("fresh"), None) => InstanceMode::Fresh,
        (None | Some("fresh"), Some(_)) => {
            return err(format!(
                "{} only applies with {} = \"reuse\"",
                key("limits.reuse_max_requests"),
                key("limits.instance_mode")
            ));
        }
        (Some("reuse"), Some(0)) => {
            return err(format!(
                "{} must be at least 1",
                key("limits.reuse_max_requests")
            ));
        }
        (Some("reuse"), n) => InstanceMode::Reuse {
            max_requests: n.unwrap_or(DEFAULT_REUSE_MAX_REQUESTS),
        },
        (Some(other), _) => {
            return err(format!(
                "{}: '{other}' is not an instance mode (\"fresh\" or \"reuse\")",
                key("limits.instance_mode")
            ));
        }
    };

    let auth = secrets::tenant_auth(&key("auth"), t.auth, base, secret_files)?;
    let events = events(t.events.unwrap_or_default(), &key)?;
    let directory = match t.directory {
        None => None,
        Some(d) => Some(directory(d, base, &key, secret_files)?),
    };

    Ok(TenantConfig {
        id: t.id,
        plugin: base.join(t.plugin),
        auth,
        limits,
        settings: Arc::new(t.settings),
        smoke: t.smoke.map(|p| base.join(p)),
        events,
        directory,
    })
}

/// A tenant's `directory` table: relative `token_file` and `ca_file` resolved
/// against `base` like every other path, every value checked and the token
/// read (`hookbox-directory`'s own validation, whose errors never contain
/// it). The token file is watched like the auth secrets, so rotating it
/// reloads the tenant.
fn directory(
    mut file: hookbox_directory::DirectoryConfig,
    base: &Path,
    key: &dyn Fn(&str) -> String,
    secret_files: &mut Vec<PathBuf>,
) -> Result<hookbox_directory::DirectorySettings, ConfigError> {
    file.token_file = file.token_file.map(|p| base.join(p));
    file.ca_file = file.ca_file.map(|p| base.join(p));
    let settings = file
        .validate()
        .map_err(|e| ConfigError::new(key(&e.to_string())))?;
    if let Some(path) = file.token_file {
        secret_files.push(path);
    }
    Ok(settings)
}

/// A tenant's `events` table; `key` names a key of this tenant.
fn events(file: EventsFile, key: &dyn Fn(&str) -> String) -> Result<EventsConfig, ConfigError> {
    let mut events = EventsConfig::default();
    if let Some(enabled) = file.enabled {
        events.enabled = enabled;
    }
    if let Some(types) = file.types {
        if types.is_empty() {
            return err(format!(
                "{} must name at least one event type (or set {} = false)",
                key("events.types"),
                key("events.enabled")
            ));
        }
        if let Some(bad) = types.iter().find(|t| t.is_empty() || t.len() > 256) {
            return err(format!(
                "{}: '{bad}' is not an event type (1-256 characters)",
                key("events.types")
            ));
        }
        events.types = types;
    }
    if let Some(n) = file.max_queued {
        if n == 0 || n > crate::events::MAX_QUEUED {
            return err(format!(
                "{} must be between 1 and {}",
                key("events.max_queued"),
                crate::events::MAX_QUEUED
            ));
        }
        events.max_queued = n;
    }
    if let Some(n) = file.max_attempts {
        if n == 0 || n > crate::events::MAX_ATTEMPTS {
            return err(format!(
                "{} must be between 1 and {}",
                key("events.max_attempts"),
                crate::events::MAX_ATTEMPTS
            ));
        }
        events.max_attempts = n;
    }
    if let Some(v) = &file.retry_backoff {
        let d = parse_duration(&key("events.retry_backoff"), v)?;
        if d.is_zero() || d > crate::events::MAX_BACKOFF {
            return err(format!(
                "{} must be above 0 and at most {}s",
                key("events.retry_backoff"),
                crate::events::MAX_BACKOFF.as_secs()
            ));
        }
        events.retry_backoff = d;
    }
    Ok(events)
}

/// Tenant ids appear in URLs and logs: keep them to a safe, unambiguous alphabet.
pub fn validate_tenant_id(id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        err(format!(
            "tenant id '{id}' must be 1-64 characters of a-z, 0-9, '-', '_'"
        ))
    }
}

pub fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::new(format!(
            "listen address '{s}' is not IP:PORT (e.g. 127.0.0.1:8443)"
        ))
    })
}

/// Parses `512`, `64KiB`, `32MiB`, `1GiB` (also `KB`/`MB`/`GB`, taken as powers of 1000).
pub fn parse_size(key: &str, s: &str) -> Result<u64, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return err(format!("{key}: '{s}' is not a size (e.g. 32MiB, 512KiB)")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| ConfigError::new(format!("{key}: '{s}' is not a size (e.g. 32MiB, 512KiB)")))
}

/// Parses `500ms`, `2s`, `1m`.
pub fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        ConfigError::new(format!("{key}: '{s}' is not a duration (e.g. 500ms, 2s)"))
    })?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => err(format!("{key}: '{s}' is not a duration (e.g. 500ms, 2s)")),
    }
}
