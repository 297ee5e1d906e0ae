//! [`App`]: the state a running server shares between requests, and nothing
//! else. It does not reload, watch or route; those hold an `Arc<App>`
//! ([`crate::reload::Reloader`], [`crate::server`]).
//!
//! Invariants: the engine configuration, the claim store (`[store]`) and
//! `[server]` are fixed for the process's lifetime (the store is opened
//! once, before the app is built, by whoever starts it); the tenant table is
//! swapped whole, with one store, by [`App::publish`] (never edited in
//! place), so a request sees either the old or the new table, and the admin
//! credentials are swapped right after it. The engine itself is replaced
//! only by [`App::recycle`], which moves the same table onto a new engine
//! built from the same configuration (see [`crate::recycle`]): every plugin
//! names the engine it runs on, so a request runs wholly on the engine of
//! the table it took. Table changes (reloads, recycles) take
//! [`App::table_change`] and so happen one at a time: an older table is
//! never published last, and a reload compiles for the engine it publishes on.
//! The one [`Metrics`] registry and the one [`Readiness`] live here, so every
//! endpoint and listener reports from the same state. An app may exist
//! before its tenants are loaded ([`App::starting`], then [`App::load`]):
//! the ops listener serves `/healthz` and a failing `/readyz` meanwhile.
//! The claim store gets one readiness check, `store`, registered when the
//! app is built: a [`Store::ping`] per `/readyz` (a Redis `PING` or an
//! embedded read transaction: no cache, so a stopped Redis shows at the next
//! probe), bounded by [`STORE_PING_TIMEOUT`].
//! Each tenant with `auth.oauth` gets one readiness check, `oauth:{tenant}`,
//! registered the first time a table holding it is published; it always
//! asks the tenant's current verifier (whichever the last reload left) and
//! passes once the tenant is gone or has no OAuth any more (checks cannot be
//! unregistered).
//! The tenants' Okta directories get no readiness check: a directory that is
//! down, slow or rate-limited degrades the requests that look a login up
//! (the plugin gets the error and decides), it does not make the process
//! unfit to serve. The [`DirectoryClients`] (HTTPS clients per org,
//! rate-limit gates per org and token) live here for the process's lifetime,
//! so a reload keeps pooled connections and a closed gate closed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use hookbox_directory::DirectoryClients;
use hookbox_store::Store;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::{Config, ServerConfig};
use crate::metrics::Metrics;
use crate::plugin::{EngineError, Runtime, StoreScope};
use crate::readiness::{Check, CheckFuture, Readiness};
use crate::tenant::{self, Tenant, TenantError, Tenants, Verifiers};

/// How long the `store` readiness check waits for [`Store::ping`]: under
/// [`crate::readiness::CHECK_TIMEOUT`], so `/readyz` says why.
pub const STORE_PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Why [`App::recycle`] moved nothing.
#[derive(Debug, thiserror::Error)]
pub enum RecycleError {
    /// The new engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A tenant's plugin could not be moved onto it.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The blocking task failed.
    #[error("recycling the engine failed: {0}")]
    Task(String),
}

/// Why an [`App`] could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A tenant's plugin could not be loaded, or its OAuth verifier set up.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The blocking load task failed.
    #[error("loading the tenants failed: {0}")]
    Task(String),
}

/// Everything a running server shares between requests.
pub struct App {
    /// The engine new plugins are compiled for: the one the current table
    /// runs on (changed only by [`App::recycle`], with the table).
    runtime: ArcSwap<Runtime>,
    /// Held by whoever changes the tenant table after start (a reload, a
    /// recycle): one change at a time.
    table_change: tokio::sync::Mutex<()>,
    /// The tenant table, swapped whole (never edited in place); shared with
    /// the OAuth readiness checks, which look tenants up in it.
    tenants: Arc<ArcSwap<Tenants>>,
    server: ServerConfig,
    /// `POST /admin/reload`'s credentials; `None`: the endpoint does not exist.
    admin: ArcSwapOption<Auth>,
    metrics: Metrics,
    readiness: Readiness,
    /// Claims and idempotent answers, every tenant in its own key space.
    store: Store,
    /// Bumped whenever this process queues events: wakes the event worker.
    events_wake: watch::Sender<u64>,
    /// The tenants whose `oauth:{tenant}` readiness check is registered.
    oauth_checks: Mutex<HashSet<String>>,
    /// Every tenant directory's HTTPS clients and rate-limit gates.
    directory_clients: DirectoryClients,
}

impl App {
    /// How a server starts on `store` (opened from `config.store`): fetches
    /// every OAuth tenant's issuer metadata and keys (a failure names the
    /// tenant and the step), then builds the engine and loads every plugin
    /// off the async runtime; ready at once.
    pub async fn start(config: &Config, store: Store) -> Result<App, AppError> {
        let verifiers = tenant::build_verifiers(&config.tenants).await?;
        let config = config.clone();
        tokio::task::spawn_blocking(move || App::with_verifiers(&config, store, &verifiers))
            .await
            .map_err(|e| AppError::Task(e.to_string()))?
    }

