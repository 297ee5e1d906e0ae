//! [`Directory`]: one tenant's read-only lookup in its Okta org.
//!
//! A lookup ([`Directory::find_user`]) goes, in order:
//! 1. an empty login, or one longer than [`MAX_LOGIN_BYTES`], is free at once (no Okta login is
//!    either; and an empty path segment would ask Okta for the user *list*);
//! 2. the cache, keyed by the login case-folded (Okta compares logins case-insensitively);
//! 3. the deadline: already past → [`DirectoryError::TimedOut`];
//! 4. the rate-limit gate (see [`crate::rate`]): closed → [`DirectoryError::RateLimited`] at once;
//! 5. `GET {url}/api/v1/users/{login}` (the login percent-encoded as one path segment) with
//!    `Authorization: SSWS <token>` and `Accept: application/json`, bounded by the earlier of the
//!    deadline and `call_timeout`.
//!
//! The answer: `200` → the user's `id` (if the user's `profile.login` is present and differs
//! from the login, case-insensitively, the login is free: Okta's path also matches a user id,
//! a login's short name and `me`); `404` → free; `401`/`403` → [`DirectoryError::Denied`];
//! `429` → [`DirectoryError::RateLimited`]; anything else, a malformed body or a transport error
//! → [`DirectoryError::Unavailable`]; no answer by the deadline → [`DirectoryError::TimedOut`]
//! (by `call_timeout`, earlier than the deadline → `Unavailable`). Every answer's rate-limit
//! headers are applied to the gate, whatever its status.
//!
//! Invariants:
//! - Answers (found, free) are cached, for `found_ttl` and `free_ttl`; errors never are.
//! - No lookup waits past its deadline, and none waits for a rate-limit reset.
//! - Neither the token nor the login appears in a log line or an error text (texts from the
//!   transport are scrubbed of the login). Logs carry the org URL and the status.
//! - Concurrent lookups of one login are not merged: each cache miss makes its own call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use hookbox_oauth::http::{ClientError, FetchError, HttpsClient};
use hyper::StatusCode;
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, USER_AGENT};
use serde::Deserialize;

use crate::cache::AnswerCache;
use crate::config::{ConfigError, DirectoryConfig, DirectorySettings};
use crate::rate::{RateGate, RateHeaders};

/// Longest login looked up; longer ones are free without a call (Okta's logins have at most 100
/// characters, so at most 400 bytes of UTF-8).
pub const MAX_LOGIN_BYTES: usize = 1024;

/// Why a lookup gave no answer; the host maps it one to one onto WIT's `directory-error`.
/// After any error nothing is known about the login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The tenant has no directory. Never returned by [`Directory`]: it is here so that the
    /// host answers a tenant without a directory with the same type.
    #[error("no directory is configured")]
    NotConfigured,
    /// Okta could not be reached, or answered something unexpected. The text is for the log:
    /// it never contains the login or the token.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// Okta's rate limit is spent until its reset, or this plugin call used up its lookups
    /// ([`RequestBudget`]).
    #[error("directory rate-limited")]
    RateLimited,
    /// No answer within what was left of the deadline.
    #[error("directory lookup timed out")]
    TimedOut,
    /// Okta refused the credential (401/403): the operator must fix the tenant's token.
    #[error("Okta refused the directory credential")]
    Denied,
}

impl DirectoryError {
    /// The WIT name of the kind: `not-configured`, `unavailable`, `rate-limited`, `timed-out`,
    /// `denied` (for metrics labels and debug context).
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::NotConfigured => "not-configured",
            DirectoryError::Unavailable(_) => "unavailable",
            DirectoryError::RateLimited => "rate-limited",
            DirectoryError::TimedOut => "timed-out",
            DirectoryError::Denied => "denied",
        }
    }
}

/// A [`Directory`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is invalid (or the token could not be read).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTPS client could not be built (the CA file).
    #[error("directory: {0}")]
    Client(#[from] ClientError),
}

