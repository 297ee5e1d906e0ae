//! A real Okta Users API for tests (feature `test-support`): [`FakeOkta`].
//!
//! It listens on `127.0.0.1:0` over HTTPS with a certificate signed by a CA made for it alone
//! ([`FakeOkta::ca_pem`]), and answers `GET /api/v1/users/{id-or-login}` as Okta does:
//! - the `Authorization` header must be `SSWS <token>` ([`FakeOkta::token`]), else `401` with
//!   Okta's error body (`E0000011`, "Invalid token provided");
//! - a seeded user ([`FakeOkta::add_user`]) is found by its login, case-insensitively, or by its
//!   id: `200` with `id`, `status` and `profile.login`; anything else is `404` (`E0000007`);
//! - every answer past authentication carries `X-Rate-Limit-Limit`, `-Remaining` and `-Reset`
//!   (epoch seconds). The window holds [`DEFAULT_LIMIT`] calls per minute unless
//!   [`FakeOkta::set_rate_limit`] says otherwise; a spent window answers `429` (`E0000047`) until
//!   its reset, then refills. [`FakeOkta::set_429_until`] answers `429` to everything until then.
//!
//! Failure modes: [`FakeOkta::set_down`] answers `503`; [`FakeOkta::set_delay`] holds every
//! answer back (until the fake is dropped at the latest).
//!
//! Every request to the Users API is counted, in total ([`FakeOkta::request_count`]) and per
//! looked-up login or id, case-folded ([`FakeOkta::requests_for`]), whatever was answered.
//!
//! Helpers panic on misuse: they are for tests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hookbox_oauth::http::HttpsClient;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{ApiToken, DirectoryConfig, DirectorySettings};
use crate::directory::{Directory, fold_login};

/// The API token [`FakeOkta`] expects unless [`FakeOkta::set_token`] changes it.
pub const TOKEN: &str = "00fAkE-oKtA_ApI-tOkEn-0123456789abcdef";
/// Calls per one-minute window by default (high: tests of many imports must not hit it).
pub const DEFAULT_LIMIT: u64 = 100_000;

/// The current time in epoch seconds (for [`FakeOkta::set_rate_limit`] and friends).
pub fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The fake could not start.
#[derive(Debug, thiserror::Error)]
#[error("fake Okta: {0}")]
pub struct FakeOktaError(String);

struct Window {
    limit: u64,
    remaining: u64,
    reset: u64,
}

struct State {
    token: String,
    /// Case-folded login → (login as seeded, id).
    users: HashMap<String, (String, String)>,
    window: Window,
    too_many_until: u64,
    down: bool,
    delay: Duration,
    per_path: HashMap<String, u64>,
}