    /// Builds the engine and loads every tenant's plugin, on `store` (opened
    /// from `config.store`); ready at once. Blocking (compiles). Refuses a
    /// tenant with `auth.oauth` ([`TenantError::NoVerifier`]): use
    /// [`App::start`].
    pub fn from_config(config: &Config, store: Store) -> Result<App, AppError> {
        App::with_verifiers(config, store, &Verifiers::default())
    }

    /// [`App::from_config`] with the OAuth tenants' verifiers already built. Blocking.
    pub fn with_verifiers(
        config: &Config,
        store: Store,
        verifiers: &Verifiers,
    ) -> Result<App, AppError> {
        let app = App::starting(config, store)?;
        app.load(config, verifiers)?;
        app.readiness.loaded();
        Ok(app)
    }

    /// The engine with no tenant yet, not ready: [`App::load`] loads them,
    /// and whoever started it calls [`Readiness::loaded`] once start-up is
    /// done (after the smoke requests).
    pub fn starting(config: &Config, store: Store) -> Result<App, EngineError> {
        let runtime = Runtime::new(&config.engine)?;
        Ok(App::build(
            runtime,
            Tenants::default(),
            config.server.clone(),
            store,
        ))
    }

    /// Loads every tenant's plugin of `config` and publishes them with its
    /// admin credentials; each tenant with `auth.oauth` takes its verifier
    /// from `verifiers` ([`tenant::build_verifiers`]). Blocking (compiles).
    pub fn load(&self, config: &Config, verifiers: &Verifiers) -> Result<(), TenantError> {
        let tenants = Tenants::load(
            &self.runtime(),
            &config.tenants,
            verifiers,
            &self.directory_clients,
        )?;
        self.publish(tenants, config.admin.clone());
        Ok(())
    }

    /// An app serving `tenants` on `runtime` and `store`, without the admin
    /// endpoint; ready.
    pub fn new(runtime: Runtime, tenants: Tenants, server: ServerConfig, store: Store) -> App {
        let app = App::build(runtime, tenants, server, store);
        app.readiness.loaded();
        app
    }

    fn build(runtime: Runtime, tenants: Tenants, server: ServerConfig, store: Store) -> App {
        let metrics = Metrics::new();
        metrics.plugins(&tenants);
        let app = App {
            runtime: ArcSwap::from_pointee(runtime),
            table_change: tokio::sync::Mutex::new(()),
            tenants: Arc::new(ArcSwap::from_pointee(Tenants::default())),
            server,
            admin: ArcSwapOption::empty(),
            metrics,
            readiness: Readiness::default(),
            store,
            events_wake: watch::Sender::new(0),
            oauth_checks: Mutex::new(HashSet::new()),
            directory_clients: DirectoryClients::new(),
        };
        app.readiness
            .register(Arc::new(StorePing(app.store.clone())));
        app.register_oauth_checks(&tenants);
        app.tenants.store(Arc::new(tenants));
        app
    }

    /// The metrics registry every endpoint records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What `/readyz` answers from; features register their dependency checks here.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The claim store (claims, idempotent answers), shared by every tenant.
    /// Readiness can ask it [`Store::ping`].
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `tenant`'s space of the claim store, and its Okta directory: what
    /// its requests run with.
    pub fn scope(&self, tenant: &Tenant) -> StoreScope {
        StoreScope::new(tenant.id(), &self.store)
            .with_metrics(self.metrics.store())
            .with_directory(tenant.directory().cloned())
    }

    /// The HTTPS clients and rate-limit gates every tenant's directory is
    /// built on (a reload builds new directories on them).
    pub fn directory_clients(&self) -> &DirectoryClients {
        &self.directory_clients
    }

    /// The engine the current tenant table runs on, and new plugins are
    /// compiled for (a request uses its tenant's [`Plugin::runtime`]
    /// instead: after a recycle the two differ until the old table's
    /// requests are done).
    ///
    /// [`Plugin::runtime`]: crate::plugin::Plugin::runtime
    pub fn runtime(&self) -> Runtime {
        Runtime::clone(&self.runtime.load())
    }

    /// The right to change the tenant table, one change at a time (a
    /// reload holds it from reading the table to publishing the next).
    pub async fn table_change(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.table_change.lock().await
    }

