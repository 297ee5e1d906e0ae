//! Bearer-token verification for one tenant: [`Verifier`], its key cache, and [`Rejection`].
//!
//! # Checks, in order
//!
//! 1. The header value is `Bearer <token>` (scheme case-insensitive) → else
//!    [`Rejection::MissingBearer`]; the token has three base64url parts and a JSON header with
//!    a `kid` → else [`Rejection::Malformed`].
//! 2. The header's `alg` is an asymmetric algorithm this crate supports: `none` and every `HS*`
//!    are refused before any key is looked at → [`Rejection::Algorithm`].
//! 3. The `kid` names a key of the issuer (refreshing the set once if it does not, see below) →
//!    else [`Rejection::UnknownKey`] (or [`Rejection::KeysUnavailable`] if the issuer cannot be
//!    reached).
//! 4. The key allows the header's `alg` (fixed by the key: RSA → RS*/PS*, P-256 → ES256,
//!    P-384 → ES384, or the JWK's own `alg`) → else [`Rejection::Algorithm`].
//! 5. The signature verifies with that key (`jsonwebtoken`, with exactly that one algorithm
//!    allowed) → else [`Rejection::Signature`].
//! 6. `exp` is present and not past (with the leeway) → else [`Rejection::Expired`]; `nbf`, when
//!    present, is not in the future (with the leeway) → else [`Rejection::NotYetValid`].
//! 7. `iss` equals the configured issuer exactly → else [`Rejection::Issuer`]; `aud` (a string or
//!    an array) contains the configured audience → else [`Rejection::Audience`].
//! 8. When configured: `cid` equals `client_id` → else [`Rejection::ClientId`]; the scope is in
//!    `scp` (array, or a space-separated string) or in a space-separated `scope` claim → else
//!    [`Rejection::Scope`].
//!
//! The claims are only looked at after the signature verified, so nothing an attacker writes in
//! an unsigned token influences more than which key is looked up.
//!
//! # Key cache and refresh
//!
//! - Keys are fetched when the verifier is built (a failure there is a [`SetupError`] naming the
//!   URL and the reason), by [`Verifier::refresh_now`] (reload), and lazily afterwards.
//! - A fetched set is used for its `Cache-Control: max-age`, clamped to 5 min .. 24 h (1 h when
//!   absent). A token whose key is known is never delayed by a refresh: once the set is past its
//!   lifetime, a refresh starts in the background and the token is verified with the cached key.
//! - A token naming an unknown `kid` triggers a refresh, at most one per `min_refresh_interval`
//!   (default 10 s); while a refresh is in flight every request that needs one waits for that
//!   same fetch (single flight), bounded by its own deadline. So a stream of tokens with forged
//!   `kid`s costs the issuer at most one fetch per interval.
//! - A failed refresh keeps the previous keys (an issuer outage does not stop tokens signed with
//!   known keys); [`Verifier::health`] then reports the failure.
//!
//! # Verified-token cache
//!
//! Okta reuses one access token for many hook calls until it expires, and a token's signature
//! and claims are the same on every call: what can change is the clock and the issuer's key
//! set. So a token that verified is remembered, by the SHA-256 of its text, with the key that
//! verified it and its `exp`: the same token again is accepted after checking only that `exp`
//! (with the leeway) has not passed and that the cached key set still holds that very key (a
//! refresh replaces every key, so every cached token is verified afresh once after it). Only
//! successes are cached (a forged token cannot fill it), at most [`TOKEN_CACHE_CAPACITY`]
//! tokens: when full, expired entries go, and if none has, the whole cache is dropped (a
//! bounded, simple policy; the next calls verify in full). The settings (issuer, audience,
//! client id, scope, leeway) cannot change under a cached token: new settings build a new
//! verifier.
//!
//! # 401 or 503
//!
//! Every rejection is `401` except [`Rejection::KeysUnavailable`], which is `503` with
//! `Retry-After`: the token may well be valid (signed with a key published while the issuer was
//! unreachable), and the fault is on our side of the call. Okta retries a hook call once on a
//! `5xx` and never on a `4xx`, so a `503` gives the import a second chance once the issuer is
//! back, where a `401` would make Okta give up on the hook for that user and fall back to its
//! default (creating a duplicate-login user or failing the row) silently. A `503` cannot be
//! abused to get a token accepted: nothing is accepted without a verified signature.
//!
//! # Bounded time
//!
//! [`Verifier::verify`] never waits longer than `fetch_timeout` (default 1 s, at most 2.5 s, well
//! under Okta's 3 s) and [`Verifier::verify_by`] than the caller's deadline: the fetch itself
//! runs in its own task bounded by `fetch_timeout`, so a request that stops waiting does not
//! cancel the refresh the next request will use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{ConfigError, OAuthConfig, OAuthSettings};
use crate::http::{ClientError, FetchError, HttpsClient};
use crate::keys::{JwksError, KeySet, VerifyKey, cache_ttl};

