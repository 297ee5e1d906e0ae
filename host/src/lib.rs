//! hookbox: an HTTPS host for Okta's User Import Inline Hook that runs each
//! tenant's resolver as a sandboxed WebAssembly component.
//!
//! A request flows one way through the modules:
//! [`config`] → [`tls`] → `server` (accept, HTTP) → `routes` (the routing
//! table, one module per endpoint; [`auth`] before anything is read) →
//! [`pipeline`] (decode → permit → invoke → encode, with [`hook`]'s wire
//! format) → [`plugin`] (engine, load, invoke, limits), with [`tenant`]
//! holding each tenant and [`App`] the state they share. [`reload`] plans
//! and publishes new tenant tables, and watches for reasons to.
//!
//! [`dryrun`] (`hookbox dry-run`) runs a CSV import's rows through the same
//! [`pipeline`], offline.
//!
//! [`serve`] runs the real server on a listener the caller bound, which is
//! how the end-to-end tests start it on port 0.

mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dev;
pub mod dryrun;
mod error;
pub mod hook;
#[cfg(feature = "native-resolver")]
pub mod native;
pub mod pipeline;
pub mod plugin;
pub mod reload;
mod routes;
mod runner;
mod server;
pub mod tenant;
pub mod tls;

pub use app::{App, AppError};
pub use server::ServeError;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::reload::Reloader;

/// Serves HTTPS on `listener` until `shutdown` resolves, then drains
/// in-flight requests. With a `reloader`, `POST /admin/reload` reloads, and
/// so do file changes when `server.watch` is on.
pub async fn serve(
    app: Arc<App>,
    reloader: Option<Arc<Reloader>>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let routes = routes::Router::new()?;
    let watcher = match &reloader {
        Some(r) if app.server().watch => Some(reload::watch(r.clone())?),
        _ => None,
    };
    let ctx = routes::Ctx {
        app,
        reloader,
        router: routes,
    };
    server::serve(Arc::new(ctx), tls, listener, shutdown).await;
    if let Some(w) = watcher {
        w.abort();
    }
    Ok(())
}