/// The lookups one plugin call may still make. The host creates one per plugin call
/// ([`Directory::request_budget`]) and passes it to every [`Directory::find_user_in`] of that
/// call; each lookup takes one, cached or not (so that a plugin's answers do not depend on the
/// cache's state), and a lookup past the cap answers [`DirectoryError::RateLimited`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBudget {
    remaining: u32,
}

impl RequestBudget {
    /// A budget of `cap` lookups.
    pub fn new(cap: u32) -> RequestBudget {
        RequestBudget { remaining: cap }
    }

    /// Lookups left.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Takes one lookup; `false` if none is left.
    pub fn try_take(&mut self) -> bool {
        if self.remaining == 0 {
            return false;
        }
        self.remaining -= 1;
        true
    }
}

/// Counters since the [`Directory`] was built (for metrics; every field only grows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryStats {
    /// Lookups asked for (every `find_user` / `find_user_in` call).
    pub lookups: u64,
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Requests sent to Okta.
    pub okta_calls: u64,
    /// Lookups answered "a user holds it".
    pub found: u64,
    /// Lookups answered "free".
    pub free: u64,
    /// Lookups answered [`DirectoryError::RateLimited`] (Okta's limit or the per-call cap).
    pub rate_limited: u64,
    /// Of those, answered so because the per-call cap was used up.
    pub budget_exhausted: u64,
    /// Lookups answered [`DirectoryError::TimedOut`].
    pub timed_out: u64,
    /// Lookups answered [`DirectoryError::Unavailable`].
    pub unavailable: u64,
    /// Lookups answered [`DirectoryError::Denied`].
    pub denied: u64,
    /// Times Okta's rate limit closed the gate (a `429` or `Remaining: 0` while it was open).
    pub rate_limit_pauses: u64,
}

#[derive(Default)]
struct Counters {
    lookups: AtomicU64,
    cache_hits: AtomicU64,
    okta_calls: AtomicU64,
    found: AtomicU64,
    free: AtomicU64,
    rate_limited: AtomicU64,
    budget_exhausted: AtomicU64,
    timed_out: AtomicU64,
    unavailable: AtomicU64,
    denied: AtomicU64,
    rate_limit_pauses: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// HTTPS clients shared per org (and CA file), and rate-limit gates shared per org and
/// credential, for every tenant's [`Directory`]. The host keeps one for its lifetime, so
/// that a reload reuses pooled connections and keeps a closed rate-limit gate closed.
#[derive(Default)]
pub struct DirectoryClients {
    clients: Mutex<HashMap<(String, Option<PathBuf>), HttpsClient>>,
    gates: Mutex<HashMap<(String, String), Arc<RateGate>>>,
}

impl std::fmt::Debug for DirectoryClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryClients").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DirectoryClients {
    /// An empty set.
    pub fn new() -> DirectoryClients {
        DirectoryClients::default()
    }

    fn client(&self, settings: &DirectorySettings) -> Result<HttpsClient, ClientError> {
        let key = (settings.url.clone(), settings.ca_file.clone());
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = HttpsClient::new(settings.ca_file.as_deref())?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn gate(&self, settings: &DirectorySettings) -> Arc<RateGate> {
        let key = (settings.url.clone(), settings.token.fingerprint());
        lock(&self.gates).entry(key).or_default().clone()
    }
}

struct Inner {
    settings: DirectorySettings,
    authorization: HeaderValue,
    client: HttpsClient,
    gate: Arc<RateGate>,
    cache: Mutex<AnswerCache>,
    counters: Counters,
}

/// One tenant's directory; see the module documentation. Cheap to clone (an `Arc` inside),
/// `Send + Sync`.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.inner.settings.url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct UserBody {
    id: String,
    #[serde(default)]
    profile: Option<ProfileBody>,
}

#[derive(Deserialize)]
struct ProfileBody {
    #[serde(default)]
    login: Option<String>,
}

