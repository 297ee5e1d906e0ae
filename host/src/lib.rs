//! hookbox: an HTTPS host for Okta's User Import Inline Hook that runs each
//! tenant's resolver as a sandboxed WebAssembly component.
//!
//! A request flows one way through the modules:
//! [`config`] → [`tls`] → [`server`] (accept, HTTP, routing) → [`auth`] →
//! [`hook`] (decode → validate → encode) → [`plugin`] (engine, load, invoke,
//! limits), with [`tenant`] holding the routing table.
//!
//! [`serve`] runs the real server on a listener the caller bound, which is
//! how the end-to-end tests start it on port 0.

pub mod auth;
pub mod cli;
pub mod config;
pub mod dev;
pub mod error;
pub mod hook;
#[cfg(feature = "native-resolver")]
pub mod native;
pub mod plugin;
pub mod reload;
pub mod runner;
pub mod server;
pub mod tenant;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use std::path::PathBuf;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::config::{Config, Overrides, ServerConfig};
use crate::plugin::Runtime;
use crate::tenant::Tenants;

/// Everything a running server shares between requests.
pub struct App {
    pub runtime: Runtime,
    /// The routing table, swapped whole (never edited in place).
    pub tenants: ArcSwap<Tenants>,
    pub server: ServerConfig,
    /// `POST /admin/reload`'s credentials; `None`: the endpoint does not exist.
    /// Swapped by a reload, like the tenants.
    pub admin: ArcSwapOption<Auth>,
    /// Where reloads read the configuration from; `None`: reloading is not possible.
    pub(crate) reloader: Option<reload::Reloader>,
}

impl App {
    /// Builds the engine and loads every tenant's plugin. Blocking (compiles).
    pub fn from_config(config: &Config) -> anyhow::Result<App> {
        let runtime = Runtime::new(&config.engine)?;
        let tenants = Tenants::load(&runtime, &config.tenants)?;
        let app = App::new(runtime, tenants, config.server.clone());
        app.admin.store(config.admin.clone().map(Arc::new));
        Ok(app)
    }

    pub fn new(runtime: Runtime, tenants: Tenants, server: ServerConfig) -> App {
        App {
            runtime,
            tenants: ArcSwap::from_pointee(tenants),
            server,
            admin: ArcSwapOption::empty(),
            reloader: None,
        }
    }

    /// Enables reloading (`SIGHUP`, `POST /admin/reload`, `server.watch`) from the
    /// file `config` was loaded from, with the same overrides.
    pub fn with_reload(mut self, path: PathBuf, overrides: Overrides, config: &Config) -> App {
        self.reloader = Some(reload::Reloader::new(path, overrides, config));
        self
    }

    /// Whether this app can reload its configuration.
    pub fn can_reload(&self) -> bool {
        self.reloader.is_some()
    }
}

/// Serves HTTPS on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // With `server.watch`, file changes trigger reloads while the server runs.
    let watcher = if app.server.watch && app.can_reload() {
        Some(reload::watch(app.clone())?)
    } else {
        None
    };
    let result = server::serve(app, tls, listener, shutdown).await;
    if let Some(w) = watcher {
        w.abort();
    }
    result
}
