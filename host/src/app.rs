//! [`App`]: the state a running server shares between requests, and nothing
//! else. It does not reload, watch or route; those hold an `Arc<App>`
//! ([`crate::reload::Reloader`], [`crate::server`]).
//!
//! Invariants: the engine and `[server]` are fixed for the process's
//! lifetime; the tenant table is swapped whole, with one store, by
//! [`App::publish`] (never edited in place), so a request sees either the old
//! or the new table, and the admin credentials are swapped right after it.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::auth::Auth;
use crate::config::{Config, ServerConfig};
use crate::plugin::{EngineError, Runtime};
use crate::tenant::{self, Tenant, TenantError, Tenants, Verifiers};

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
    runtime: Runtime,
    /// The tenant table, swapped whole (never edited in place).
    tenants: ArcSwap<Tenants>,
    server: ServerConfig,
    /// `POST /admin/reload`'s credentials; `None`: the endpoint does not exist.
    admin: ArcSwapOption<Auth>,
}

impl App {
    /// How a server starts: fetches every OAuth tenant's issuer metadata and
    /// keys (a failure names the tenant and the step), then builds the engine
    /// and loads every plugin off the async runtime.
    pub async fn start(config: &Config) -> Result<App, AppError> {
        let verifiers = tenant::build_verifiers(&config.tenants).await?;
        let config = config.clone();
        tokio::task::spawn_blocking(move || App::with_verifiers(&config, &verifiers))
            .await
            .map_err(|e| AppError::Task(e.to_string()))?
    }

    /// Builds the engine and loads every tenant's plugin. Blocking (compiles).
    /// Refuses a tenant with `auth.oauth` ([`TenantError::NoVerifier`]): use
    /// [`App::start`].
    pub fn from_config(config: &Config) -> Result<App, AppError> {
        App::with_verifiers(config, &Verifiers::default())
    }

    /// [`App::from_config`] with the OAuth tenants' verifiers already built. Blocking.
    pub fn with_verifiers(config: &Config, verifiers: &Verifiers) -> Result<App, AppError> {
        let runtime = Runtime::new(&config.engine)?;
        let tenants = Tenants::load(&runtime, &config.tenants, verifiers)?;
        let app = App::new(runtime, tenants, config.server.clone());
        app.admin.store(config.admin.clone().map(Arc::new));
        Ok(app)
    }

    /// An app serving `tenants` on `runtime`, without the admin endpoint.
    pub fn new(runtime: Runtime, tenants: Tenants, server: ServerConfig) -> App {
        App {
            runtime,
            tenants: ArcSwap::from_pointee(tenants),
            server,
            admin: ArcSwapOption::empty(),
        }
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

    /// Makes `tenants` and `admin` the ones requests see from now on.
    pub(crate) fn publish(&self, tenants: Tenants, admin: Option<Auth>) {
        self.tenants.store(Arc::new(tenants));
        self.admin.store(admin.map(Arc::new));
    }
}