#[derive(Deserialize)]
struct OktaErrorBody {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

/// The login as one path segment: unreserved characters and `@` as they are, every other byte
/// of its UTF-8 percent-encoded (`/`, `?`, `#`, `%`, `+` and spaces included). A login made only
/// of dots is encoded whole, so that it cannot become `.` or `..` (path navigation).
pub fn encode_path_segment(login: &str) -> String {
    let only_dots = login.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(login.len() * 3);
    for b in login.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'~' | b'@')
            || (b == b'.' && !only_dots);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Folds a login's case as Okta compares logins (Unicode lowercase).
pub fn fold_login(login: &str) -> String {
    login.to_lowercase()
}

impl Directory {
    /// A directory for `settings`, with the HTTPS client and rate-limit gate from `clients`.
    pub fn new(
        settings: DirectorySettings,
        clients: &DirectoryClients,
    ) -> Result<Directory, SetupError> {
        let client = clients.client(&settings)?;
        let gate = clients.gate(&settings);
        Directory::build(settings, client, gate)
    }

    /// [`DirectoryConfig::validate`] then [`Directory::new`].
    pub fn from_config(
        config: &DirectoryConfig,
        clients: &DirectoryClients,
    ) -> Result<Directory, SetupError> {
        Directory::new(config.validate()?, clients)
    }

    /// A directory using `client` (e.g. one trusting a test CA) and a rate-limit gate of its own.
    pub fn with_client(
        settings: DirectorySettings,
        client: HttpsClient,
    ) -> Result<Directory, SetupError> {
        Directory::build(settings, client, Arc::default())
    }

    fn build(
        settings: DirectorySettings,
        client: HttpsClient,
        gate: Arc<RateGate>,
    ) -> Result<Directory, SetupError> {
        let mut authorization = HeaderValue::from_str(&format!("SSWS {}", settings.token.expose()))
            .map_err(|_| ConfigError("token: not usable in an HTTP header".into()))?;
        // Keeps the value out of HTTP/2 header compression tables.
        authorization.set_sensitive(true);
        Ok(Directory {
            inner: Arc::new(Inner {
                cache: Mutex::new(AnswerCache::new(settings.cache_entries)),
                settings,
                authorization,
                client,
                gate,
                counters: Counters::default(),
            }),
        })
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &DirectorySettings {
        &self.inner.settings
    }

    /// A fresh budget of `max_lookups_per_request` lookups, for one plugin call.
    pub fn request_budget(&self) -> RequestBudget {
        RequestBudget::new(self.inner.settings.max_lookups_per_request)
    }

    /// The counters so far.
    pub fn stats(&self) -> DirectoryStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DirectoryStats {
            lookups: get(&c.lookups),
            cache_hits: get(&c.cache_hits),
            okta_calls: get(&c.okta_calls),
            found: get(&c.found),
            free: get(&c.free),
            rate_limited: get(&c.rate_limited),
            budget_exhausted: get(&c.budget_exhausted),
            timed_out: get(&c.timed_out),
            unavailable: get(&c.unavailable),
            denied: get(&c.denied),
            rate_limit_pauses: get(&c.rate_limit_pauses),
        }
    }

    /// When Okta's rate limit lets lookups through again, if it does not now.
    pub fn rate_limited_until(&self) -> Option<Instant> {
        self.inner.gate.closed_until(Instant::now())
    }

    /// Logins cached now (found and free, expired ones not yet dropped included).
    pub fn cached_entries(&self) -> usize {
        lock(&self.inner.cache).len()
    }

    /// [`Directory::find_user`] within a plugin call's `budget`: if no lookup is left, answers
    /// [`DirectoryError::RateLimited`] without looking.
    pub async fn find_user_in(
        &self,
        login: &str,
        deadline: Instant,
        budget: &mut RequestBudget,
    ) -> Result<Option<String>, DirectoryError> {
        let c = &self.inner.counters;
        if !budget.try_take() {
            bump(&c.lookups);
            bump(&c.rate_limited);
            bump(&c.budget_exhausted);
            return Err(DirectoryError::RateLimited);
        }
        self.find_user(login, deadline).await
    }

