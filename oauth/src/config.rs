//! The `oauth` table of a tenant's configuration, and its validated form.
//!
//! [`OAuthConfig`] is what the host's TOML holds (`auth = { oauth = { issuer = "...", ... } }`),
//! deserialized with `deny_unknown_fields` so a misspelt key is refused rather than ignored.
//! [`OAuthConfig::validate`] turns it once into [`OAuthSettings`], whose values are typed and
//! bounded: every URL is `https`, every duration is inside the bounds documented on each field.
//! Nothing is fetched here; the network is touched by [`crate::Verifier::new`].

use std::path::PathBuf;
use std::time::Duration;

use hyper::Uri;
use serde::Deserialize;

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest accepted `leeway`: more would let an expired token through for minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Default minimum interval between two refreshes caused by an unknown `kid`.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Bounds of `min_refresh_interval`: never zero (that would disable the rate limit).
pub const MIN_REFRESH_INTERVAL_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));
/// Default timeout of one metadata or JWKS fetch.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_millis(1000);
/// Bounds of `fetch_timeout`: the upper bound keeps a fetch on the request path well under
/// Okta's 3 s timeout for the whole hook call.
pub const FETCH_TIMEOUT_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_millis(2500));

/// A duration in the configuration: a number of seconds (`30`) or a string with a unit
/// (`"500ms"`, `"30s"`, `"2m"`, `"1h"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    /// Whole seconds.
    Seconds(u64),
    /// A number followed by `ms`, `s`, `m` or `h`.
    Text(String),
}

impl DurationValue {
    /// The duration, or an error naming `key`.
    pub fn parse(&self, key: &str) -> Result<Duration, ConfigError> {
        match self {
            DurationValue::Seconds(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => parse_duration(t).ok_or_else(|| {
                ConfigError(format!(
                    "{key}: '{t}' is not a duration (e.g. 30, \"500ms\", \"30s\", \"2m\")"
                ))
            }),
        }
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// One tenant's OAuth 2.0 settings as written in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The authorization server's issuer, e.g. `https://example.okta.com/oauth2/default`. Compared
    /// exactly with the token's `iss`; must be `https`.
    pub issuer: String,
    /// The audience the token must name in `aud` (a string or an array), e.g. `api://default`.
    pub audience: String,
    /// If set, the token's `cid` (Okta's client id claim) must equal it.
    #[serde(default)]
    pub client_id: Option<String>,
    /// If set, this scope must be in the token's `scp` (a JSON array, as Okta sends it) or in a
    /// space-separated `scope` string.
    #[serde(default)]
    pub scope: Option<String>,
    /// The JWKS URL. Default: the `jwks_uri` of `{issuer}/.well-known/oauth-authorization-server`,
    /// falling back to `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A PEM file of extra certificate authorities trusted for the issuer's HTTPS (besides the
    /// bundled web PKI roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Clock-skew allowance for `exp` and `nbf`. Default 30 s, at most 5 min.
    #[serde(default)]
    pub leeway: Option<DurationValue>,
    /// Minimum interval between two JWKS refreshes caused by tokens naming an unknown `kid`.
    /// Default 10 s, between 1 s and 1 h.
    #[serde(default)]
    pub min_refresh_interval: Option<DurationValue>,
    /// Timeout of one metadata or JWKS fetch. Default 1 s, between 50 ms and 2.5 s.
    #[serde(default)]
    pub fetch_timeout: Option<DurationValue>,
}

/// A configuration value that is out of bounds or malformed; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("oauth.{0}")]
pub struct ConfigError(pub String);

/// [`OAuthConfig`] once validated: typed and bounded values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The issuer exactly as configured (compared verbatim with `iss`).
    pub issuer: String,
    /// The required audience.
    pub audience: String,
    /// The required `cid`, if any.
    pub client_id: Option<String>,
    /// The required scope, if any.
    pub scope: Option<String>,
    /// An explicit JWKS URL (then no discovery happens).
    pub jwks_uri: Option<Uri>,
    /// Extra trusted CA file.
    pub ca_file: Option<PathBuf>,
    /// Clock-skew allowance.
    pub leeway: Duration,
    /// Rate limit of unknown-`kid` refreshes.
    pub min_refresh_interval: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
}

impl OAuthSettings {
    /// The metadata URLs tried in order when `jwks_uri` is not configured.
    pub fn discovery_urls(&self) -> [String; 2] {
        let base = self.issuer.trim_end_matches('/');
        [
            format!("{base}/.well-known/oauth-authorization-server"),
            format!("{base}/.well-known/openid-configuration"),
        ]
    }
}

/// Parses `url` and refuses anything but an absolute `https` URL with a host.
pub fn https_uri(key: &str, url: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| ConfigError(format!("{key}: '{url}' is not a URL")))?;
    if uri.scheme_str() != Some("https") {
        return Err(ConfigError(format!(
            "{key}: '{url}' must be an https:// URL"
        )));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ConfigError(format!("{key}: '{url}' has no host")));
    }
    Ok(uri)
}

