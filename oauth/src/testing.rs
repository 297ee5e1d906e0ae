//! A real OAuth 2.0 authorization server for tests (feature `test-support`): [`FakeIssuer`].
//!
//! It listens on `127.0.0.1:0` over HTTPS with a certificate signed by a CA made for it alone
//! ([`FakeIssuer::ca_pem`]), and serves, under the issuer path `/oauth2/default` as Okta does:
//! - `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`
//!   (metadata with `issuer` and `jwks_uri`; either can be switched off),
//! - `/v1/keys`, the JWKS (requests counted by [`FakeIssuer::fetch_count`]).
//!
//! Keys: EC P-256/P-384 keys are generated fresh (ring, through rcgen); RSA keys come from four
//! fixed 2048-bit test keys in `src/testing/` (neither ring nor a debug build of the `rsa` crate
//! generates RSA keys fast enough for a test), given out in turn. They are test keys only.
//!
//! Failure modes: [`FakeIssuer::set_down`] answers `503` to everything, [`FakeIssuer::set_stall`]
//! accepts requests and never answers them (until the issuer is dropped).
//!
//! Helpers panic on misuse (an unknown `kid`): they are for tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::OAuthConfig;
use crate::http::HttpsClient;

/// The audience [`FakeIssuer::claims`] puts in `aud` and [`FakeIssuer::config`] requires.
pub const AUDIENCE: &str = "api://default";
/// The `cid` of [`FakeIssuer::claims`].
pub const CLIENT_ID: &str = "0oa-hookbox-test";
/// The scope in `scp` of [`FakeIssuer::claims`].
pub const SCOPE: &str = "hookbox.import";

const ISSUER_PATH: &str = "/oauth2/default";

const RSA_FIXTURES: [&str; 4] = [
    include_str!("testing/rsa-1.pem"),
    include_str!("testing/rsa-2.pem"),
    include_str!("testing/rsa-3.pem"),
    include_str!("testing/rsa-4.pem"),
];

/// The kind of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, RS256 (Okta's choice).
    Rs256,
    /// RSA 2048, PS256.
    Ps256,
    /// EC P-256, ES256 (freshly generated).
    Es256,
    /// EC P-384, ES384 (freshly generated).
    Es384,
}

impl KeyKind {
    fn algorithm(self) -> Algorithm {
        match self {
            KeyKind::Rs256 => Algorithm::RS256,
            KeyKind::Ps256 => Algorithm::PS256,
            KeyKind::Es256 => Algorithm::ES256,
            KeyKind::Es384 => Algorithm::ES384,
        }
    }
}

/// How the fake issuer starts.
#[derive(Debug, Clone)]
pub struct FakeIssuerOptions {
    /// The first key's kind.
    pub key: KeyKind,
    /// Serve `/.well-known/oauth-authorization-server` (else `404`, to test the fallback).
    pub oauth_metadata: bool,
    /// Serve `/.well-known/openid-configuration`.
    pub openid_metadata: bool,
}

impl Default for FakeIssuerOptions {
    fn default() -> Self {
        FakeIssuerOptions {
            key: KeyKind::Rs256,
            oauth_metadata: true,
            openid_metadata: true,
        }
    }
}

/// The fake issuer could not start.
#[derive(Debug, thiserror::Error)]
#[error("fake issuer: {0}")]
pub struct FakeIssuerError(String);

struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    public_pem: String,
    jwk: Value,
    published: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Unavailable,
    Stall,
}

struct State {
    keys: Vec<SigningKey>,
    mode: Mode,
    oauth_metadata: bool,
    openid_metadata: bool,
    cache_control: Option<String>,
    next_rsa: usize,
    next_kid: u64,
}

struct Shared {
    issuer: String,
    state: Mutex<State>,
    jwks_fetches: AtomicU64,
    metadata_fetches: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A real HTTPS authorization server on loopback; see the module documentation. Stops when
/// dropped.
pub struct FakeIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    stop: watch::Sender<bool>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_key(kind: KeyKind, kid: String, next_rsa: &mut usize) -> SigningKey {
    let alg = kind.algorithm();
    let (private_pem, encoding) = match kind {
        KeyKind::Rs256 | KeyKind::Ps256 => {
            let pem = RSA_FIXTURES[*next_rsa % RSA_FIXTURES.len()].to_owned();
            *next_rsa += 1;
            let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA fixture");
            (pem, key)
        }
        KeyKind::Es256 | KeyKind::Es384 => {
            let rcgen_alg = if kind == KeyKind::Es256 {
                &rcgen::PKCS_ECDSA_P256_SHA256
            } else {
                &rcgen::PKCS_ECDSA_P384_SHA384
            };
            let pair = rcgen::KeyPair::generate_for(rcgen_alg).expect("EC key generation");
            let pem = pair.serialize_pem();
            let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC key");
            (pem, key)
        }
    };
    let public_pem = rcgen::KeyPair::from_pem(&private_pem)
        .expect("key pair")
        .public_key_pem();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).expect("JWK"))
        .expect("JWK JSON");
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    SigningKey {
        kid,
        alg,
        encoding,
        public_pem,
        jwk,
        published: true,
    }
}

