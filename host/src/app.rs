//! [`App`]: the state a running server shares between requests, and nothing
//! else. It does not reload, watch or route; those hold an `Arc<App>`
//! ([`crate::reload::Reloader`], [`crate::server`]).
//!
//! Invariants: the engine, the claim store (`[store]`) and `[server]` are
//! fixed for the process's lifetime (the store is opened once, before the
//! app is built, by whoever starts it); the tenant table is swapped whole, with one store, by
//! [`App::publish`] (never edited in place), so a request sees either the old
//! or the new table, and the admin credentials are swapped right after it.
//! The one [`Metrics`] registry and the one [`Readiness`] live here, so every
//! endpoint and listener reports from the same state. An app may exist
//! before its tenants are loaded ([`App::starting`], then [`App::load`]):
//! the ops listener serves `/healthz` and a failing `/readyz` meanwhile.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use hookbox_store::Store;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::{Config, ServerConfig};
use crate::metrics::Metrics;
use crate::plugin::{EngineError, Runtime, StoreScope};
use crate::readiness::Readiness;
use crate::tenant::{Tenant, TenantError, Tenants};

/// Why an [`App`] could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A tenant's plugin could not be loaded.
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

/// Everything a running server shares between requests.
pub struct App {
    runtime: Runtime,
    /// The tenant table, swapped whole (never edited in place).
    tenants: ArcSwap<Tenants>,
    server: ServerConfig,
    /// `POST /admin/reload`'s credentials; `None`: the endpoint does not exist.
    admin: ArcSwapOption<Auth>,
    metrics: Metrics,
    readiness: Readiness,
    /// Claims and idempotent answers, every tenant in its own key space.
    store: Store,
    /// Bumped whenever this process queues events: wakes the event worker.
    events_wake: watch::Sender<u64>,
}

impl App {
    /// Builds the engine and loads every tenant's plugin, on `store` (opened
    /// from `config.store`); ready at once. Blocking (compiles).
    pub fn from_config(config: &Config, store: Store) -> Result<App, AppError> {
        let app = App::starting(config, store)?;
        app.load(config)?;
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
    /// admin credentials. Blocking (compiles).
    pub fn load(&self, config: &Config) -> Result<(), TenantError> {
        let tenants = Tenants::load(&self.runtime, &config.tenants)?;
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
        App {
            runtime,
            tenants: ArcSwap::from_pointee(tenants),
            server,
            admin: ArcSwapOption::empty(),
            metrics,
            readiness: Readiness::default(),
            store,
            events_wake: watch::Sender::new(0),
        }
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

    /// `tenant`'s space of the claim store: what its requests run with.
    pub fn scope(&self, tenant: &Tenant) -> StoreScope {
        StoreScope::new(tenant.id(), &self.store)
    }

    /// The engine every tenant's plugin runs on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
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
        self.tenants.store(Arc::new(tenants));
        self.admin.store(admin.map(Arc::new));
    }
}
