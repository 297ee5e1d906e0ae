//! Support for hookbox's end-to-end tests: a test CA, the real server started
//! on `127.0.0.1:0` from a real config file, and an HTTPS client (HTTP/1.1
//! and HTTP/2) that trusts only that CA.
//!
//! The wasm guests are built from source by `build.rs`, once per build.

#![allow(clippy::unwrap_used)] // test support: a failed setup step should stop the test loudly

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use hookbox::App;
use hookbox::config::{Config, Overrides};
use hookbox::plugin::cache::CacheStats;
use hookbox::reload::{ReloadReport, Reloader};
use hookbox::tenant::Tenant;

/// Directory holding the guests built by `build.rs`.
pub fn guests_dir() -> PathBuf {
    PathBuf::from(env!("HOOKBOX_GUESTS_DIR"))
}

/// The reference login-conflict plugin, built from `plugins/login-conflict`.
pub fn login_conflict_wasm() -> PathBuf {
    guests_dir().join("login_conflict.wasm")
}

/// The misbehaving test plugin, built from `tests/guests/misbehave`.
pub fn misbehave_wasm() -> PathBuf {
    guests_dir().join("misbehave.wasm")
}

/// A valid component of another world, built from `tests/guests/wrong-world`.
pub fn wrong_world_wasm() -> PathBuf {
    guests_dir().join("wrong_world.wasm")
}

/// The login-conflict resolver in every language built for this run: Rust,
/// then Python and JavaScript unless `HOOKBOX_SKIP_LANGUAGES` left them out.
pub fn login_conflict_languages() -> Vec<(&'static str, PathBuf)> {
    let mut langs = vec![("rust", login_conflict_wasm())];
    for (name, path) in [
        ("python", env!("HOOKBOX_PY_WASM")),
        ("javascript", env!("HOOKBOX_JS_WASM")),
    ] {
        if path.is_empty() {
            eprintln!("{name} resolver skipped (HOOKBOX_SKIP_LANGUAGES)");
        } else {
            langs.push((name, path.into()));
        }
    }
    langs
}

