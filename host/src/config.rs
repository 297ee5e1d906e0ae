//! The configuration file and its validation.
//!
//! The TOML file is parsed into `*File` structs that mirror it exactly
//! (`deny_unknown_fields`: a misspelt key is an error, never silently ignored),
//! then validated once into [`Config`], whose values are typed (durations,
//! byte sizes, absolute paths, resolved secrets). Nothing binds or loads until
//! validation succeeded; every error names the offending key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{Auth, Secret};

/// Okta waits at most 3 s for the whole round trip; a plugin deadline must
/// leave room for TLS, decoding and the network.
pub const MAX_DEADLINE: Duration = Duration::from_millis(2500);

/// Default wall-clock budget of one plugin invocation.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(500);

/// Default linear-memory limit of one plugin instance.
pub const DEFAULT_MEMORY: u64 = 32 * MIB;

/// Default size limit of a request body (Okta's requests are a few KB).
pub const DEFAULT_BODY_LIMIT: u64 = MIB;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// A configuration error: a sentence naming the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

// ---------------------------------------------------------------------------
// The file, as written.

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub body_limit: Option<String>,
    pub request_timeout: Option<String>,
    pub handshake_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub watch: Option<bool>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub header: Option<String>,
    #[serde(default)]
    pub secrets_env: Vec<String>,
    #[serde(default)]
    pub secrets_file: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub memory: Option<String>,
    pub deadline: Option<String>,
    pub fuel: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// `"fresh"` (default) or `"reuse"`: see [`InstanceMode`].
    pub instance_mode: Option<String>,
    /// In `reuse` mode, requests one instance serves before it is dropped.
    pub reuse_max_requests: Option<u32>,
}

// ---------------------------------------------------------------------------
// The validated configuration.

/// Everything hookbox needs to start, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsSource,
    pub engine: EngineConfig,
    pub tenants: Vec<TenantConfig>,
    /// `POST /admin/reload`'s credentials; `None` (the default) means the endpoint does not exist.
    pub admin: Option<Auth>,
    /// Every secret file read (tenants' and admin's), absolute: with
    /// `server.watch`, rotating a secret on disk reloads like a new plugin does.
    pub secret_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest accepted request body; larger → 413.
    pub body_limit: u64,
    /// Budget for reading one request's body and answering it.
    pub request_timeout: Duration,
    /// Budget for one TLS handshake.
    pub handshake_timeout: Duration,
    /// Connections served at once; the accept loop waits beyond it.
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
            max_connections: 4096,
            watch: false,
        }
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsSource {
    /// PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate generated at start (`--dev` only).
    SelfSigned,
}

/// Engine-wide sizing of the instance pool (shared by all tenants).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Plugin instances alive at once across all tenants.
    pub max_instances: u32,
    /// Upper bound of any tenant's memory limit (sizes the pool's slots).
    pub max_memory: u64,
    /// Whether any tenant meters fuel (fuel metering is an engine-wide setting).
    pub fuel: bool,
    /// Where compiled plugins are cached (`None`: every start compiles).
    pub cache_dir: Option<PathBuf>,
    /// What the cache may hold; past it the least recently used files go.
    pub cache_max_size: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 256,
            max_memory: 256 * MIB,
            fuel: false,
            cache_dir: None,
            cache_max_size: GIB,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    pub id: String,
    pub plugin: PathBuf,
    pub auth: Auth,
    pub limits: Limits,
    pub settings: BTreeMap<String, String>,
    /// A request file a new plugin version must answer without error before a reload makes it live.
    pub smoke: Option<PathBuf>,
}

/// What one invocation of a tenant's plugin may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory: u64,
    pub deadline: Duration,
    pub fuel: Option<u64>,
    /// Invocations of this tenant's plugin in flight at once; beyond → 503.
    pub max_concurrency: u32,
    /// Whether a request gets a new instance or may reuse one of this tenant's warm ones.
    pub instance_mode: InstanceMode,
}

/// Default of `limits.reuse_max_requests`: requests one reused instance serves before it is dropped.
pub const DEFAULT_REUSE_MAX_REQUESTS: u32 = 1000;