/// Longest token accepted, in bytes (Okta's access tokens are around 1 KB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Most verified tokens remembered at once (see the module docs).
pub const TOKEN_CACHE_CAPACITY: usize = 4096;

/// `Retry-After` sent with [`Rejection::KeysUnavailable`].
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a bearer token was refused. The `Display` form names the failed check and never contains
/// the token or any claim value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `Authorization: Bearer ...` value.
    #[error("no bearer token")]
    MissingBearer,
    /// The token is not a JWT this verifier can read (the detail says what is wrong).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `kid` is not one of the issuer's signing keys, even after a refresh.
    #[error("the token's key (kid) is not one of the issuer's signing keys")]
    UnknownKey,
    /// The algorithm is refused (`none`, `HS*`, unsupported, or not allowed by the key).
    #[error("algorithm refused: {0}")]
    Algorithm(&'static str),
    /// The signature does not verify.
    #[error("signature does not verify")]
    Signature,
    /// `exp` is missing or past (beyond the leeway).
    #[error("token expired (or has no exp)")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("wrong issuer (iss)")]
    Issuer,
    /// `aud` is missing or does not contain the configured audience.
    #[error("wrong audience (aud)")]
    Audience,
    /// `cid` is missing or not the configured client id.
    #[error("wrong client id (cid)")]
    ClientId,
    /// The configured scope is not granted (`scp` / `scope`).
    #[error("required scope missing (scp)")]
    Scope,
    /// The key is unknown and the issuer's keys could not be fetched in time: the token may be
    /// valid (answered `503`, see the module documentation).
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
}

impl Rejection {
    /// The HTTP status to answer: `503` for [`Rejection::KeysUnavailable`], `401` otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `Retry-After` to send, if any (with the `503`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::KeysUnavailable => Some(RETRY_AFTER),
            _ => None,
        }
    }

    /// A short stable name of the failed check, for logs and metric labels.
    pub fn check(&self) -> &'static str {
        match self {
            Rejection::MissingBearer => "bearer",
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownKey => "kid",
            Rejection::Algorithm(_) => "alg",
            Rejection::Signature => "signature",
            Rejection::Expired => "exp",
            Rejection::NotYetValid => "nbf",
            Rejection::Issuer => "iss",
            Rejection::Audience => "aud",
            Rejection::ClientId => "cid",
            Rejection::Scope => "scp",
            Rejection::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub` (for a client-credentials token, the client).
    pub sub: Option<String>,
    /// `cid`, Okta's client id claim.
    pub cid: Option<String>,
    /// The granted scopes (`scp`, and `scope` split on spaces).
    pub scopes: Vec<String>,
    /// `exp`.
    pub expires_at: SystemTime,
}

/// The verifier could not be set up; the message names what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTPS client could not be built (the CA file).
    #[error("oauth.ca_file: {0}")]
    Client(#[from] ClientError),
    /// No metadata document could be fetched.
    #[error("issuer metadata: {0}")]
    Discovery(String),
    /// A metadata document was fetched but is unusable.
    #[error("issuer metadata at {url}: {reason}")]
    Metadata {
        /// The document's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The JWKS could not be fetched.
    #[error("JWKS at {url}: {error}")]
    Jwks {
        /// The JWKS URL.
        url: String,
        /// Why.
        error: FetchError,
    },
    /// The JWKS was fetched but holds no usable key.
    #[error("JWKS at {url}: {error}")]
    Keys {
        /// The JWKS URL.
        url: String,
        /// Why.
        error: JwksError,
    },
}

/// What [`Verifier::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Number of usable keys cached.
    pub keys: usize,
    /// Whether the last JWKS fetch succeeded.
    pub last_fetch_ok: bool,
    /// The last fetch's error, if it failed.
    pub last_error: Option<String>,
    /// When keys were last fetched successfully.
    pub last_success: Option<SystemTime>,
    /// JWKS fetches attempted since the verifier was built (including the first).
    pub fetches: u64,
}

