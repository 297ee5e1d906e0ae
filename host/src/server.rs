//! Accepting connections and HTTP (1.1 keep-alive and 2 over TLS); every
//! request is handed to the routing table ([`crate::routes`]).
//!
//! The accept loop never awaits per-connection work: the TLS handshake and
//! HTTP serving run in each connection's own task, so one slow or hostile
//! client cannot stall the others. Every phase of a connection has a
//! deadline ([`conn`]: handshake, the first request's head, idle keep-alive
//! in both HTTP versions, a stalled write), so a client that opens a
//! connection and goes silent cannot hold it. The HTTP version is the one
//! negotiated by ALPN (HTTP/1.1 without ALPN). At `max_connections`, the
//! connection idle the longest is closed to make room (silent connections
//! cannot lock normal clients out); only when every connection has a
//! request in flight does the accept loop wait.
//! On shutdown the loop stops accepting, and connections finish the requests
//! they have in flight.

mod conn;

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use self::conn::{Conn, Cut, Deadlines, Registry, Watched};
use crate::config::ServerConfig;
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

/// How long connections get to finish in-flight requests after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an HTTP/2 connection with requests in flight checks that its
/// peer is alive (an idle one is closed by `idle_timeout` instead).
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// The HTTP side of every connection, configured once from `[server]`.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(server: &ServerConfig) -> Protocols {
        let header_size = server.max_header_size;
        let header_size_usize = usize::try_from(header_size).unwrap_or(usize::MAX);
        let mut http1 = http1::Builder::new();
        // hyper's own head timer would also run on idle keep-alive
        // connections (it starts when hyper waits for the next head), which
        // would make `idle_timeout` meaningless: `conn` times heads instead.
        http1
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(None)
            .max_header_size(header_size_usize);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
            .max_header_list_size(header_size);
        Protocols { http1, http2 }
    }
}

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
    let registry = Arc::new(Registry::default());
    let protocols = Arc::new(Protocols::new(&server));
    let deadlines = Deadlines::new(&server);
    let (draining, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
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
        let permit = match connections.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the cap: close the connection idle the longest to make
                // room; if every connection is busy, wait for one to end.
                registry.evict_idlest();
                tokio::select! {
                    // The semaphore is never closed: an error cannot happen, and would end the loop.
                    p = connections.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let conn = Conn::new(deadlines);
        let registered = registry.register(conn.clone());
        let connection = Connection {
            acceptor: acceptor.clone(),
            ctx: ctx.clone(),
            protocols: protocols.clone(),
            conn,
            peer,
            draining: drain_rx.clone(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _registered = registered;
            connection.serve(tcp).await;
        });
    }

    drop(listener);
    tracing::info!(
        connections = registry.len(),
        "shutting down; draining connections"
    );
    // Every connection closes politely once its requests are answered.
    let _ = draining.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, registry.drained())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

/// One accepted connection, served in its own task.
struct Connection {
    acceptor: TlsAcceptor,
    ctx: Arc<Ctx>,
    protocols: Arc<Protocols>,
    conn: Arc<Conn>,
    peer: SocketAddr,
    draining: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, tcp: TcpStream) {
        let Connection {
            acceptor,
            ctx,
            protocols,
            conn,
            peer,
            mut draining,
        } = self;
        // Answers are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let io = Watched::new(tcp, conn.clone());
        let tls = tokio::select! {
            tls = acceptor.accept(io) => match tls {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            },
            cut = conn.cut() => {
                tracing::debug!(%peer, cut = cut.as_str(), "connection cut during the TLS handshake");
                return;
            }
        };
        // HTTP/2 over TLS is negotiated by ALPN (RFC 9113 §3.2); a client
        // that offers no ALPN speaks HTTP/1.1.
        let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        conn.handshake_done(!http2);
        let service = {
            let conn = conn.clone();
            service_fn(move |req| {
                let ctx = ctx.clone();
                let request = conn.request();
                async move {
                    let response = ctx.router.route(&ctx, req).await;
                    drop(request);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let io = TokioIo::new(tls);
        let ended = if http2 {
            let c = protocols.http2.serve_connection(io, service);
            drive(c, &conn, &mut draining).await
        } else {
            let c = protocols.http1.serve_connection(io, service);
            drive(c, &conn, &mut draining).await
        };
        match ended {
            Ended::Done => {}
            Ended::Error(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            Ended::Cut(cut) => tracing::debug!(%peer, cut = cut.as_str(), "connection cut"),
        }
    }
}

/// How a connection ended.
enum Ended {
    Done,
    Error(String),
    Cut(Cut),
}

/// Serves `http` until it ends, is cut by a deadline of `conn`, or is closed
/// politely (idle, or the server draining).
async fn drive<C>(http: C, conn: &Conn, draining: &mut watch::Receiver<bool>) -> Ended
where
    C: GracefulConnection,
    C::Error: Display,
{
    tokio::pin!(http);
    let mut closing = false;
    loop {
        tokio::select! {
            result = http.as_mut() => {
                return match result {
                    Ok(()) => Ended::Done,
                    Err(e) => Ended::Error(e.to_string()),
                };
            }
            cut = conn.cut() => {
                // Idle: say goodbye (HTTP/2 GOAWAY, so a client does not
                // send a request into a closing connection), within
                // `write_timeout`. Anything else, or a goodbye not heard: cut.
                if cut != Cut::Idle || closing {
                    return Ended::Cut(cut);
                }
                http.as_mut().graceful_shutdown();
                conn.closing();
                closing = true;
            }
            _ = draining.changed(), if !closing => {
                http.as_mut().graceful_shutdown();
                conn.closing();
                closing = true;
            }
        }
    }
}
