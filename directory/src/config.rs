//! The `directory` table of a tenant's configuration, and its validated form.
//!
//! [`DirectoryConfig`] is what the host's TOML holds
//! (`directory = { url = "https://{org}", token_env = "...", ... }`), deserialized with
//! `deny_unknown_fields` so a misspelt key is refused rather than ignored.
//! [`DirectoryConfig::validate`] turns it once into [`DirectorySettings`]: the URL is an `https`
//! origin, every duration and size is inside the bounds documented on its field, and the API
//! token has been read (from the environment or a file).
//!
//! Invariants:
//! - The token is held in an [`ApiToken`], whose `Debug` never shows it; no error message of this
//!   module contains it (messages name the variable or the file instead).
//! - Nothing is fetched here; the network is touched only by [`crate::Directory::find_user`].

use std::path::PathBuf;
use std::time::Duration;

pub use hookbox_oauth::config::DurationValue;
use hyper::Uri;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Default time a found user (login → user id) stays cached.
pub const DEFAULT_FOUND_TTL: Duration = Duration::from_secs(600);
/// Bounds of `found_ttl` (zero: found users are not cached).
pub const FOUND_TTL_BOUNDS: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(86_400));
/// Default time a free login stays cached: short, because a user may be created meanwhile.
pub const DEFAULT_FREE_TTL: Duration = Duration::from_secs(30);
/// Bounds of `free_ttl` (zero: free logins are always re-checked).
pub const FREE_TTL_BOUNDS: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(600));
/// Default largest number of cached logins (found and free together).
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Largest accepted `cache_entries` (an entry is about 100 bytes).
pub const MAX_CACHE_ENTRIES: usize = 1_000_000;
/// Default cap of lookups in one plugin call.
pub const DEFAULT_MAX_LOOKUPS_PER_REQUEST: u32 = 8;
/// Bounds of `max_lookups_per_request`.
pub const MAX_LOOKUPS_PER_REQUEST_BOUNDS: (u32, u32) = (1, 100);
/// Default cap of one call to Okta (it is also bounded by what is left of the plugin's deadline).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// Bounds of `call_timeout`: the upper bound keeps a lookup well under Okta's 3 s for the hook.
pub const CALL_TIMEOUT_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_millis(2500));

/// One tenant's directory settings as written in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The Okta org, e.g. `https://example.okta.com` (or its custom domain): an `https` origin,
    /// without path, query or credentials.
    pub url: String,
    /// The name of an environment variable holding the API token. Exactly one of `token_env`
    /// and `token_file` is set.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the API token (one trailing newline is ignored). Relative paths are taken
    /// as given (the host resolves them against its configuration file).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// A PEM file of extra certificate authorities trusted for the org's HTTPS (besides the
    /// bundled web PKI roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long a found user stays cached. Default 10 min, 0 .. 24 h.
    #[serde(default)]
    pub found_ttl: Option<DurationValue>,
    /// How long a free login stays cached. Default 30 s, 0 .. 10 min.
    #[serde(default)]
    pub free_ttl: Option<DurationValue>,
    /// Largest number of cached logins. Default 10,000, 0 (no cache) .. 1,000,000.
    #[serde(default)]
    pub cache_entries: Option<usize>,
    /// Lookups allowed in one plugin call; the next ones answer `rate-limited`. Default 8,
    /// 1 .. 100.
    #[serde(default)]
    pub max_lookups_per_request: Option<u32>,
    /// Longest wait for one answer from Okta (it is also bounded by the plugin's deadline).
    /// Default 1 s, 50 ms .. 2.5 s.
    #[serde(default)]
    pub call_timeout: Option<DurationValue>,
}

/// A configuration value that is out of bounds or malformed; the message names the key and
/// never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("directory.{0}")]
pub struct ConfigError(pub String);

/// An Okta API token. Its `Debug` is redacted, it has no `Display`, and it is only read to build
/// the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// Checks a token's text (one trailing newline removed): not empty, visible ASCII only (it
    /// goes into an HTTP header). `source` names where it came from, for the error.
    pub fn parse(text: &str, source: &str) -> Result<ApiToken, ConfigError> {
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if text.is_empty() {
            return Err(ConfigError(format!("{source}: the token is empty")));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError(format!(
                "{source}: the token contains spaces, control or non-ASCII characters"
            )));
        }
        Ok(ApiToken(text.to_owned()))
    }

    /// The token itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible name for the token (the first 8 bytes of its SHA-256, hex): lets
    /// two tenants using the same token share its rate-limit state without keeping the token.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(self.0.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// [`DirectoryConfig`] once validated: typed and bounded values, the token read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySettings {
    /// The org's origin, `https://host[:port]`, without a trailing slash.
    pub url: String,
    /// The API token.
    pub token: ApiToken,
    /// Extra trusted CA file.
    pub ca_file: Option<PathBuf>,
    /// Cache time of a found user.
    pub found_ttl: Duration,
    /// Cache time of a free login.
    pub free_ttl: Duration,
    /// Largest number of cached logins.
    pub cache_entries: usize,
    /// Lookups allowed in one plugin call.
    pub max_lookups_per_request: u32,
    /// Longest wait for one answer from Okta.
    pub call_timeout: Duration,
}

