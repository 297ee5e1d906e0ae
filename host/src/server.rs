//! Accepting connections and HTTP (1.1 keep-alive and 2 over TLS); every
//! request is handed to the routing table ([`crate::routes`]).
//!
//! The accept loop never awaits per-connection work: the TLS handshake (with
//! a timeout) and HTTP serving run in each connection's own task, so one
//! slow or hostile client cannot stall the others. On shutdown the loop stops
//! accepting, and connections finish the requests they have in flight
//! within `[server] shutdown_grace` (keep-alive connections are told to
//! close after their current request). The delay before that, while
//! `/readyz` fails but everything is still served, is the caller's
//! (`shutdown` resolves only once it is over; see [`crate::drain`]).
//!
//! The ops listener (`[server] ops_listen`, [`serve_ops`]) is plain HTTP/1.1
//! with the ops routing table, stops and drains with the same signal.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::routes::Ctx;

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The routing table is inconsistent (a bug, found at start).
    #[error("the routing table is inconsistent: {0}")]
    Routes(#[from] matchit::InsertError),
    /// `server.watch` is on and the files cannot be watched.
    #[error("cannot watch the configuration's files: {0}")]
    Watch(#[from] notify::Error),
}

/// Connections the ops listener serves at once (probes and a scraper need a few).
const OPS_MAX_CONNECTIONS: usize = 64;

/// Serves `ctx`'s routes until `shutdown` resolves, then drains.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let server = ctx.app.server().clone();
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(server.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(server.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            // The semaphore is never closed: an error cannot happen, and would end the loop.
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let handshake_timeout = server.handshake_timeout;
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(ctx.router.route(&ctx, req).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    drain("main", graceful, server.shutdown_grace).await;
}

/// Tells every connection to finish its requests in flight and close, and
/// waits for them at most `grace`.
async fn drain(listener: &'static str, graceful: GracefulShutdown, grace: Duration) {
    tracing::info!(
        listener,
        connections = graceful.count(),
        grace_ms = grace.as_millis() as u64,
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener,
            "shutdown_grace is over; closing the connections still open"
        );
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.1 on the
/// ops listener until `shutdown` resolves, then drains like [`serve`].
pub(crate) async fn serve_ops(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let server = ctx.app.server().clone();
    let connections = Arc::new(Semaphore::new(OPS_MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(server.handshake_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "ops accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ctx = ctx.clone();
        let service = service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(ctx.router.route(&ctx, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(tcp), service);
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = watched.await {
                tracing::debug!(%peer, error = %e, "ops connection ended with an error");
            }
        });
    }
    drop(listener);
    drain("ops", graceful, server.shutdown_grace).await;
}