    /// The id of the Okta user whose login is `login` (case-insensitively), `None` if no user has
    /// it; answered by `deadline` at the latest. See the module documentation for the steps.
    pub async fn find_user(
        &self,
        login: &str,
        deadline: Instant,
    ) -> Result<Option<String>, DirectoryError> {
        let c = &self.inner.counters;
        bump(&c.lookups);
        let result = self.lookup(login, deadline).await;
        match &result {
            Ok(Some(_)) => bump(&c.found),
            Ok(None) => bump(&c.free),
            Err(DirectoryError::RateLimited) => bump(&c.rate_limited),
            Err(DirectoryError::TimedOut) => bump(&c.timed_out),
            Err(DirectoryError::Unavailable(_)) => bump(&c.unavailable),
            Err(DirectoryError::Denied) => bump(&c.denied),
            Err(DirectoryError::NotConfigured) => {}
        }
        result
    }

    async fn lookup(
        &self,
        login: &str,
        deadline: Instant,
    ) -> Result<Option<String>, DirectoryError> {
        let inner = &*self.inner;
        let settings = &inner.settings;
        if login.is_empty() || login.len() > MAX_LOGIN_BYTES {
            return Ok(None);
        }
        let key = fold_login(login);
        let now = Instant::now();
        if let Some(answer) = lock(&inner.cache).get(&key, now) {
            bump(&inner.counters.cache_hits);
            return Ok(answer);
        }
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return Err(DirectoryError::TimedOut);
        };
        if inner.gate.closed_until(now).is_some() {
            return Err(DirectoryError::RateLimited);
        }
        let encoded = encode_path_segment(login);
        let url = format!("{}/api/v1/users/{encoded}", settings.url);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, inner.authorization.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("hookbox-directory/", env!("CARGO_PKG_VERSION"))),
        );
        let by_deadline = left <= settings.call_timeout;
        let timeout = left.min(settings.call_timeout);
        bump(&inner.counters.okta_calls);
        let scrub = |text: String| scrub(text, login, &encoded);
        let response = match inner.client.get(&url, &headers, timeout).await {
            Ok(r) => r,
            Err(FetchError::Timeout(_)) if by_deadline => return Err(DirectoryError::TimedOut),
            Err(FetchError::Timeout(t)) => {
                return Err(DirectoryError::Unavailable(format!(
                    "Okta did not answer within {t:?}"
                )));
            }
            Err(FetchError::InvalidUrl(_)) => {
                return Err(DirectoryError::Unavailable(
                    "the lookup URL is invalid".into(),
                ));
            }
            Err(FetchError::Transport(t)) => {
                return Err(DirectoryError::Unavailable(scrub(format!(
                    "Okta could not be reached: {t}"
                ))));
            }
            Err(e) => return Err(DirectoryError::Unavailable(scrub(e.to_string()))),
        };

        let status = response.status;
        let rate = RateHeaders::parse(&response.headers, SystemTime::now());
        if let Some(pause) = rate.pause(status == StatusCode::TOO_MANY_REQUESTS) {
            let now = Instant::now();
            if inner.gate.close_until(now + pause, now) {
                bump(&inner.counters.rate_limit_pauses);
                tracing::info!(
                    org = %settings.url,
                    status = status.as_u16(),
                    pause_ms = pause.as_millis() as u64,
                    "Okta's rate limit is spent: directory lookups answer rate-limited until its reset"
                );
            }
        }
        match status {
            StatusCode::OK => {
                let user: UserBody = serde_json::from_slice(&response.body).map_err(|_| {
                    DirectoryError::Unavailable("Okta's user answer is not a user object".into())
                })?;
                if user.id.is_empty() {
                    return Err(DirectoryError::Unavailable(
                        "Okta's user answer has no id".into(),
                    ));
                }
                let holder = match user.profile.and_then(|p| p.login) {
                    Some(found) if fold_login(&found) != key => None,
                    _ => Some(user.id),
                };
                let ttl = if holder.is_some() {
                    settings.found_ttl
                } else {
                    settings.free_ttl
                };
                lock(&inner.cache).insert(key, holder.clone(), ttl, Instant::now());
                Ok(holder)
            }
            StatusCode::NOT_FOUND => {
                lock(&inner.cache).insert(key, None, settings.free_ttl, Instant::now());
                Ok(None)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                tracing::warn!(
                    org = %settings.url,
                    status = status.as_u16(),
                    okta_error = okta_error_code(&response.body).as_deref().unwrap_or(""),
                    "Okta refused the tenant's directory credential: check its API token and its permissions"
                );
                Err(DirectoryError::Denied)
            }
            StatusCode::TOO_MANY_REQUESTS => Err(DirectoryError::RateLimited),
            _ => {
                let code = okta_error_code(&response.body)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                tracing::debug!(org = %settings.url, status = status.as_u16(), "unexpected answer from Okta's Users API");
                Err(DirectoryError::Unavailable(format!(
                    "Okta answered HTTP {}{code}",
                    status.as_u16()
                )))
            }
        }
    }
}