impl Health {
    /// Ready to verify: usable keys are cached. A failed refresh leaves the
    /// cached keys in use (tokens signed with them still verify; one with an
    /// unknown key is answered 503 until a fetch brings it), so it does not
    /// make the verifier unready: [`Health::last_fetch_ok`] and
    /// [`Health::last_error`] report it.
    pub fn is_ready(&self) -> bool {
        self.keys > 0
    }
}

/// A summary of one cached key, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `kid`.
    pub kid: String,
    /// `RSA` or `EC`.
    pub kty: &'static str,
    /// Algorithms the key verifies, e.g. `RS256`.
    pub algorithms: Vec<String>,
}

struct KeyState {
    keys: Arc<HashMap<String, Arc<VerifyKey>>>,
    skipped: Arc<Vec<(String, String)>>,
    expires_at: Instant,
    last_ok: bool,
    last_error: Option<String>,
    last_success: Option<SystemTime>,
}

#[derive(Default)]
struct Gate {
    /// A fetch task is running.
    inflight: bool,
    /// Start of the last rate-limited (unknown-kid or background) refresh.
    last_limited: Option<Instant>,
}

struct Inner {
    settings: OAuthSettings,
    client: HttpsClient,
    metadata_url: Option<String>,
    jwks_uri: String,
    state: ArcSwap<KeyState>,
    gate: Mutex<Gate>,
    /// Bumped after every fetch attempt; waiters watch it.
    attempts: watch::Sender<u64>,
    fetches: AtomicU64,
    /// JWKS fetches that ended in new keys (the first included), and that failed.
    fetched_ok: AtomicU64,
    fetch_failed: AtomicU64,
    validations: Vec<(Algorithm, Validation)>,
    /// Tokens that verified, by SHA-256 of the token (see the module docs).
    verified: Mutex<HashMap<[u8; 32], CachedToken>>,
}

/// A token that verified: the key that verified it, its `exp`, and what it said.
struct CachedToken {
    kid: String,
    key: Arc<VerifyKey>,
    exp: f64,
    token: VerifiedToken,
}

/// Verifies bearer tokens for one tenant. Cheap to clone (shared state); `Send + Sync`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.settings.issuer)
            .field("jwks_uri", &self.inner.jwks_uri)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    cid: Option<Value>,
    #[serde(default)]
    scp: Option<Value>,
    #[serde(default)]
    scope: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

/// The token of an `Authorization` header value: `Bearer <token>`, scheme case-insensitive.
pub fn bearer_token(authorization: &str) -> Result<&str, Rejection> {
    let value = authorization.trim();
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::MissingBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::MissingBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Rejection::MissingBearer);
    }
    Ok(token)
}