/// How a tenant's requests get their plugin instance (`limits.instance_mode`).
/// The isolation each gives is documented on [`crate::plugin::Instances`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceMode {
    /// A new instance per request, dropped when it ends: nothing survives between requests.
    #[default]
    Fresh,
    /// Warm instances of this tenant are kept and reused, each for at most
    /// `max_requests` requests, and only while every call on it succeeded.
    Reuse { max_requests: u32 },
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            deadline: DEFAULT_DEADLINE,
            fuel: None,
            max_concurrency: 64,
            instance_mode: InstanceMode::Fresh,
        }
    }
}

/// Values given on the command line or in `HOOKBOX_*` variables; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, overrides)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and validates configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        Config::validate(file, base, overrides)
    }

    fn validate(
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
        if let Some(n) = file.server.max_connections {
            if n == 0 {
                return err("server.max_connections must be at least 1");
            }
            server.max_connections = n;
        }
        server.watch = file.server.watch.unwrap_or(false);

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
            Some(a) => Some(resolve_auth(
                "admin",
                a.header,
                &a.secrets_env,
                &a.secrets_file,
                base,
                &mut secret_files,
            )?),
        };
        Ok(Config {
            server,
            tls,
            engine,
            tenants,
            admin,
            secret_files,
        })
    }
}

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

    let auth = resolve_auth(
        &key("auth"),
        t.auth.header,
        &t.auth.secrets_env,
        &t.auth.secrets_file,
        base,
        secret_files,
    )?;

    Ok(TenantConfig {
        id: t.id,
        plugin: base.join(t.plugin),
        auth,
        limits,
        settings: t.settings,
        smoke: t.smoke.map(|p| base.join(p)),
    })
}