/// Okta's `errorCode` (`E0000011`…) from an error body, if it looks like one. Never the
/// `errorSummary`: it may quote the login.
fn okta_error_code(body: &[u8]) -> Option<String> {
    let code = serde_json::from_slice::<OktaErrorBody>(body)
        .ok()?
        .error_code?;
    let valid = code.len() <= 16
        && code.starts_with('E')
        && code.len() > 1
        && code[1..].bytes().all(|b| b.is_ascii_digit());
    valid.then_some(code)
}

/// `text` without the login (raw or encoded), in case a transport error quotes the URL.
fn scrub(text: String, login: &str, encoded: &str) -> String {
    let mut text = text;
    for needle in [encoded, login] {
        if !needle.is_empty() && text.contains(needle) {
            text = text.replace(needle, "<login>");
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert_eq!(encode_path_segment("ada@example.com"), "ada@example.com");
        assert_eq!(
            encode_path_segment("a/b?c#d%e+f g"),
            "a%2Fb%3Fc%23d%25e%2Bf%20g"
        );
        assert_eq!(encode_path_segment(".."), "%2E%2E");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn error_codes_and_scrub() {
        assert_eq!(
            okta_error_code(br#"{"errorCode":"E0000011","errorSummary":"x"}"#).as_deref(),
            Some("E0000011")
        );
        assert_eq!(okta_error_code(br#"{"errorCode":"ada@x.com"}"#), None);
        assert_eq!(okta_error_code(b"<html>"), None);
        assert_eq!(
            scrub("GET /users/a%2Fb failed for a/b".into(), "a/b", "a%2Fb"),
            "GET /users/<login> failed for <login>"
        );
        assert_eq!(DirectoryError::TimedOut.kind(), "timed-out");
    }

    #[test]
    fn budget() {
        let mut b = RequestBudget::new(2);
        assert!(b.try_take());
        assert!(b.try_take());
        assert!(!b.try_take());
        assert_eq!(b.remaining(), 0);
    }

    #[test]
    fn directory_is_send_sync_and_its_future_is_send() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Directory>();
        fn assert_send<T: Send>(_: &T) {}
        let settings = DirectorySettings::new(
            "https://example.okta.com",
            crate::config::ApiToken::parse("t", "test").unwrap(),
        );
        let d = Directory::with_client(settings, HttpsClient::new(None).unwrap()).unwrap();
        let mut budget = d.request_budget();
        let f = d.find_user_in("a", Instant::now(), &mut budget);
        assert_send(&f);
    }
}