struct Shared {
    state: Mutex<State>,
    requests: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A real HTTPS Okta Users API on loopback; see the module documentation. Stops when dropped.
pub struct FakeOkta {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    stop: watch::Sender<bool>,
}

impl FakeOkta {
    /// Starts a fake org with no users, expecting [`TOKEN`].
    pub async fn start() -> Result<FakeOkta, FakeOktaError> {
        let err = |what: &str, e: &dyn std::fmt::Display| FakeOktaError(format!("{what}: {e}"));
        // A CA for this fake alone, and its server certificate for 127.0.0.1.
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err("CA key", &e))?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| err("CA params", &e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookbox fake Okta CA");
        let ca = ca_params
            .self_signed(&ca_key)
            .map_err(|e| err("CA cert", &e))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| err("server key", &e))?;
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .map_err(|e| err("server params", &e))?
            .signed_by(&leaf_key, &ca, &ca_key)
            .map_err(|e| err("server cert", &e))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS", &e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .map_err(|e| err("TLS", &e))?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| err("bind", &e))?;
        let addr = listener.local_addr().map_err(|e| err("bind", &e))?;
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                token: TOKEN.to_owned(),
                users: HashMap::new(),
                window: Window {
                    limit: DEFAULT_LIMIT,
                    remaining: DEFAULT_LIMIT,
                    reset: epoch_now() + 60,
                },
                too_many_until: 0,
                down: false,
                delay: Duration::ZERO,
                per_path: HashMap::new(),
            }),
            requests: AtomicU64::new(0),
            shutdown: shutdown.clone(),
        });
        tokio::spawn(accept_loop(listener, acceptor, shared.clone(), shutdown));
        Ok(FakeOkta {
            shared,
            addr,
            ca_pem: ca.pem(),
            stop,
        })
    }

    /// The org URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// An HTTPS client trusting [`FakeOkta::ca_pem`].
    pub fn client(&self) -> HttpsClient {
        HttpsClient::with_extra_ca_pem(self.ca_pem.as_bytes()).expect("the fake CA parses")
    }

    /// The token it expects now.
    pub fn token(&self) -> String {
        self.shared.state().token.clone()
    }

    /// Expects `token` from now on (the old one gets `401`).
    pub fn set_token(&self, token: &str) {
        self.shared.state().token = token.to_owned();
    }

    /// Settings for this org with the expected token and every default.
    pub fn settings(&self) -> DirectorySettings {
        let token = ApiToken::parse(&self.token(), "fake").expect("a valid token");
        DirectorySettings::new(self.url(), token)
    }

    /// A directory for `settings` trusting this fake's CA.
    pub fn directory_with(&self, settings: DirectorySettings) -> Directory {
        Directory::with_client(settings, self.client()).expect("a directory")
    }

    /// A directory for [`FakeOkta::settings`] trusting this fake's CA.
    pub fn directory(&self) -> Directory {
        self.directory_with(self.settings())
    }

    /// Writes the expected token and the CA into `dir` (`okta-token`, `okta-ca.pem`) and returns
    /// a configuration using them (`token_file`, `ca_file`), as a host's tenant would have.
    pub fn config_in(&self, dir: &Path) -> DirectoryConfig {
        let token_file = dir.join("okta-token");
        let ca_file = dir.join("okta-ca.pem");
        std::fs::write(&token_file, format!("{}\n", self.token())).expect("writing the token");
        std::fs::write(&ca_file, &self.ca_pem).expect("writing the CA");
        DirectoryConfig {
            ca_file: Some(ca_file),
            ..DirectoryConfig::with_token_file(self.url(), token_file)
        }
    }

    /// Seeds a user: `login` (found case-insensitively) held by `id` (`00u…`).
    pub fn add_user(&self, login: &str, id: &str) {
        self.shared
            .state()
            .users
            .insert(fold_login(login), (login.to_owned(), id.to_owned()));
    }

    /// Removes the user with `login`.
    pub fn remove_user(&self, login: &str) {
        self.shared.state().users.remove(&fold_login(login));
    }

    /// The current window: `remaining` calls until `reset` (epoch seconds); then it refills to
    /// the limit for a minute. With `remaining = 1`, the next call answers with `Remaining: 0`.
    pub fn set_rate_limit(&self, remaining: u64, reset: u64) {
        let mut state = self.shared.state();
        state.window.remaining = remaining;
        state.window.reset = reset;
    }

    /// Answers `429` (with `X-Rate-Limit-Reset: until`) to every call until `until` (epoch
    /// seconds).
    pub fn set_429_until(&self, until: u64) {
        self.shared.state().too_many_until = until;
    }

    /// `true`: every call is answered `503`. `false`: back to normal.
    pub fn set_down(&self, down: bool) {
        self.shared.state().down = down;
    }

    /// Holds every answer back by `delay` (zero: answers at once).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state().delay = delay;
    }

    /// Requests received by the Users API, whatever was answered.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests received for `login_or_id` (compared case-folded, after percent-decoding).
    pub fn requests_for(&self, login_or_id: &str) -> u64 {
        self.shared
            .state()
            .per_path
            .get(&fold_login(login_or_id))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FakeOkta {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |req| handle(shared.clone(), req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                _ = conn => {}
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": "oaeFakeOktaErrorId",
            "errorCauses": [],
        }),
    )
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn with_rate_headers(
    mut response: Response<Full<Bytes>>,
    limit: u64,
    remaining: u64,
    reset: u64,
) -> Response<Full<Bytes>> {
    let h = response.headers_mut();
    h.insert("x-rate-limit-limit", HeaderValue::from(limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
    response
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(segment) = req.uri().path().strip_prefix("/api/v1/users/") else {
        return Ok(okta_error(
            StatusCode::NOT_FOUND,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
        ));
    };
    let wanted = fold_login(&percent_decode(segment));
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let delay = {
        let mut state = shared.state();
        *state.per_path.entry(wanted.clone()).or_default() += 1;
        state.delay
    };
    if !delay.is_zero() {
        let mut shutdown = shared.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let now = epoch_now();
    let mut state = shared.state();
    if state.down {
        return Ok(okta_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "E0000010",
            "Service is in read only mode",
        ));
    }
    if authorization != format!("SSWS {}", state.token) {
        return Ok(okta_error(
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        ));
    }
    let limit = state.window.limit;
    if now < state.too_many_until {
        let until = state.too_many_until;
        return Ok(with_rate_headers(
            okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ),
            limit,
            0,
            until,
        ));
    }
    if now >= state.window.reset {
        state.window.remaining = limit;
        state.window.reset = now + 60;
    }
    let reset = state.window.reset;
    if state.window.remaining == 0 {
        return Ok(with_rate_headers(
            okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ),
            limit,
            0,
            reset,
        ));
    }
    state.window.remaining -= 1;
    let remaining = state.window.remaining;
    let user = state
        .users
        .get(&wanted)
        .or_else(|| {
            state
                .users
                .values()
                .find(|(_, id)| fold_login(id) == wanted)
        })
        .cloned();
    drop(state);
    let response = match user {
        Some((login, id)) => respond(
            StatusCode::OK,
            json!({
                "id": id,
                "status": "ACTIVE",
                "created": "2024-01-01T00:00:00.000Z",
                "profile": { "login": login, "email": login },
                "_links": {},
            }),
        ),
        None => okta_error(
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {wanted} (User)"),
        ),
    };
    Ok(with_rate_headers(response, limit, remaining, reset))
}