/// A header name and its secrets (from the environment and from files); `key`
/// prefixes errors. The files read are added to `files_read`.
fn resolve_auth(
    key: &str,
    header: Option<String>,
    secrets_env: &[String],
    secrets_file: &[PathBuf],
    base: &Path,
    files_read: &mut Vec<PathBuf>,
) -> Result<Auth, ConfigError> {
    let header = header.unwrap_or_else(|| "Authorization".to_owned());
    if hyper::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
        return err(format!(
            "{key}.header: '{header}' is not a valid header name"
        ));
    }
    let mut secrets = Vec::new();
    for var in secrets_env {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => secrets.push(Secret::new(v)),
            _ => {
                return err(format!(
                    "{key}.secrets_env: environment variable {var} is unset or empty"
                ));
            }
        }
    }
    for path in secrets_file {
        let path = base.join(path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError(format!(
                "{key}.secrets_file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        // A trailing newline is an artefact of how secret files are written, not part of the secret.
        let v = text.trim_end_matches(['\r', '\n']);
        if v.is_empty() {
            return err(format!("{key}.secrets_file: {} is empty", path.display()));
        }
        secrets.push(Secret::new(v.to_owned()));
        files_read.push(path);
    }
    if secrets.is_empty() {
        return err(format!(
            "{key}: give at least one secret (secrets_env or secrets_file); hookbox never serves without auth"
        ));
    }
    Auth::new(&header, secrets).map_err(|e| ConfigError(format!("{key}: {e}")))
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
        ConfigError(format!(
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
        .ok_or_else(|| ConfigError(format!("{key}: '{s}' is not a size (e.g. 32MiB, 512KiB)")))
}

/// Parses `500ms`, `2s`, `1m`.
pub fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError(format!("{key}: '{s}' is not a duration (e.g. 500ms, 2s)")))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => err(format!("{key}: '{s}' is not a duration (e.g. 500ms, 2s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/hookbox"), &Overrides::default())
    }

    const MINIMAL: &str = r#"
        [tls]
        cert = "cert.pem"
        key = "key.pem"
        [[tenants]]
        id = "acme"
        plugin = "p.wasm"
        auth = { secrets_file = ["SECRET_FILE"] }
    "#;

    /// The minimal config, with its secret in a real file (tests never mutate the environment).
    fn minimal() -> String {
        // One file per call: tests run in parallel, and rewriting a shared file races with readers.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "hookbox-config-test-secret-{}-{n}",
            std::process::id()
        ));
        std::fs::write(&path, "s3cret\n").expect("write secret");
        MINIMAL.replace("SECRET_FILE", &path.display().to_string())
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c = parse(&minimal()).expect("valid");
        assert_eq!(c.server.listen, "127.0.0.1:8443".parse().expect("addr"));
        assert_eq!(c.tenants[0].plugin, Path::new("/etc/hookbox/p.wasm"));
        assert_eq!(c.tenants[0].limits, Limits::default());
        assert!(
            matches!(c.tls, TlsSource::Files { ref cert, .. } if cert == Path::new("/etc/hookbox/cert.pem"))
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = parse(&minimal().replace("[tls]", "[tls]\nciphers = 1")).expect_err("unknown key");
        assert!(e.0.contains("ciphers"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let minimal = minimal();
        let cases = [
            (
                minimal.replace("auth =", "limits = { deadline = \"5s\" }\n        auth ="),
                "limits.deadline",
            ),
            (
                minimal.replace("auth =", "limits = { memory = \"lots\" }\n        auth ="),
                "limits.memory",
            ),
            (minimal.replace("\"acme\"", "\"Acme Corp\""), "tenant id"),
            (
                minimal.replace(
                    "auth =",
                    "limits = { instance_mode = \"sometimes\" }\n        auth =",
                ),
                "limits.instance_mode",
            ),
            (
                minimal.replace(
                    "auth =",
                    "limits = { reuse_max_requests = 10 }\n        auth =",
                ),
                "limits.reuse_max_requests",
            ),
            (
                minimal.replace(
                    "auth =",
                    "limits = { instance_mode = \"reuse\", reuse_max_requests = 0 }\n        auth =",
                ),
                "limits.reuse_max_requests",
            ),
            (
                MINIMAL.replace(
                    "secrets_file = [\"SECRET_FILE\"]",
                    "secrets_env = [\"HOOKBOX_TEST_UNSET_VAR\"]",
                ),
                "HOOKBOX_TEST_UNSET_VAR",
            ),
            (
                MINIMAL.replace("SECRET_FILE", "/nonexistent/secret"),
                "cannot read",
            ),
            (
                format!("{minimal}\n[server]\nlisten = \"nowhere\""),
                "listen",
            ),
            (
                format!(
                    "{minimal}{}",
                    &minimal[minimal.find("[[tenants]]").expect("tenants")..]
                ),
                "twice",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(&text).expect_err(needle);
            assert!(e.0.contains(needle), "expected '{needle}' in: {e}");
        }
    }

    #[test]
    fn instance_mode_defaults_to_fresh_and_reuse_to_the_default_count() {
        let limits = |l: &str| {
            parse(&minimal().replace("auth =", &format!("limits = {{ {l} }}\n        auth =")))
                .expect("valid")
                .tenants[0]
                .limits
                .instance_mode
        };
        assert_eq!(limits(""), InstanceMode::Fresh);
        assert_eq!(limits("instance_mode = \"fresh\""), InstanceMode::Fresh);
        assert_eq!(
            limits("instance_mode = \"reuse\""),
            InstanceMode::Reuse {
                max_requests: DEFAULT_REUSE_MAX_REQUESTS
            }
        );
        assert_eq!(
            limits("instance_mode = \"reuse\", reuse_max_requests = 7"),
            InstanceMode::Reuse { max_requests: 7 }
        );
    }

    #[test]
    fn overrides_win_over_the_file() {
        let o = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        let c = Config::parse(
            &format!("{}\n[server]\nlisten = \"0.0.0.0:9\"", minimal()),
            Path::new("/"),
            &o,
        )
        .expect("valid");
        assert_eq!(c.server.listen.port(), 0);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("k", "32MiB").ok(), Some(32 << 20));
        assert_eq!(parse_size("k", "1000").ok(), Some(1000));
        assert!(parse_size("k", "32 parsecs").is_err());
        assert_eq!(
            parse_duration("k", "500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("k", "2s").ok(), Some(Duration::from_secs(2)));
        assert!(parse_duration("k", "soon").is_err());
    }
}
