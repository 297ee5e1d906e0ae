//! The real hookbox server, started from a [`Setup`] on a loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use hookbox::App;
use hookbox::config::{Config, Overrides};
use hookbox::plugin::cache::CacheStats;
use hookbox::reload::{ReloadReport, Reloader};
use hookbox::tenant::Tenant;

use crate::{Client, Pki, Reply, Setup, TenantSpec, fresh_sample};

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

    pub(crate) async fn start_setup(setup: Setup) -> TestServer {
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
        let store = hookbox::cli::open_store(&config.store).await.unwrap();
        // As `serve` starts: OAuth keys fetched, then plugins compiled off the async workers.
        let app = Arc::new(App::start(&config, store).await.unwrap());
        let reloader = Arc::new(Reloader::new(
            app.clone(),
            config_path.clone(),
            overrides,
            &config,
        ));
        let identity = hookbox::tls::Identity::load(&config.tls).unwrap();
        let tls = hookbox::tls::server_config(identity).unwrap();
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

    /// Loads `setup` the way [`Setup::start`] would, up to the point where the
    /// server would bind, and returns why it would refuse to start (`None`:
    /// it would start). For start-up failures such as an unreachable issuer.
    pub async fn start_error(setup: &Setup) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
        let config_path = dir.path().join("hookbox.toml");
        std::fs::write(&config_path, setup.toml(dir.path())).unwrap();
        let config = match Config::load(&config_path, &Overrides::default()) {
            Ok(c) => c,
            Err(e) => return Some(e.to_string()),
        };
        let store = match hookbox::cli::open_store(&config.store).await {
            Ok(s) => s,
            Err(e) => return Some(e.to_string()),
        };
        App::start(&config, store)
            .await
            .err()
            .map(|e| e.to_string())
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

    /// What `/readyz` would answer now.
    pub async fn readiness(&self) -> hookbox::readiness::Status {
        self.app.readiness().status().await
    }

    /// The engine the current tenant table runs on (it changes when the
    /// engine is recycled).
    pub fn runtime(&self) -> hookbox::plugin::Runtime {
        self.app.runtime()
    }

    /// Moves the tenant table onto a new engine now, as `engine.idle_resident_limit`
    /// does when the pool keeps too much ([`hookbox::App::recycle`]).
    pub async fn recycle(&self) {
        self.app.recycle().await.expect("the engine is recycled");
    }

    /// The engine's fair CPU scheduler (to watch who runs and who waits).
    pub fn cpu(&self) -> hookbox::plugin::CpuScheduler {
        self.app.runtime().cpu().clone()
    }

    /// The server's claim store (to count claims, list them, check answers).
    pub fn store(&self) -> &hookbox_store::Store {
        self.app.store()
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
            // A fresh eventId: a repeated one may be answered from the store, without a permit.
            tokio::spawn(async move { client.hook(&tenant, &secret, &fresh_sample()).await })
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