/// `tests/<rel>` in the source tree.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Okta's sample import request (`tests/fixtures/sample-request.json`).
pub fn sample_request() -> Value {
    let text = std::fs::read_to_string(fixture_path("fixtures/sample-request.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A certificate authority made for one test run, and a server certificate it signed for 127.0.0.1.
pub struct Pki {
    pub ca_der: CertificateDer<'static>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookbox test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// One `[[tenants]]` entry of the test config.
#[derive(Clone)]
pub struct TenantSpec {
    id: String,
    plugin: PathBuf,
    header: Option<String>,
    secrets: Vec<String>,
    limits: LimitsSpec,
    settings: Vec<(String, String)>,
    smoke: Option<PathBuf>,
}

/// A tenant's `limits` table; unset values take hookbox's defaults.
#[derive(Clone, Default)]
struct LimitsSpec {
    memory: Option<String>,
    deadline: Option<String>,
    fuel: Option<u64>,
    max_concurrency: Option<u32>,
    instance_mode: Option<String>,
    reuse_max_requests: Option<u32>,
}

impl LimitsSpec {
    /// The body of the TOML inline table.
    fn toml(&self) -> String {
        let mut fields = Vec::new();
        let mut text = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                fields.push(format!("{key} = {v:?}"));
            }
        };
        text("memory", &self.memory);
        text("deadline", &self.deadline);
        text("instance_mode", &self.instance_mode);
        for (key, v) in [
            ("fuel", self.fuel),
            ("max_concurrency", self.max_concurrency.map(u64::from)),
            ("reuse_max_requests", self.reuse_max_requests.map(u64::from)),
        ] {
            if let Some(v) = v {
                fields.push(format!("{key} = {v}"));
            }
        }
        fields.join(", ")
    }
}

impl TenantSpec {
    /// Tenant `id` serving `plugin`, authenticated by `Authorization: secret-{id}`.
    pub fn new(id: &str, plugin: PathBuf) -> TenantSpec {
        TenantSpec {
            id: id.to_owned(),
            plugin,
            header: None,
            secrets: vec![format!("secret-{id}")],
            limits: LimitsSpec::default(),
            settings: Vec::new(),
            smoke: None,
        }
    }

    /// `smoke`: a request file a new plugin version must answer before a reload makes it live.
    pub fn smoke(mut self, path: PathBuf) -> Self {
        self.smoke = Some(path);
        self
    }

    /// One more entry of `settings`.
    pub fn setting(mut self, k: &str, v: &str) -> Self {
        self.settings.push((k.to_owned(), v.to_owned()));
        self
    }

    /// `limits.memory`, e.g. `"16MiB"`.
    pub fn memory(mut self, size: &str) -> Self {
        self.limits.memory = Some(size.to_owned());
        self
    }

    /// `limits.deadline`, e.g. `"200ms"`.
    pub fn deadline(mut self, duration: &str) -> Self {
        self.limits.deadline = Some(duration.to_owned());
        self
    }

    /// `limits.fuel`.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
        self
    }

    /// `limits.max_concurrency`.
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.limits.max_concurrency = Some(n);
        self
    }

    /// `limits.instance_mode`: `"fresh"` or `"reuse"`.
    pub fn instance_mode(mut self, mode: &str) -> Self {
        self.limits.instance_mode = Some(mode.to_owned());
        self
    }

    /// `limits.reuse_max_requests`.
    pub fn reuse_max_requests(mut self, n: u32) -> Self {
        self.limits.reuse_max_requests = Some(n);
        self
    }

    /// The secrets the tenant accepts (in place of `secret-{id}`).
    pub fn secrets(mut self, secrets: &[&str]) -> Self {
        self.secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The auth header (in place of `Authorization`).
    pub fn header(mut self, name: &str) -> Self {
        self.header = Some(name.to_owned());
        self
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first configured secret.
    pub fn secret(&self) -> &str {
        &self.secrets[0]
    }
}

/// A whole test configuration, section by section, built with typed setters
/// and written as the TOML file `hookbox serve --config` reads. Unset values
/// take hookbox's defaults.
#[derive(Clone, Default)]
pub struct Setup {
    tenants: Vec<TenantSpec>,
    body_limit: Option<String>,
    request_timeout: Option<String>,
    handshake_timeout: Option<String>,
    max_connections: Option<usize>,
    watch: bool,
    cache_dir: Option<PathBuf>,
    cache_max_size: Option<String>,
    admin_secret: Option<String>,
}

impl Setup {
    /// One more tenant.
    pub fn tenant(mut self, tenant: TenantSpec) -> Self {
        self.tenants.push(tenant);
        self
    }

    /// More tenants.
    pub fn tenants<'a>(mut self, tenants: impl IntoIterator<Item = &'a TenantSpec>) -> Self {
        self.tenants.extend(tenants.into_iter().cloned());
        self
    }

    /// The same setup with exactly these tenants.
    pub fn only_tenants(&self, tenants: &[TenantSpec]) -> Self {
        Setup {
            tenants: tenants.to_vec(),
            ..self.clone()
        }
    }

    /// `server.body_limit`, e.g. `"4KiB"`.
    pub fn body_limit(mut self, size: &str) -> Self {
        self.body_limit = Some(size.to_owned());
        self
    }

    /// `server.request_timeout`, e.g. `"300ms"`.
    pub fn request_timeout(mut self, duration: &str) -> Self {
        self.request_timeout = Some(duration.to_owned());
        self
    }

    /// `server.handshake_timeout`, e.g. `"300ms"`.
    pub fn handshake_timeout(mut self, duration: &str) -> Self {
        self.handshake_timeout = Some(duration.to_owned());
        self
    }

    /// `server.max_connections`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// `server.watch = true`: file changes reload.
    pub fn watch(mut self) -> Self {
        self.watch = true;
        self
    }

    /// `engine.cache_dir`.
    pub fn cache_dir(mut self, dir: &Path) -> Self {
        self.cache_dir = Some(dir.to_owned());
        self
    }

    /// `engine.cache_max_size`, e.g. `"50MiB"`.
    pub fn cache_max_size(mut self, size: &str) -> Self {
        self.cache_max_size = Some(size.to_owned());
        self
    }

    /// `[admin]` with this secret (in a file beside the config): `POST /admin/reload` exists.
    pub fn admin_secret(mut self, secret: &str) -> Self {
        self.admin_secret = Some(secret.to_owned());
        self
    }

    /// Writes the config file, loads it as `hookbox serve --config` would,
    /// binds 127.0.0.1:0 and serves.
    pub async fn start(self) -> TestServer {
        TestServer::start_setup(self).await
    }

    /// The config file's text; secret files are written into `dir`.
    fn toml(&self, dir: &Path) -> String {
        let mut s = String::from("[server]\n");
        for (key, v) in [
            ("body_limit", &self.body_limit),
            ("request_timeout", &self.request_timeout),
            ("handshake_timeout", &self.handshake_timeout),
        ] {
            if let Some(v) = v {
                s += &format!("{key} = {v:?}\n");
            }
        }
        if let Some(n) = self.max_connections {
            s += &format!("max_connections = {n}\n");
        }
        if self.watch {
            s += "watch = true\n";
        }
        s += "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
        if self.cache_dir.is_some() || self.cache_max_size.is_some() {
            s += "[engine]\n";
            if let Some(dir) = &self.cache_dir {
                s += &format!("cache_dir = {:?}\n", dir.display().to_string());
            }
            if let Some(size) = &self.cache_max_size {
                s += &format!("cache_max_size = {size:?}\n");
            }
        }
        if let Some(secret) = &self.admin_secret {
            std::fs::write(dir.join("admin-secret"), format!("{secret}\n")).unwrap();
            s += "[admin]\nsecrets_file = [\"admin-secret\"]\n";
        }
        for t in &self.tenants {
            let mut secret_files = Vec::new();
            for (i, secret) in t.secrets.iter().enumerate() {
                let name = format!("{}-secret-{i}", t.id);
                std::fs::write(dir.join(&name), format!("{secret}\n")).unwrap();
                secret_files.push(format!("{name:?}"));
            }
            let header = t
                .header
                .as_ref()
                .map(|h| format!("header = {h:?}, "))
                .unwrap_or_default();
            s += &format!(
                "\n[[tenants]]\nid = {:?}\nplugin = {:?}\nauth = {{ {header}secrets_file = [{}] }}\nlimits = {{ {} }}\n",
                t.id,
                t.plugin.display().to_string(),
                secret_files.join(", "),
                t.limits.toml(),
            );
            if let Some(smoke) = &t.smoke {
                s += &format!("smoke = {:?}\n", smoke.display().to_string());
            }
            s += "[tenants.settings]\n";
            for (k, v) in &t.settings {
                s += &format!("{k:?} = {v:?}\n");
            }
        }
        s
    }
}

/// The real hookbox server, on a loopback port the OS picked, started from
/// a real config file it can reload. Read-only from the outside: tests see
/// it through accessors and requests, and change it only as an operator
/// would (rewriting its files, reloading).
pub struct TestServer {
    addr: SocketAddr,
    app: Arc<App>,
    reloader: Arc<Reloader>,
    pki: Pki,
    setup: Setup,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), hookbox::ServeError>>>,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// A setup to build on: no tenants, hookbox's defaults.
    pub fn builder() -> Setup {
        Setup::default()
    }

    /// A server for `tenants`, everything else at hookbox's defaults.
    pub async fn start(tenants: &[TenantSpec]) -> TestServer {
        TestServer::builder().tenants(tenants).start().await
    }

    async fn start_setup(setup: Setup) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
        let config_path = dir.path().join("hookbox.toml");
        std::fs::write(&config_path, setup.toml(dir.path())).unwrap();

        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let config = Config::load(&config_path, &overrides).unwrap();
        // Compiling plugins blocks; keep it off the test's async workers.
        let path = config_path.clone();
        let (app, reloader, tls) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let app = Arc::new(App::from_config(&config)?);
            let reloader = Arc::new(Reloader::new(app.clone(), path, overrides, &config));
            let identity = hookbox::tls::Identity::load(&config.tls)?;
            Ok((app, reloader, hookbox::tls::server_config(identity)?))
        })
        .await
        .unwrap()
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(hookbox::serve(
            app.clone(),
            Some(reloader.clone()),
            tls,
            listener,
            async {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            app,
            reloader,
            pki,
            setup,
            shutdown: Some(tx),
            handle: Some(handle),
            config_path,
            dir,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The setup it was started from (or last rewritten to).
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The config file the server was started from (and reloads).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The directory of the config file (a scratch directory the test may write plugins into).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites the config file for `setup`, atomically (written beside it,
    /// then renamed over it, as a deploy would). Nothing reloads by itself
    /// unless the server watches its files.
    pub fn rewrite(&self, setup: &Setup) {
        let tmp = self.dir().join(".hookbox.toml.new");
        std::fs::write(&tmp, setup.toml(self.dir())).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// [`TestServer::rewrite`] with the setup the server started from, but these tenants.
    pub fn rewrite_tenants(&self, tenants: &[TenantSpec]) {
        self.rewrite(&self.setup.only_tenants(tenants));
    }

    /// Reloads the config file, as `SIGHUP` or the admin endpoint would.
    pub async fn reload(&self) -> ReloadReport {
        self.reloader.reload().await
    }

    /// A client that trusts this server's certificate.
    pub fn client(&self) -> Client {
        Client::new(self.addr, &self.pki.ca_der)
    }

    /// The tenant `id` as the table holds it right now.
    pub fn tenant(&self, id: &str) -> Arc<Tenant> {
        self.app
            .tenant(id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
    }

    /// Every tenant right now, sorted by id.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<_> = self.app.tenants().iter().cloned().collect();
        all.sort_by(|a, b| a.id().cmp(b.id()));
        all
    }

    /// How the precompiled cache has been used (panics without `cache_dir`).
    pub fn cache_stats(&self) -> CacheStats {
        self.app
            .runtime()
            .cache_stats()
            .expect("a cache is configured")
    }

    /// The cache file of the plugin with this digest (panics without `cache_dir`).
    pub fn cache_file(&self, digest: &str) -> PathBuf {
        self.app
            .runtime()
            .cache_file(digest)
            .expect("a cache is configured")
    }

    /// Sends Okta's sample to `tenant` in the background and returns once that
    /// request holds one of the tenant's concurrency permits (observed as one
    /// free permit fewer, not slept for; no other request may start meanwhile).
    /// For a plugin that runs until its deadline, the permit stays taken until
    /// then; the handle gives the request's reply.
    pub async fn hold_permit(&self, tenant: &str, secret: &str) -> JoinHandle<Reply> {
        let free = self.tenant(tenant).free_permits();
        assert!(free > 0, "tenant {tenant} has no free permit to hold");
        let held = {
            let (client, tenant, secret) = (self.client(), tenant.to_owned(), secret.to_owned());
            tokio::spawn(async move { client.hook(&tenant, &secret, &sample_request()).await })
        };
        while self.tenant(tenant).free_permits() >= free {
            tokio::task::yield_now().await;
        }
        held
    }

    /// Stops accepting, drains, and returns how `serve` ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => Ok(h.await.context("server task")??),
            None => Ok(()),
        }
    }
}

/// An answer as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.errorSummary`, if the body has one.
    pub fn error_summary(&self) -> Option<String> {
        self.json()["error"]["errorSummary"]
            .as_str()
            .map(str::to_owned)
    }

    /// The new `login` of the first `com.okta.user.profile.update` command.
    pub fn new_login(&self) -> Option<String> {
        let v = self.json();
        v["commands"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "com.okta.user.profile.update")
            .and_then(|c| c["value"]["login"].as_str().map(str::to_owned))
    }
}

/// An HTTPS client that trusts only the test CA.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

/// One open connection (keep-alive: several requests may use it).
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// The HTTP version a connection negotiates through ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

impl Client {
    pub fn new(addr: SocketAddr, ca: &CertificateDer<'static>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: Arc::new(config),
        }
    }

    /// A TLS connection (HTTP/1.1 by ALPN) to write raw bytes on: for what a
    /// well-behaved HTTP client never sends, such as a body that stalls.
    pub async fn connect_raw(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.tls(b"http/1.1").await
    }

    /// A TLS connection to the server offering only `alpn`.
    async fn tls(&self, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// Opens a TLS connection offering only `proto` in ALPN.
    pub async fn connect(&self, proto: Proto) -> Conn {
        let tls = self
            .tls(match proto {
                Proto::H1 => b"http/1.1",
                Proto::H2 => b"h2",
            })
            .await;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        match proto {
            Proto::H1 => {
                assert_eq!(
                    negotiated.as_deref(),
                    Some(&b"http/1.1"[..]),
                    "server must accept http/1.1"
                );
                let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                Conn::H1(send)
            }
            Proto::H2 => {
                assert_eq!(
                    negotiated.as_deref(),
                    Some(&b"h2"[..]),
                    "server must accept h2"
                );
                let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                Conn::H2(send)
            }
        }
    }

    /// POSTs `body` to the tenant's hook with `Authorization: secret` over a new HTTP/1.1 connection.
    pub async fn hook(&self, tenant: &str, secret: &str, body: &Value) -> Reply {
        let mut conn = self.connect(Proto::H1).await;
        conn.send(self.hook_request(tenant, Some(("authorization", secret)), body.to_string()))
            .await
    }

    /// A hook request with JSON content type and, if given, one auth header.
    pub fn hook_request(
        &self,
        tenant: &str,
        auth: Option<(&str, &str)>,
        body: String,
    ) -> Request<Full<Bytes>> {
        let mut req = self.request(
            Method::POST,
            &format!("/hooks/{tenant}/import"),
            Bytes::from(body),
        );
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some((name, value)) = auth {
            req.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        req
    }

    /// A bare request (absolute URI, so it suits both HTTP versions).
    pub fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{}{path}", self.addr.port()))
            .header(
                hyper::header::HOST,
                format!("127.0.0.1:{}", self.addr.port()),
            )
            .body(Full::new(body))
            .unwrap()
    }
}

impl Conn {
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Reply {
        let response = match self {
            Conn::H1(s) => s.send_request(req).await.unwrap(),
            Conn::H2(s) => {
                // HTTP/2 carries the authority in :authority; a Host header as well is redundant.
                req.headers_mut().remove(hyper::header::HOST);
                s.send_request(req).await.unwrap()
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}
