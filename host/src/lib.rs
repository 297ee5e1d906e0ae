//! hookbox: an HTTPS host for Okta's User Import Inline Hook that runs each
//! tenant's resolver as a sandboxed WebAssembly component.
//!
//! A request flows one way through the modules:
//! [`config`] → [`tls`] → `server` (accept, HTTP) → `routes` (the routing
//! table, one module per endpoint; [`auth`] before anything is read) →
//! [`pipeline`] (decode → permit → invoke → encode, with [`hook`]'s wire
//! format) → [`plugin`] (engine, load, invoke, limits), with [`tenant`]
//! holding each tenant and [`App`] the state they share, and [`log`] bounding
//! what reaches the log. [`reload`] plans and publishes new tenant tables,
//! and watches for reasons to. Okta event hooks take a second path: `routes`
//! → [`events`] (decode, queue durably, acknowledge) and, off the request
//! path, the events worker → the plugin's event handler.
//!
//! [`dryrun`] (`hookbox dry-run`) runs a CSV import's rows through the same
//! [`pipeline`], offline.
//!
//! [`serve`] runs the real server on a listener the caller bound, which is
//! how the end-to-end tests start it on port 0; [`serve_ops`] the plain-HTTP
//! ops listener. Operations: [`metrics`] (one registry in [`App`]),
//! [`readiness`] (`/readyz`), [`drain`] (SIGTERM/SIGINT).

mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dev;
pub mod drain;
pub mod dryrun;
mod error;
pub mod events;
pub mod hook;
pub mod log;
pub mod metrics;
#[cfg(feature = "native-resolver")]
pub mod native;
pub mod pipeline;
pub mod plugin;
pub mod readiness;
pub mod recycle;
pub mod reload;
mod routes;
mod runner;
mod server;
pub mod tenant;
pub mod tls;

/// Entry points for the `cargo fuzz` targets in `fuzz/` only: not an API,
/// may change at any time. Everything else the targets drive is public
/// already; these render refusals exactly as the server does, so a target can
/// check that what a client gets is Okta's error body.
#[doc(hidden)]
pub mod fuzzing {
    use http_body_util::BodyExt;

    use crate::error::HttpError;
    use crate::hook::decode::DecodeError;
    use crate::pipeline::Refused;

    /// Status and body the import route answers for a request the decoder refused.
    pub fn refused_import(e: DecodeError) -> (u16, Vec<u8>) {
        rendered(HttpError::from(Refused::BadRequest(e)))
    }

    /// Status and body the events route answers for a delivery the decoder refused.
    pub fn refused_delivery(e: DecodeError) -> (u16, Vec<u8>) {
        rendered(HttpError::BadRequest(e.to_string()))
    }

    fn rendered(e: HttpError) -> (u16, Vec<u8>) {
        let response = e.into_response();
        let status = response.status().as_u16();
        // A `Full` body is ready at once: no runtime needed to collect it.
        let body = futures::executor::block_on(response.into_body().collect())
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default();
        (status, body)
    }
}

pub use app::{App, AppError};
pub use server::ServeError;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::reload::Reloader;

/// Serves HTTPS on `listener` until `shutdown` resolves, then drains
/// in-flight requests. With a `reloader`, `POST /admin/reload` reloads, and
/// so do file changes when `server.watch` is on. The event worker
/// ([`events`]) runs alongside, and stops once the server has drained
/// (finishing the events in hand, leaving the rest queued); so does the
/// engine recycler ([`recycle`]).
pub async fn serve(
    app: Arc<App>,
    reloader: Option<Arc<Reloader>>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let routes = routes::Router::main()?;
    let watcher = match &reloader {
        Some(r) if app.server().watch => Some(reload::watch(r.clone())?),
        _ => None,
    };
    let ctx = routes::Ctx {
        app: app.clone(),
        reloader,
        router: routes,
        ops: false,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Inside this future, not spawned: dropping `serve` drops them too.
    let recycler = recycle::run(app.clone(), stopped.clone());
    let worker = events::worker::run(app, stopped);
    let server = async {
        server::serve(Arc::new(ctx), tls, listener, shutdown).await;
        let _ = stop.send(true);
    };
    tokio::join!(server, worker, recycler);
    if let Some(w) = watcher {
        w.abort();
    }
    Ok(())
}

/// Serves `/healthz`, `/readyz` and `/metrics` over plain HTTP on `listener`
/// (`[server] ops_listen`) until `shutdown` resolves, then drains.
pub async fn serve_ops(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let ctx = routes::Ctx {
        app,
        reloader: None,
        router: routes::Router::ops()?,
        ops: true,
    };
    server::serve_ops(Arc::new(ctx), listener, shutdown).await;
    Ok(())
}