/// Reads the header's `alg` and `kid` without trusting anything else in the token.
fn peek_header(token: &str) -> Result<(Algorithm, String), Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::Malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed("not three dot-separated parts"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Rejection::Malformed("header is not base64url"))?;
    let raw: RawHeader =
        serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed("header is not JSON"))?;
    let alg = raw.alg.ok_or(Rejection::Malformed("header has no alg"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(Rejection::Algorithm("alg none"));
    }
    if alg.to_ascii_uppercase().starts_with("HS") {
        return Err(Rejection::Algorithm("HMAC (HS*) is never accepted"));
    }
    let alg: Algorithm = alg
        .parse()
        .map_err(|_| Rejection::Algorithm("unsupported alg"))?;
    let kid = raw
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(Rejection::Malformed("header has no kid"))?;
    Ok((alg, kid))
}

fn map_jwt_error(kind: &ErrorKind) -> Rejection {
    let by_claim = |claim: &str| match claim {
        "exp" => Rejection::Expired,
        "nbf" => Rejection::NotYetValid,
        "iss" => Rejection::Issuer,
        "aud" => Rejection::Audience,
        _ => Rejection::Malformed("claim of the wrong type"),
    };
    match kind {
        ErrorKind::InvalidSignature => Rejection::Signature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidIssuer => Rejection::Issuer,
        ErrorKind::InvalidAudience => Rejection::Audience,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => by_claim(c),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            Rejection::Algorithm("not allowed by the key")
        }
        ErrorKind::UnsupportedAlgorithm | ErrorKind::InvalidAlgorithmName => {
            Rejection::Algorithm("unsupported alg")
        }
        // A key the crypto backend cannot use: nothing verifies with it.
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_) => Rejection::Signature,
        _ => Rejection::Malformed("undecodable token"),
    }
}

fn scopes_of(claims: &Claims) -> Vec<String> {
    let mut scopes = Vec::new();
    let mut add_str =
        |s: &str| scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(String::from));
    match &claims.scp {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .for_each(&mut add_str),
        Some(Value::String(s)) => add_str(s),
        _ => {}
    }
    if let Some(Value::String(s)) = &claims.scope {
        add_str(s);
    }
    scopes
}

fn string_claim(v: &Option<Value>) -> Option<String> {
    v.as_ref().and_then(Value::as_str).map(str::to_owned)
}

impl Verifier {
    /// Validates `config`, builds an HTTPS client trusting its `ca_file`, and calls
    /// [`Verifier::new`].
    pub async fn from_config(config: &OAuthConfig) -> Result<Verifier, SetupError> {
        let settings = config.validate()?;
        let client = HttpsClient::new(settings.ca_file.as_deref())?;
        Verifier::new(settings, client).await
    }