impl FakeIssuer {
    /// Starts an issuer with one RS256 key and both metadata documents.
    pub async fn start() -> Result<FakeIssuer, FakeIssuerError> {
        FakeIssuer::start_with(FakeIssuerOptions::default()).await
    }

    /// Starts an issuer as `options` say.
    pub async fn start_with(options: FakeIssuerOptions) -> Result<FakeIssuer, FakeIssuerError> {
        let err = |what: &str, e: &dyn std::fmt::Display| FakeIssuerError(format!("{what}: {e}"));
        // A CA for this issuer alone, and its server certificate for 127.0.0.1.
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err("CA key", &e))?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| err("CA params", &e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookbox fake issuer CA");
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
        let mut next_rsa = 0;
        let first = new_key(options.key, format!("k0-{}", addr.port()), &mut next_rsa);
        let shared = Arc::new(Shared {
            issuer: format!("https://{addr}{ISSUER_PATH}"),
            state: Mutex::new(State {
                keys: vec![first],
                mode: Mode::Up,
                oauth_metadata: options.oauth_metadata,
                openid_metadata: options.openid_metadata,
                cache_control: None,
                next_rsa,
                next_kid: 1,
            }),
            jwks_fetches: AtomicU64::new(0),
            metadata_fetches: AtomicU64::new(0),
            shutdown: shutdown.clone(),
        });
        tokio::spawn(accept_loop(listener, acceptor, shared.clone(), shutdown));
        Ok(FakeIssuer {
            shared,
            addr,
            ca_pem: ca.pem(),
            stop,
        })
    }

    /// The issuer, `https://127.0.0.1:PORT/oauth2/default`.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/v1/keys", self.shared.issuer)
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// An HTTPS client trusting [`FakeIssuer::ca_pem`].
    pub fn client(&self) -> HttpsClient {
        HttpsClient::with_extra_ca_pem(self.ca_pem.as_bytes()).expect("the fake CA parses")
    }

    /// A configuration for this issuer requiring [`AUDIENCE`] (no `ca_file`: pair it with
    /// [`FakeIssuer::client`], or write [`FakeIssuer::ca_pem`] to a file).
    pub fn config(&self) -> OAuthConfig {
        OAuthConfig::new(self.issuer(), AUDIENCE)
    }

    /// Valid claims: `iss`, `aud` [`AUDIENCE`], `sub` and `cid` [`CLIENT_ID`], `scp`
    /// `[SCOPE]`, `iat`/`nbf` now, `exp` in 5 minutes.
    pub fn claims(&self) -> Value {
        let now = now();
        json!({
            "ver": 1,
            "jti": format!("AT.{now}"),
            "iss": self.issuer(),
            "aud": AUDIENCE,
            "sub": CLIENT_ID,
            "cid": CLIENT_ID,
            "scp": [SCOPE],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        })
    }

    /// The `kid` of the newest key.
    pub fn current_kid(&self) -> String {
        let state = self.shared.state();
        state.keys.last().map(|k| k.kid.clone()).expect("a key")
    }

    /// Adds and publishes a new key of `kind`; returns its `kid`.
    pub fn add_key(&self, kind: KeyKind) -> String {
        let mut state = self.shared.state();
        let kid = format!("k{}-{}", state.next_kid, self.addr.port());
        state.next_kid += 1;
        let key = new_key(kind, kid.clone(), &mut state.next_rsa);
        state.keys.push(key);
        kid
    }

    /// Key rotation: publishes a new key of the newest key's kind (the old keys stay published,
    /// as Okta does); returns the new `kid`.
    pub fn rotate(&self) -> String {
        let kind = {
            let state = self.shared.state();
            match state.keys.last().map(|k| k.alg) {
                Some(Algorithm::PS256) => KeyKind::Ps256,
                Some(Algorithm::ES256) => KeyKind::Es256,
                Some(Algorithm::ES384) => KeyKind::Es384,
                _ => KeyKind::Rs256,
            }
        };
        self.add_key(kind)
    }

    /// Stops publishing `kid` (tokens can still be minted with it).
    pub fn retire(&self, kid: &str) {
        let mut state = self.shared.state();
        for key in state.keys.iter_mut().filter(|k| k.kid == kid) {
            key.published = false;
        }
    }