impl DirectorySettings {
    /// Settings for `url` and `token` with every default (for tests and embedding).
    pub fn new(url: impl Into<String>, token: ApiToken) -> DirectorySettings {
        DirectorySettings {
            url: url.into().trim_end_matches('/').to_owned(),
            token,
            ca_file: None,
            found_ttl: DEFAULT_FOUND_TTL,
            free_ttl: DEFAULT_FREE_TTL,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            max_lookups_per_request: DEFAULT_MAX_LOOKUPS_PER_REQUEST,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

fn bounded_duration(
    key: &str,
    value: &Option<DurationValue>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Result<Duration, ConfigError> {
    let d = match value {
        Some(v) => v.parse(key).map_err(|e| ConfigError(e.0))?,
        None => return Ok(default),
    };
    if d < min || d > max {
        return Err(ConfigError(format!(
            "{key}: {d:?} is outside [{min:?}, {max:?}]"
        )));
    }
    Ok(d)
}

fn bounded<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: Option<T>,
    default: T,
    (min, max): (T, T),
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError(format!("{key}: {v} is outside [{min}, {max}]")));
    }
    Ok(v)
}

/// Parses `url` into an `https` origin (`https://host[:port]`), refusing a path, a query or
/// credentials (`user@host`).
fn https_origin(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError(format!("url: '{url}' {why}"));
    let uri: Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("must be an https:// URL"));
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    if authority.as_str().contains('@') {
        return Err(bad("must not contain credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad(
            "must be the org's origin only, e.g. https://example.okta.com",
        ));
    }
    Ok(format!("https://{authority}"))
}

impl DirectoryConfig {
    /// A configuration for `url` with the token in the environment variable `token_env`.
    pub fn with_token_env(url: impl Into<String>, token_env: impl Into<String>) -> DirectoryConfig {
        DirectoryConfig {
            url: url.into(),
            token_env: Some(token_env.into()),
            ..DirectoryConfig::default()
        }
    }