    /// Discovers the JWKS URL (unless configured) and fetches the keys; fails with the step
    /// that failed. `client` is used for every later fetch.
    pub async fn new(settings: OAuthSettings, client: HttpsClient) -> Result<Verifier, SetupError> {
        let (metadata_url, jwks_uri) = match &settings.jwks_uri {
            Some(uri) => (None, uri.to_string()),
            None => {
                let (url, jwks) = discover(&settings, &client).await?;
                (Some(url), jwks)
            }
        };
        let fetches = AtomicU64::new(1);
        let (set, ttl) = fetch_keys(&client, &jwks_uri, settings.fetch_timeout).await?;
        tracing::info!(
            issuer = %settings.issuer,
            jwks_uri = %jwks_uri,
            keys = set.keys.len(),
            skipped = set.skipped.len(),
            "oauth keys fetched"
        );
        let state = KeyState {
            keys: Arc::new(set.keys),
            skipped: Arc::new(set.skipped),
            expires_at: Instant::now() + ttl,
            last_ok: true,
            last_error: None,
            last_success: Some(SystemTime::now()),
        };
        let validations = ALGORITHMS
            .iter()
            .map(|alg| (*alg, validation_for(*alg, &settings)))
            .collect();
        Ok(Verifier {
            inner: Arc::new(Inner {
                settings,
                client,
                metadata_url,
                jwks_uri,
                state: ArcSwap::from_pointee(state),
                gate: Mutex::new(Gate::default()),
                attempts: watch::Sender::new(0),
                fetches,
                fetched_ok: AtomicU64::new(1),
                fetch_failed: AtomicU64::new(0),
                validations,
                verified: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The validated settings.
    pub fn settings(&self) -> &OAuthSettings {
        &self.inner.settings
    }

    /// The JWKS URL in use.
    pub fn jwks_uri(&self) -> &str {
        &self.inner.jwks_uri
    }

    /// The metadata document the JWKS URL came from (`None` when `jwks_uri` is configured).
    pub fn metadata_url(&self) -> Option<&str> {
        self.inner.metadata_url.as_deref()
    }

    /// JWKS fetches attempted since the verifier was built (including the first).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Finished JWKS fetches since the verifier was built: `(succeeded,
    /// failed)`, the first fetch (which succeeded, or there would be no
    /// verifier) included; a fetch in flight is in neither. For metrics.
    pub fn fetch_outcomes(&self) -> (u64, u64) {
        (
            self.inner.fetched_ok.load(Ordering::Relaxed),
            self.inner.fetch_failed.load(Ordering::Relaxed),
        )
    }

    /// Whether `self` and `other` are clones of one verifier (the same keys,
    /// counts and refresh state), e.g. one a reload kept.
    pub fn same_as(&self, other: &Verifier) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The cached keys, sorted by `kid`.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let state = self.inner.state.load();
        let mut keys: Vec<KeyInfo> = state
            .keys
            .values()
            .map(|k| KeyInfo {
                kid: k.kid.clone(),
                kty: k.kty,
                algorithms: k.algorithms.iter().map(|a| format!("{a:?}")).collect(),
            })
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        keys
    }

    /// JWKs of the last successful fetch that were skipped: (`kid`, why).
    pub fn skipped_keys(&self) -> Vec<(String, String)> {
        self.inner.state.load().skipped.as_ref().clone()
    }

    /// Keys present and last fetch ok; see [`Health`].
    pub fn health(&self) -> Health {
        let state = self.inner.state.load();
        Health {
            keys: state.keys.len(),
            last_fetch_ok: state.last_ok,
            last_error: state.last_error.clone(),
            last_success: state.last_success,
            fetches: self.fetch_count(),
        }
    }

    /// Fetches the keys now, not rate-limited (for a reload); returns the number of usable keys.
    /// On failure ([`SetupError::Jwks`] or [`SetupError::Keys`]) the previous keys stay in use.
    pub async fn refresh_now(&self) -> Result<usize, SetupError> {
        // Wait for a fetch in flight, then run one of our own (a reload wants a fresh answer).
        loop {
            let mut rx = self.inner.attempts.subscribe();
            let started = {
                let mut gate = lock(&self.inner.gate);
                if gate.inflight {
                    false
                } else {
                    gate.inflight = true;
                    true
                }
            };
            if started {
                let task = tokio::spawn(Inner::fetch_task(self.inner.clone()));
                return match task.await {
                    Ok(result) => result,
                    Err(e) => Err(SetupError::Jwks {
                        url: self.inner.jwks_uri.clone(),
                        error: FetchError::Transport(format!("refresh task: {e}")),
                    }),
                };
            }
            if rx.changed().await.is_err() {
                return Err(SetupError::Jwks {
                    url: self.inner.jwks_uri.clone(),
                    error: FetchError::Transport("refresh abandoned".into()),
                });
            }
        }
    }

    /// Verifies an `Authorization` header value, waiting at most `fetch_timeout` for keys.
    pub async fn verify(&self, authorization: &str) -> Result<VerifiedToken, Rejection> {
        let deadline = Instant::now() + self.inner.settings.fetch_timeout;
        self.verify_by(authorization, deadline).await
    }

    /// Verifies an `Authorization` header value; if the keys must be fetched, waits until
    /// `deadline` at most (then [`Rejection::KeysUnavailable`]).
    pub async fn verify_by(
        &self,
        authorization: &str,
        deadline: Instant,
    ) -> Result<VerifiedToken, Rejection> {
        let token = bearer_token(authorization)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.cached(&digest) {
            return Ok(verified);
        }
        let (alg, kid) = peek_header(token)?;
        let key = self.key(&kid, deadline).await?;
        if !key.algorithms.contains(&alg) {
            return Err(Rejection::Algorithm("not allowed by the key"));
        }
        let validation = self
            .inner
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
            .ok_or(Rejection::Algorithm("unsupported alg"))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let claims = data.claims;
        let settings = &self.inner.settings;
        let cid = string_claim(&claims.cid);
        if let Some(want) = &settings.client_id
            && cid.as_deref() != Some(want.as_str())
        {
            return Err(Rejection::ClientId);
        }
        let scopes = scopes_of(&claims);
        if let Some(want) = &settings.scope
            && !scopes.iter().any(|s| s == want)
        {
            return Err(Rejection::Scope);
        }
        let exp = claims
            .exp
            .as_ref()
            .and_then(Value::as_f64)
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or(Rejection::Expired)?;
        let verified = VerifiedToken {
            sub: string_claim(&claims.sub),
            cid,
            scopes,
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp),
        };
        self.remember(digest, kid, key, exp, verified.clone());
        Ok(verified)
    }

    /// The cached verdict of the token with this digest, if it still holds: not expired (with
    /// the leeway), and its key is still the cached key of its `kid`.
    fn cached(&self, digest: &[u8; 32]) -> Option<VerifiedToken> {
        let mut cache = lock(&self.inner.verified);
        let entry = cache.get(digest)?;
        let leeway = self.inner.settings.leeway.as_secs_f64();
        let state = self.inner.state.load();
        let fresh = unix_now() <= entry.exp + leeway;
        let same_key = state
            .keys
            .get(&entry.kid)
            .is_some_and(|k| Arc::ptr_eq(k, &entry.key));
        if fresh && same_key {
            if Instant::now() >= state.expires_at {
                // As for a known key: the routine refresh runs in the background.
                self.inner.start_limited_refresh();
            }
            Some(entry.token.clone())
        } else {
            // Verified in full from now on (and refused, if it is expired).
            cache.remove(digest);
            None
        }
    }

    fn remember(
        &self,
        digest: [u8; 32],
        kid: String,
        key: Arc<VerifyKey>,
        exp: f64,
        token: VerifiedToken,
    ) {
        let mut cache = lock(&self.inner.verified);
        if cache.len() >= TOKEN_CACHE_CAPACITY {
            let leeway = self.inner.settings.leeway.as_secs_f64();
            let now = unix_now();
            cache.retain(|_, e| now <= e.exp + leeway);
            if cache.len() >= TOKEN_CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            digest,
            CachedToken {
                kid,
                key,
                exp,
                token,
            },
        );
    }

    /// Tokens in the verified-token cache right now.
    pub fn cached_tokens(&self) -> usize {
        lock(&self.inner.verified).len()
    }

    /// The key named `kid`: from the cache, or after one (rate-limited, shared) refresh.
    async fn key(&self, kid: &str, deadline: Instant) -> Result<Arc<VerifyKey>, Rejection> {
        let inner = &self.inner;
        let state = inner.state.load();
        if let Some(key) = state.keys.get(kid) {
            if Instant::now() >= state.expires_at {
                inner.start_limited_refresh();
            }
            return Ok(key.clone());
        }
        let unknown = |state: &KeyState| {
            if state.last_ok {
                Rejection::UnknownKey
            } else {
                Rejection::KeysUnavailable
            }
        };
        let mut rx = inner.attempts.subscribe();
        rx.borrow_and_update();
        match inner.start_limited_refresh() {
            Refresh::Limited => {
                // A fetch may have finished since the first look.
                let state = inner.state.load();
                return state.keys.get(kid).cloned().ok_or_else(|| unknown(&state));
            }
            Refresh::Started | Refresh::InFlight => {}
        }
        drop(state);
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            tracing::warn!(issuer = %inner.settings.issuer, "oauth keys: no answer from the issuer within the request deadline");
            return Err(Rejection::KeysUnavailable);
        }
        let state = inner.state.load();
        state.keys.get(kid).cloned().ok_or_else(|| unknown(&state))
    }
}

enum Refresh {
    Started,
    InFlight,
    Limited,
}

/// Every algorithm a key may allow (see [`crate::keys`]).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

fn validation_for(alg: Algorithm, settings: &OAuthSettings) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = settings.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[settings.issuer.as_str()]);
    v.set_audience(&[settings.audience.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The gate holds two plain values and the token cache whole entries, each changed in one
    // statement: a panic elsewhere cannot leave either inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Marks the fetch finished and wakes the waiters even if the task is cancelled or panics.
struct InflightGuard(Arc<Inner>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        lock(&self.0.gate).inflight = false;
        self.0.attempts.send_modify(|n| *n += 1);
    }
}

impl Inner {
    /// Starts a rate-limited refresh unless one is in flight or the interval has not passed.
    fn start_limited_refresh(self: &Arc<Self>) -> Refresh {
        {
            let mut gate = lock(&self.gate);
            if gate.inflight {
                return Refresh::InFlight;
            }
            let now = Instant::now();
            if gate
                .last_limited
                .is_some_and(|t| now.duration_since(t) < self.settings.min_refresh_interval)
            {
                return Refresh::Limited;
            }
            gate.last_limited = Some(now);
            gate.inflight = true;
        }
        tokio::spawn(Inner::fetch_task(self.clone()));
        Refresh::Started
    }

    /// One fetch; the caller has set `inflight`.
    async fn fetch_task(self: Arc<Self>) -> Result<usize, SetupError> {
        let guard = InflightGuard(self.clone());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = fetch_keys(&self.client, &self.jwks_uri, self.settings.fetch_timeout).await;
        let old = self.state.load_full();
        let outcome = match result {
            Ok((set, ttl)) => {
                let n = set.keys.len();
                tracing::info!(issuer = %self.settings.issuer, keys = n, "oauth keys refreshed");
                self.state.store(Arc::new(KeyState {
                    keys: Arc::new(set.keys),
                    skipped: Arc::new(set.skipped),
                    expires_at: Instant::now() + ttl,
                    last_ok: true,
                    last_error: None,
                    last_success: Some(SystemTime::now()),
                }));
                self.fetched_ok.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(error) => {
                let text = match &error {
                    SetupError::Jwks { error, .. } => error.to_string(),
                    SetupError::Keys { error, .. } => error.to_string(),
                    other => other.to_string(),
                };
                tracing::warn!(
                    issuer = %self.settings.issuer,
                    jwks_uri = %self.jwks_uri,
                    error = %text,
                    "oauth keys refresh failed; keeping the previous keys"
                );
                self.state.store(Arc::new(KeyState {
                    keys: old.keys.clone(),
                    skipped: old.skipped.clone(),
                    expires_at: old.expires_at,
                    last_ok: false,
                    last_error: Some(text),
                    last_success: old.last_success,
                }));
                self.fetch_failed.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        };
        drop(guard);
        outcome
    }
}

async fn fetch_keys(
    client: &HttpsClient,
    url: &str,
    timeout: Duration,
) -> Result<(KeySet, Duration), SetupError> {
    let (doc, headers) = client
        .get_json(url, timeout)
        .await
        .map_err(|error| SetupError::Jwks {
            url: url.to_owned(),
            error,
        })?;
    let set = KeySet::from_jwks(&doc).map_err(|error| SetupError::Keys {
        url: url.to_owned(),
        error,
    })?;
    Ok((set, cache_ttl(&headers)))
}

/// The metadata URL that answered and its `jwks_uri`.
async fn discover(
    settings: &OAuthSettings,
    client: &HttpsClient,
) -> Result<(String, String), SetupError> {
    let mut failures = Vec::new();
    for url in settings.discovery_urls() {
        match client.get_json(&url, settings.fetch_timeout).await {
            Ok((doc, _)) => {
                // RFC 8414 §3.3: the document's issuer must be the one we asked about, or a
                // server could point us at another issuer's keys.
                let issuer = doc.get("issuer").and_then(Value::as_str);
                if issuer != Some(settings.issuer.as_str()) {
                    return Err(SetupError::Metadata {
                        url,
                        reason: format!(
                            "its issuer {issuer:?} is not the configured {:?}",
                            settings.issuer
                        ),
                    });
                }
                let jwks = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
                    SetupError::Metadata {
                        url: url.clone(),
                        reason: "no jwks_uri".into(),
                    }
                })?;
                crate::config::https_uri("jwks_uri", jwks).map_err(|e| SetupError::Metadata {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                return Ok((url, jwks.to_owned()));
            }
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(SetupError::Discovery(failures.join("; ")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn verifier_is_send_sync_and_cheap_to_clone() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Verifier>();
        shared::<HttpsClient>();
    }

    #[test]
    fn bearer_syntax() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer   abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(Rejection::MissingBearer));
        assert_eq!(bearer_token("Bearer "), Err(Rejection::MissingBearer));
        assert_eq!(bearer_token("abc"), Err(Rejection::MissingBearer));
    }

    #[test]
    fn header_algorithms() {
        let token = |h: &str| format!("{}.{}.sig", b64(h), b64("{}"));
        for (h, want) in [
            (r#"{"alg":"none","kid":"k"}"#, "alg none"),
            (r#"{"alg":"None","kid":"k"}"#, "alg none"),
            (
                r#"{"alg":"HS256","kid":"k"}"#,
                "HMAC (HS*) is never accepted",
            ),
            (
                r#"{"alg":"hs512","kid":"k"}"#,
                "HMAC (HS*) is never accepted",
            ),
            (r#"{"alg":"XY1","kid":"k"}"#, "unsupported alg"),
        ] {
            assert_eq!(
                peek_header(&token(h)),
                Err(Rejection::Algorithm(want)),
                "{h}"
            );
        }
        assert_eq!(
            peek_header(&token(r#"{"alg":"RS256","kid":"k"}"#)),
            Ok((Algorithm::RS256, "k".into()))
        );
        assert!(matches!(
            peek_header(&token(r#"{"alg":"RS256"}"#)),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(peek_header("a.b"), Err(Rejection::Malformed(_))));
        assert!(matches!(
            peek_header("a.b.c.d"),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            peek_header("!!.b.c"),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn statuses_and_display_never_carry_data() {
        assert_eq!(
            Rejection::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(Rejection::KeysUnavailable.retry_after(), Some(RETRY_AFTER));
        for r in [
            Rejection::MissingBearer,
            Rejection::UnknownKey,
            Rejection::Signature,
            Rejection::Expired,
            Rejection::Scope,
        ] {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(r.retry_after(), None);
        }
    }

    #[test]
    fn scopes_from_array_string_and_scope() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "scp": ["a", "b c"], "scope": "d e"
        }))
        .unwrap();
        assert_eq!(scopes_of(&claims), ["a", "b", "c", "d", "e"]);
        let claims: Claims = serde_json::from_value(serde_json::json!({"scp": "x y"})).unwrap();
        assert_eq!(scopes_of(&claims), ["x", "y"]);
        let claims: Claims = serde_json::from_value(serde_json::json!({"scp": 3})).unwrap();
        assert!(scopes_of(&claims).is_empty());
    }
}
