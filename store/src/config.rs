//! `[store]` configuration, embeddable in the host's TOML config.
//!
//! ```toml
//! [store]
//! backend = "embedded"
//! path = "/var/lib/hookbox/store.redb"
//! answer_ttl = "10m"
//! ```
//! or
//! ```toml
//! [store]
//! backend = "redis"
//! url = "redis://127.0.0.1:6379/0"
//! prefix = "hookbox"
//! call_timeout = "250ms"
//! ```
//! Durations are written like the host's: `500ms`, `2s`, `10m`, `1h`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Default time an idempotent answer is kept (Okta retries within seconds; 10 minutes is ample).
pub const DEFAULT_ANSWER_TTL: Duration = Duration::from_secs(600);
/// Default bound on one Redis call (the host also bounds it by the plugin's remaining deadline).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Default bound on establishing one Redis connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default Redis key prefix.
pub const DEFAULT_PREFIX: &str = "hookbox";

/// Which backend holds the state, and how to reach it. One per host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// A redb file on local disk: durable, crash-safe, no setup; one process at a time.
    Embedded {
        /// The database file; its parent directories are created (mode 0700) if missing.
        path: PathBuf,
        /// How long idempotent answers are kept.
        #[serde(default = "default_answer_ttl", deserialize_with = "de_duration")]
        answer_ttl: Duration,
    },
    /// A Redis server shared by several hookbox replicas.
    Redis {
        /// `redis://[user:password@]host:port/db`. `rediss://` (TLS) is refused: not built in.
        url: String,
        /// Prefix of every key this store writes (default `hookbox`); lets several deployments
        /// share one Redis database. Must not contain `{`, `}` or `:`.
        #[serde(default = "default_prefix")]
        prefix: String,
        /// Upper bound on each store call, connection included.
        #[serde(default = "default_call_timeout", deserialize_with = "de_duration")]
        call_timeout: Duration,
        /// Upper bound on establishing one connection.
        #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
        connect_timeout: Duration,
        /// How long idempotent answers are kept (Redis `PX`).
        #[serde(default = "default_answer_ttl", deserialize_with = "de_duration")]
        answer_ttl: Duration,
    },
}

impl StoreConfig {
    /// An embedded store at `path` with default settings.
    pub fn embedded(path: impl Into<PathBuf>) -> Self {
        StoreConfig::Embedded {
            path: path.into(),
            answer_ttl: DEFAULT_ANSWER_TTL,
        }
    }

    /// A Redis store at `url` with default settings.
    pub fn redis(url: impl Into<String>) -> Self {
        StoreConfig::Redis {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            answer_ttl: DEFAULT_ANSWER_TTL,
        }
    }

    /// The configured lifetime of idempotent answers.
    pub fn answer_ttl(&self) -> Duration {
        match self {
            StoreConfig::Embedded { answer_ttl, .. } | StoreConfig::Redis { answer_ttl, .. } => {
                *answer_ttl
            }
        }
    }
}

fn default_answer_ttl() -> Duration {
    DEFAULT_ANSWER_TTL
}
fn default_call_timeout() -> Duration {
    DEFAULT_CALL_TIMEOUT
}
fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

/// Parses `500ms`, `2s`, `10m`, `1h` (the host's duration syntax).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    match parse_duration(&s) {
        Some(v) if !v.is_zero() => Ok(v),
        _ => Err(serde::de::Error::custom(format!(
            "'{s}' is not a positive duration (e.g. 500ms, 2s, 10m)"
        ))),
    }
}