    /// A configuration for `url` with the token in the file `token_file`.
    pub fn with_token_file(
        url: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> DirectoryConfig {
        DirectoryConfig {
            url: url.into(),
            token_file: Some(token_file.into()),
            ..DirectoryConfig::default()
        }
    }

    /// Checks every value, reads the token (from the process environment or the file) and
    /// returns the typed settings.
    pub fn validate(&self) -> Result<DirectorySettings, ConfigError> {
        self.validate_with(&|name| std::env::var(name).ok())
    }

    /// [`DirectoryConfig::validate`] reading environment variables through `env` (tests, or a
    /// host that snapshots its environment).
    pub fn validate_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DirectorySettings, ConfigError> {
        let url = https_origin(&self.url)?;
        let token = match (&self.token_env, &self.token_file) {
            (Some(name), None) => {
                if name.is_empty() {
                    return Err(ConfigError("token_env: must not be empty".into()));
                }
                let text = env(name).ok_or_else(|| {
                    ConfigError(format!(
                        "token_env: the environment variable {name} is not set"
                    ))
                })?;
                ApiToken::parse(&text, &format!("token_env ({name})"))?
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("token_file: reading {}: {e}", path.display()))
                })?;
                ApiToken::parse(&text, &format!("token_file ({})", path.display()))?
            }
            (None, None) => {
                return Err(ConfigError(
                    "token_env or token_file: one of them is required".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "token_env and token_file: set only one of them".into(),
                ));
            }
        };
        Ok(DirectorySettings {
            url,
            token,
            ca_file: self.ca_file.clone(),
            found_ttl: bounded_duration(
                "found_ttl",
                &self.found_ttl,
                DEFAULT_FOUND_TTL,
                FOUND_TTL_BOUNDS,
            )?,
            free_ttl: bounded_duration(
                "free_ttl",
                &self.free_ttl,
                DEFAULT_FREE_TTL,
                FREE_TTL_BOUNDS,
            )?,
            cache_entries: bounded(
                "cache_entries",
                self.cache_entries,
                DEFAULT_CACHE_ENTRIES,
                (0, MAX_CACHE_ENTRIES),
            )?,
            max_lookups_per_request: bounded(
                "max_lookups_per_request",
                self.max_lookups_per_request,
                DEFAULT_MAX_LOOKUPS_PER_REQUEST,
                MAX_LOOKUPS_PER_REQUEST_BOUNDS,
            )?,
            call_timeout: bounded_duration(
                "call_timeout",
                &self.call_timeout,
                DEFAULT_CALL_TIMEOUT,
                CALL_TIMEOUT_BOUNDS,
            )?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "00abcDEF-secret_token";

    fn env(name: &str) -> Option<String> {
        match name {
            "OKTA_TOKEN" => Some(format!("{TOKEN}\n")),
            "SPACED" => Some("two words".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<DirectorySettings, ConfigError> {
        let config: DirectoryConfig =
            toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.validate_with(&env)
    }

    #[test]
    fn defaults_and_token_from_env() {
        let s = parse(
            r#"url = "https://example.okta.com/"
token_env = "OKTA_TOKEN""#,
        )
        .unwrap();
        assert_eq!(s.url, "https://example.okta.com");
        assert_eq!(s.token.expose(), TOKEN);
        assert_eq!(s.found_ttl, DEFAULT_FOUND_TTL);
        assert_eq!(s.free_ttl, DEFAULT_FREE_TTL);
        assert_eq!(s.cache_entries, DEFAULT_CACHE_ENTRIES);
        assert_eq!(s.max_lookups_per_request, 8);
        assert_eq!(s.call_timeout, DEFAULT_CALL_TIMEOUT);
        assert!(!format!("{s:?}").contains(TOKEN), "Debug shows the token");
    }

    #[test]
    fn token_from_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\r\n")).unwrap();
        let s = DirectoryConfig::with_token_file("https://example.okta.com", &path)
            .validate()
            .unwrap();
        assert_eq!(s.token.expose(), TOKEN);
        std::fs::write(&path, "\n").unwrap();
        let e = DirectoryConfig::with_token_file("https://example.okta.com", &path)
            .validate()
            .unwrap_err();
        assert!(e.0.contains("empty"), "{e}");
    }

    #[test]
    fn exactly_one_token_source() {
        let e = parse(r#"url = "https://example.okta.com""#).unwrap_err();
        assert!(e.0.contains("one of them is required"), "{e}");
        let e = parse(
            r#"url = "https://example.okta.com"
token_env = "OKTA_TOKEN"
token_file = "/t""#,
        )
        .unwrap_err();
        assert!(e.0.contains("only one"), "{e}");
        let e = parse(
            r#"url = "https://example.okta.com"
token_env = "MISSING""#,
        )
        .unwrap_err();
        assert!(e.0.contains("MISSING is not set"), "{e}");
        let e = parse(
            r#"url = "https://example.okta.com"
token_env = "SPACED""#,
        )
        .unwrap_err();
        assert!(!e.0.contains("two words"), "the error shows the token: {e}");
    }

    #[test]
    fn url_must_be_an_https_origin() {
        for url in [
            "http://example.okta.com",
            "example.okta.com",
            "https://example.okta.com/api/v1",
            "https://example.okta.com?x=1",
            "https://user:pw@example.okta.com",
        ] {
            let text = format!("url = \"{url}\"\ntoken_env = \"OKTA_TOKEN\"");
            assert!(parse(&text).is_err(), "{url} accepted");
        }
        let s = parse(
            r#"url = "https://127.0.0.1:8443"
token_env = "OKTA_TOKEN""#,
        )
        .unwrap();
        assert_eq!(s.url, "https://127.0.0.1:8443");
    }

    #[test]
    fn bounds_and_unknown_keys() {
        let base = "url = \"https://example.okta.com\"\ntoken_env = \"OKTA_TOKEN\"\n";
        let s = parse(&format!(
            "{base}found_ttl = \"5m\"\nfree_ttl = 0\ncache_entries = 10\nmax_lookups_per_request = 3\ncall_timeout = \"200ms\""
        ))
        .unwrap();
        assert_eq!(s.found_ttl, Duration::from_secs(300));
        assert_eq!(s.free_ttl, Duration::ZERO);
        assert_eq!(s.cache_entries, 10);
        assert_eq!(s.max_lookups_per_request, 3);
        assert_eq!(s.call_timeout, Duration::from_millis(200));
        for bad in [
            "free_ttl = \"11m\"",
            "found_ttl = \"25h\"",
            "max_lookups_per_request = 0",
            "call_timeout = \"3s\"",
            "cache_entries = 2000000",
            "tokn_env = \"X\"",
        ] {
            assert!(parse(&format!("{base}{bad}")).is_err(), "{bad} accepted");
        }
    }
}
