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
    pub id: String,
    pub plugin: PathBuf,
    pub header: Option<String>,
    pub secrets: Vec<String>,
    /// TOML inline-table body for `limits`, e.g. `deadline = "200ms"`.
    pub limits: String,
    pub settings: Vec<(String, String)>,
    /// `smoke`: a request file a new plugin version must answer before a reload makes it live.
    pub smoke: Option<PathBuf>,
}

impl TenantSpec {
    pub fn new(id: &str, plugin: PathBuf) -> TenantSpec {
        TenantSpec {
            id: id.to_owned(),
            plugin,
            header: None,
            secrets: vec![format!("secret-{id}")],
            limits: String::new(),
            settings: Vec::new(),
            smoke: None,
        }
    }

    pub fn smoke(mut self, path: PathBuf) -> Self {
        self.smoke = Some(path);
        self
    }

    pub fn setting(mut self, k: &str, v: &str) -> Self {
        self.settings.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn limits(mut self, toml: &str) -> Self {
        self.limits = toml.to_owned();
        self
    }

    pub fn secrets(mut self, secrets: &[&str]) -> Self {
        self.secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn header(mut self, name: &str) -> Self {
        self.header = Some(name.to_owned());
        self
    }

    /// The first configured secret.
    pub fn secret(&self) -> &str {
        &self.secrets[0]
    }
}

/// The real hookbox server, on a loopback port the OS picked.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub pki: Pki,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Writes a config file for `tenants` (plus `server_toml` lines in `[server]`),
    /// loads it as `hookbox serve --config` would, binds 127.0.0.1:0 and serves.
    pub async fn start(tenants: &[TenantSpec], server_toml: &str) -> TestServer {
        TestServer::start_with(tenants, server_toml, "").await
    }

    /// Like [`TestServer::start`], with `extra_toml` (whole sections, e.g. `[admin]`) appended
    /// to the config file. The server can reload that file ([`TestServer::rewrite_config`]).
    pub async fn start_with(
        tenants: &[TenantSpec],
        server_toml: &str,
        extra_toml: &str,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
        let config_path = dir.path().join("hookbox.toml");
        std::fs::write(
            &config_path,
            config_toml(dir.path(), tenants, server_toml) + extra_toml,
        )
        .unwrap();

        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let config = Config::load(&config_path, &overrides).unwrap();
        TestServer::start_with_config(config, overrides, config_path, pki, dir).await
    }

    /// Like [`TestServer::start`], with `engine_toml` lines in `[engine]` (e.g. a
    /// `cache_dir`). A later [`TestServer::rewrite_config`] must pass
    /// [`engine_section`]`(engine_toml)` as its `extra_toml` to keep them.
    pub async fn start_with_engine(
        tenants: &[TenantSpec],
        server_toml: &str,
        engine_toml: &str,
    ) -> TestServer {
        TestServer::start_with(tenants, server_toml, &engine_section(engine_toml)).await
    }

    async fn start_with_config(
        config: Config,
        overrides: Overrides,
        config_path: PathBuf,
        pki: Pki,
        dir: tempfile::TempDir,
    ) -> TestServer {
        // Compiling plugins blocks; keep it off the test's async workers.
        let path = config_path.clone();
        let (app, tls) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let app = App::from_config(&config)?.with_reload(path, overrides, &config);
            let identity = hookbox::tls::Identity::load(&config.tls)?;
            Ok((Arc::new(app), hookbox::tls::server_config(identity)?))
        })
        .await
        .unwrap()
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(hookbox::serve(app.clone(), tls, listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            app,
            pki,
            shutdown: Some(tx),
            handle: Some(handle),
            config_path,
            _dir: dir,
        }
    }

    /// The config file the server was started from (and reloads).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The directory of the config file (a scratch directory the test may write plugins into).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Rewrites the config file as [`TestServer::start_with`] wrote it, atomically
    /// (written beside it, then renamed over it, as a deploy would).
    pub fn rewrite_config(&self, tenants: &[TenantSpec], server_toml: &str, extra_toml: &str) {
        let text = config_toml(self.dir(), tenants, server_toml) + extra_toml;
        let tmp = self.dir().join(".hookbox.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr, &self.pki.ca_der)
    }

    /// The tenant `id` as the routing table holds it right now.
    pub fn tenant(&self, id: &str) -> Arc<hookbox::tenant::Tenant> {
        let table = self.app.tenants.load();
        table
            .get(id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
            .clone()
    }

    /// Sends Okta's sample to `tenant` in the background and returns once that
    /// request holds one of the tenant's concurrency permits (observed as one
    /// free permit fewer, not slept for; no other request may start meanwhile).
    /// For a plugin that runs until its deadline, the permit stays taken until
    /// then; the handle gives the request's reply.
    pub async fn hold_permit(&self, tenant: &str, secret: &str) -> JoinHandle<Reply> {
        let permits = self.tenant(tenant).concurrency.clone();
        let free = permits.available_permits();
        assert!(free > 0, "tenant {tenant} has no free permit to hold");
        let held = {
            let (client, tenant, secret) = (self.client(), tenant.to_owned(), secret.to_owned());
            tokio::spawn(async move { client.hook(&tenant, &secret, &sample_request()).await })
        };
        while permits.available_permits() >= free {
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
            Some(h) => h.await.context("server task")?,
            None => Ok(()),
        }
    }
}

/// An `[engine]` section with `lines` in it, to append to a config file.
pub fn engine_section(lines: &str) -> String {
    format!("\n[engine]\n{lines}\n")
}

fn config_toml(dir: &Path, tenants: &[TenantSpec], server_toml: &str) -> String {
    let mut s = format!("[server]\n{server_toml}\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    for t in tenants {
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
            t.limits,
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
