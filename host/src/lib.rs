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
pub mod server;
pub mod tenant;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::config::{Config, ServerConfig};
use crate::plugin::Runtime;
use crate::tenant::Tenants;

/// Everything a running server shares between requests.
pub struct App {
    pub runtime: Runtime,
    /// The routing table, swapped whole (never edited in place).
    pub tenants: ArcSwap<Tenants>,
    pub server: ServerConfig,
}

impl App {
    /// Builds the engine and loads every tenant's plugin. Blocking (compiles).
    pub fn from_config(config: &Config) -> anyhow::Result<App> {
        let runtime = Runtime::new(&config.engine)?;
        let tenants = Tenants::load(&runtime, &config.tenants)?;
        Ok(App::new(runtime, tenants, config.server.clone()))
    }

    pub fn new(runtime: Runtime, tenants: Tenants, server: ServerConfig) -> App {
        App {
            runtime,
            tenants: ArcSwap::from_pointee(tenants),
            server,
        }
    }
}

/// Serves HTTPS on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server::serve(app, tls, listener, shutdown).await
}