    /// Moves the current tenant table, as it is, onto a new engine built
    /// from the same configuration ([`Runtime::successor`]), and publishes
    /// it: requests that took the old table finish on the old engine, the
    /// next ones run on the new one, and once the last of the old ones is
    /// done the old engine and its instance pool (the memory its unused
    /// slots kept resident) are freed. Nothing a tenant is changes (see
    /// [`Tenant::rebound`]) but its warm `reuse` instances, which go with
    /// the old engine. Waits for a reload in progress. On an error nothing
    /// changed.
    pub async fn recycle(&self) -> Result<(), RecycleError> {
        let _one_change = self.table_change().await;
        let (old, table) = (self.runtime(), self.tenants());
        let (next, moved) = tokio::task::spawn_blocking(move || {
            let next = old.successor()?;
            let moved = table.rebound(&next)?;
            Ok::<_, RecycleError>((next, moved))
        })
        .await
        .map_err(|e| RecycleError::Task(e.to_string()))??;
        self.runtime.store(Arc::new(next));
        self.tenants.store(Arc::new(moved));
        self.metrics.recycled();
        Ok(())
    }

    /// `[server]`, as the process started with it.
    pub fn server(&self) -> &ServerConfig {
        &self.server
    }

    /// A snapshot of the tenant table: a request keeps the one it took first.
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.load_full()
    }

    /// The tenant `id` in the current table.
    pub fn tenant(&self, id: &str) -> Option<Arc<Tenant>> {
        self.tenants.load().get(id).cloned()
    }

    /// The admin endpoint's credentials, if it is configured right now.
    pub fn admin(&self) -> Option<Arc<Auth>> {
        self.admin.load_full()
    }

    /// Tells the event worker that events were just queued.
    pub(crate) fn events_queued(&self) {
        self.events_wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What the event worker waits on between looks at the queues.
    pub(crate) fn events_wake(&self) -> watch::Receiver<u64> {
        self.events_wake.subscribe()
    }

    /// Makes `tenants` and `admin` the ones requests see from now on.
    pub(crate) fn publish(&self, tenants: Tenants, admin: Option<Auth>) {
        self.metrics.plugins(&tenants);
        self.register_oauth_checks(&tenants);
        self.tenants.store(Arc::new(tenants));
        self.admin.store(admin.map(Arc::new));
    }

    /// Registers `oauth:{tenant}` for each tenant of `tenants` with a
    /// verifier that has none yet (see the module docs), and warns about
    /// tenants whose event hook can never authenticate.
    fn register_oauth_checks(&self, tenants: &Tenants) {
        let mut registered = self.oauth_checks.lock().unwrap_or_else(|e| e.into_inner());
        for id in tenants.ids() {
            let Some(tenant) = tenants.get(id) else {
                continue;
            };
            if tenant.oauth().is_none() {
                continue;
            }
            if tenant.handles_events() && tenant.auth().secret.is_none() {
                // Okta's event hooks authenticate with a header secret only.
                tracing::warn!(
                    tenant = id,
                    "the plugin handles events but the tenant has no header secret: \
                     its event hook refuses every delivery (401)"
                );
            }
            if registered.insert(id.to_owned()) {
                self.readiness.register(Arc::new(OAuthKeys {
                    name: format!("oauth:{id}"),
                    tenant: id.to_owned(),
                    tenants: self.tenants.clone(),
                }));
            }
        }
    }
}

/// `/readyz`'s check of the claim store: it answers a ping within
/// [`STORE_PING_TIMEOUT`].
struct StorePing(Store);

impl Check for StorePing {
    fn name(&self) -> &str {
        "store"
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let backend = self.0.backend_name();
            match tokio::time::timeout(STORE_PING_TIMEOUT, self.0.ping()).await {
                Ok(Ok(())) => Ok(()),
                // The kind only: the store's own text may name a URL with credentials.
                Ok(Err(e)) => Err(format!(
                    "the {backend} store does not answer ({})",
                    e.kind()
                )),
                Err(_) => Err(format!(
                    "the {backend} store did not answer within {} ms",
                    STORE_PING_TIMEOUT.as_millis()
                )),
            }
        })
    }
}

/// `/readyz`'s check of one tenant's OAuth issuer keys: the tenant's current
/// verifier has keys cached ([`hookbox_oauth::Health::is_ready`]). A failed
/// refresh with keys still cached passes (tokens signed with them still
/// verify; the failure is logged and counted in
/// `hookbox_oauth_key_fetches_total`): readiness is the whole process's, and
/// one tenant's issuer outage must not take every tenant's traffic off
/// every replica at once. Reads cached state only: never fetches.
struct OAuthKeys {
    /// `oauth:{tenant}`.
    name: String,
    tenant: String,
    tenants: Arc<ArcSwap<Tenants>>,
}

impl Check for OAuthKeys {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> CheckFuture<'_> {
        let tenants = self.tenants.load();
        let result = match tenants.get(&self.tenant).and_then(|t| t.oauth()) {
            // Removed, or no OAuth any more: nothing to wait for.
            None => Ok(()),
            Some(verifier) => {
                let health = verifier.health();
                if health.is_ready() {
                    Ok(())
                } else {
                    Err(format!(
                        "no signing keys cached from {}{}",
                        verifier.jwks_uri(),
                        health
                            .last_error
                            .map(|e| format!(" (the last fetch: {e})"))
                            .unwrap_or_default()
                    ))
                }
            }
        };
        Box::pin(std::future::ready(result))
    }
}