    /// The public JWK of `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let state = self.shared.state();
        state
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.jwk.clone())
            .expect("known kid")
    }

    /// The public key of `kid` as PEM (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self, kid: &str) -> String {
        let state = self.shared.state();
        state
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.public_pem.clone())
            .expect("known kid")
    }

    /// A token with `claims`, signed with key `kid` and its algorithm.
    ///
    /// # Panics
    /// If `kid` is not one of this issuer's keys.
    pub fn mint(&self, claims: &Value, kid: &str) -> String {
        self.mint_as(claims, kid, kid)
    }

    /// A token signed with key `signing_kid` whose header names `header_kid` (a forged or
    /// unknown `kid`).
    ///
    /// # Panics
    /// If `signing_kid` is not one of this issuer's keys.
    pub fn mint_as(&self, claims: &Value, signing_kid: &str, header_kid: &str) -> String {
        let state = self.shared.state();
        let key = state
            .keys
            .iter()
            .find(|k| k.kid == signing_kid)
            .expect("known kid");
        let mut header = Header::new(key.alg);
        header.kid = Some(header_kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("signing")
    }

    /// Sets `Cache-Control` on the JWKS response (`None`: no header).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.shared.state().cache_control = value.map(str::to_owned);
    }

    /// Switches `/.well-known/oauth-authorization-server` on or off.
    pub fn set_oauth_metadata(&self, on: bool) {
        self.shared.state().oauth_metadata = on;
    }

    /// `true`: every request is answered `503`. `false`: back to normal.
    pub fn set_down(&self, down: bool) {
        self.shared.state().mode = if down { Mode::Unavailable } else { Mode::Up };
    }

    /// `true`: requests are accepted and never answered. `false`: back to normal (for new
    /// requests).
    pub fn set_stall(&self, stall: bool) {
        self.shared.state().mode = if stall { Mode::Stall } else { Mode::Up };
    }

    /// JWKS requests received (whatever was answered).
    pub fn fetch_count(&self) -> u64 {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Metadata requests received (both documents).
    pub fn metadata_fetch_count(&self) -> u64 {
        self.shared.metadata_fetches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A token with header `{"alg":"none","kid":kid}` and an empty signature.
pub fn alg_none_token(claims: &Value, kid: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// An HS256 token naming `kid`, signed with `secret` as the HMAC key (the classic attack uses
/// the issuer's public key, e.g. [`FakeIssuer::public_key_pem`], as the secret).
pub fn hs256_token(claims: &Value, kid: &str, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_secret(secret).expect("non-empty secret");
    jsonwebtoken::encode(&header, claims, &key).expect("signing")
}

/// `token` with one byte of its signature changed.
pub fn tamper_signature(token: &str) -> String {
    let (message, signature) = token.rsplit_once('.').expect("a JWT");
    let mut sig = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature");
    let mid = sig.len() / 2;
    sig[mid] ^= 0x01;
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
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

fn respond(
    status: StatusCode,
    body: Value,
    cache_control: Option<String>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = cache_control
        && let Ok(v) = hyper::header::HeaderValue::from_str(&cc)
    {
        response.headers_mut().insert(CACHE_CONTROL, v);
    }
    response
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(ISSUER_PATH).unwrap_or("");
    let (mode, enabled) = {
        let state = shared.state();
        let enabled = match rest {
            "/.well-known/oauth-authorization-server" => state.oauth_metadata,
            "/.well-known/openid-configuration" => state.openid_metadata,
            _ => true,
        };
        (state.mode, enabled)
    };
    let is_metadata = rest.starts_with("/.well-known/");
    if rest == "/v1/keys" {
        shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    } else if is_metadata {
        shared.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    }
    match mode {
        Mode::Up => {}
        Mode::Unavailable => {
            return Ok(respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable"}),
                None,
            ));
        }
        Mode::Stall => {
            let mut shutdown = shared.shutdown.clone();
            let _ = shutdown.changed().await;
            return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, json!({}), None));
        }
    }
    let issuer = shared.issuer.clone();
    Ok(match rest {
        _ if is_metadata && enabled => respond(
            StatusCode::OK,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/v1/authorize"),
                "token_endpoint": format!("{issuer}/v1/token"),
                "jwks_uri": format!("{issuer}/v1/keys"),
                "response_types_supported": ["code", "token"],
                "grant_types_supported": ["client_credentials"],
            }),
            None,
        ),
        "/v1/keys" => {
            let state = shared.state();
            let keys: Vec<Value> = state
                .keys
                .iter()
                .filter(|k| k.published)
                .map(|k| k.jwk.clone())
                .collect();
            respond(
                StatusCode::OK,
                json!({ "keys": keys }),
                state.cache_control.clone(),
            )
        }
        _ => respond(StatusCode::NOT_FOUND, json!({"error": "not_found"}), None),
    })
}