fn bounded(
    key: &str,
    value: &Option<DurationValue>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Result<Duration, ConfigError> {
    let d = match value {
        Some(v) => v.parse(key)?,
        None => return Ok(default),
    };
    if d < min || d > max {
        return Err(ConfigError(format!(
            "{key}: {d:?} is outside [{min:?}, {max:?}]"
        )));
    }
    Ok(d)
}

impl OAuthConfig {
    /// A configuration with the two required fields and every default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OAuthConfig {
        OAuthConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            ..OAuthConfig::default()
        }
    }

    /// Checks every value and returns the typed settings.
    pub fn validate(&self) -> Result<OAuthSettings, ConfigError> {
        let issuer_uri = https_uri("issuer", &self.issuer)?;
        if issuer_uri.query().is_some() {
            return Err(ConfigError(format!(
                "issuer: '{}' must not have a query",
                self.issuer
            )));
        }
        if self.audience.is_empty() {
            return Err(ConfigError("audience: must not be empty".into()));
        }
        let non_empty = |key: &str, v: &Option<String>| match v {
            Some(s) if s.trim().is_empty() => {
                Err(ConfigError(format!("{key}: must not be empty when set")))
            }
            _ => Ok(v.clone()),
        };
        let client_id = non_empty("client_id", &self.client_id)?;
        let scope = non_empty("scope", &self.scope)?;
        if scope.as_deref().is_some_and(|s| s.contains(' ')) {
            return Err(ConfigError("scope: one scope, without spaces".into()));
        }
        let jwks_uri = self
            .jwks_uri
            .as_deref()
            .map(|u| https_uri("jwks_uri", u))
            .transpose()?;
        Ok(OAuthSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            client_id,
            scope,
            jwks_uri,
            ca_file: self.ca_file.clone(),
            leeway: bounded(
                "leeway",
                &self.leeway,
                DEFAULT_LEEWAY,
                (Duration::ZERO, MAX_LEEWAY),
            )?,
            min_refresh_interval: bounded(
                "min_refresh_interval",
                &self.min_refresh_interval,
                DEFAULT_MIN_REFRESH_INTERVAL,
                MIN_REFRESH_INTERVAL_BOUNDS,
            )?,
            fetch_timeout: bounded(
                "fetch_timeout",
                &self.fetch_timeout,
                DEFAULT_FETCH_TIMEOUT,
                FETCH_TIMEOUT_BOUNDS,
            )?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> OAuthConfig {
        OAuthConfig::new("https://example.okta.com/oauth2/default", "api://default")
    }

    #[test]
    fn defaults_and_bounds() {
        let s = base().validate().unwrap();
        assert_eq!(s.leeway, DEFAULT_LEEWAY);
        assert_eq!(s.min_refresh_interval, DEFAULT_MIN_REFRESH_INTERVAL);
        assert_eq!(s.fetch_timeout, DEFAULT_FETCH_TIMEOUT);

        let mut c = base();
        c.leeway = Some(DurationValue::Text("10m".into()));
        assert!(c.validate().unwrap_err().0.starts_with("leeway"));
        c.leeway = Some(DurationValue::Seconds(5));
        assert_eq!(c.validate().unwrap().leeway, Duration::from_secs(5));
        c.fetch_timeout = Some(DurationValue::Text("5s".into()));
        assert!(c.validate().is_err());
        c.fetch_timeout = Some(DurationValue::Text("200ms".into()));
        assert_eq!(
            c.validate().unwrap().fetch_timeout,
            Duration::from_millis(200)
        );
        c.min_refresh_interval = Some(DurationValue::Seconds(0));
        assert!(c.validate().is_err());
        c.min_refresh_interval = Some(DurationValue::Text("soon".into()));
        assert!(c.validate().is_err());
    }

    #[test]
    fn https_only() {
        for bad in [
            "http://example.okta.com",
            "http://127.0.0.1:8080",
            "example.okta.com",
            "https://",
        ] {
            let c = OAuthConfig::new(bad, "aud");
            assert!(c.validate().is_err(), "{bad}");
        }
        let mut c = base();
        c.jwks_uri = Some("http://example.okta.com/keys".into());
        assert!(c.validate().unwrap_err().0.starts_with("jwks_uri"));
    }

    #[test]
    fn toml_shape_and_unknown_keys() {
        let c: OAuthConfig = toml::from_str(
            r#"issuer = "https://o.example/oauth2/default"
               audience = "api://default"
               client_id = "0oa1"
               scope = "hookbox.call"
               leeway = "10s"
               fetch_timeout = 2"#,
        )
        .unwrap();
        let s = c.validate().unwrap();
        assert_eq!(s.leeway, Duration::from_secs(10));
        assert_eq!(s.fetch_timeout, Duration::from_secs(2));
        assert_eq!(s.client_id.as_deref(), Some("0oa1"));
        let err = toml::from_str::<OAuthConfig>(
            r#"issuer = "https://o.example"
               audience = "a"
               audiance = "typo""#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn discovery_urls_strip_one_trailing_slash() {
        let mut c = base();
        c.issuer.push('/');
        let s = c.validate().unwrap();
        assert_eq!(
            s.discovery_urls()[0],
            "https://example.okta.com/oauth2/default/.well-known/oauth-authorization-server"
        );
    }
}
