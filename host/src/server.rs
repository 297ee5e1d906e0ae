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
//!
//! On shutdown the loop stops accepting, and connections finish the requests
//! they have in flight within `[server] shutdown_grace` (keep-alive
//! connections are told to close after their current request: HTTP/2
//! GOAWAY, HTTP/1.1 `Connection: close`); past it, those still open are
//! closed, and serving returns only once none is. The delay before that, while
//! `/readyz` fails but everything is still served, is the caller's
//! (`shutdown` resolves only once it is over; see [`crate::drain`]).
//!
//! The ops listener (`[server] ops_listen`, [`serve_ops`]) is plain HTTP/1.1
//! with the ops routing table and the same accept loop: the same deadlines
//! (no handshake phase: its first request's head is timed from the accept),
//! the same head size limit, eviction at its own small cap
//! ([`OPS_MAX_CONNECTIONS`]), and it stops and drains with the same signal.

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

/// Connections the ops listener serves at once (probes and a scraper need a few).
const OPS_MAX_CONNECTIONS: usize = 64;

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
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
            .max_header_list_size(header_size);
        Protocols {
            http1: http1_builder(server),
            http2,
        }
    }
}

/// The HTTP/1.1 side, the same on both listeners.
fn http1_builder(server: &ServerConfig) -> http1::Builder {
    let header_size = usize::try_from(server.max_header_size).unwrap_or(usize::MAX);
    let mut http1 = http1::Builder::new();
    // hyper's own head timer would also run on idle keep-alive connections
    // (it starts when hyper waits for the next head), which would make
    // `idle_timeout` meaningless: `conn` times heads instead.
    http1
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(None)
        .max_header_size(header_size);
    http1
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
    let protocols = Arc::new(Protocols::new(&server));
    let limits = Limits {
        name: "main",
        max_connections: server.max_connections,
        deadlines: Deadlines::new(&server),
        grace: server.shutdown_grace,
    };
    accept_loop(limits, listener, shutdown, |tcp, peer, conn, draining| {
        let connection = Connection {
            acceptor: acceptor.clone(),
            ctx: ctx.clone(),
            protocols: protocols.clone(),
            conn,
            peer,
            draining,
        };
        connection.serve(tcp)
    })
    .await;
}

/// Serves `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.1 on the
/// ops listener until `shutdown` resolves, then drains like [`serve`].
pub(crate) async fn serve_ops(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let server = ctx.app.server().clone();
    let http1 = Arc::new(http1_builder(&server));
    let limits = Limits {
        name: "ops",
        max_connections: OPS_MAX_CONNECTIONS,
        deadlines: Deadlines::new(&server),
        grace: server.shutdown_grace,
    };
    accept_loop(limits, listener, shutdown, |tcp, peer, conn, draining| {
        serve_plain(ctx.clone(), http1.clone(), tcp, peer, conn, draining)
    })
    .await;
}

/// What an accept loop is bound by.
struct Limits {
    /// The listener's name in the log (`main`, `ops`).
    name: &'static str,
    /// Connections served at once (see the module docs for the cap).
    max_connections: usize,
    deadlines: Deadlines,
    /// How long connections get to finish their requests once draining.
    grace: Duration,
}

/// Accepts connections on `listener` until `shutdown` resolves, each served
/// in its own task by `serve_one` (given its [`Conn`] and the drain signal),
/// making room at the cap; then drains.
async fn accept_loop<S, F>(
    limits: Limits,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut serve_one: S,
) where
    S: FnMut(TcpStream, SocketAddr, Arc<Conn>, watch::Receiver<bool>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Limits {
        name,
        max_connections,
        deadlines,
        grace,
    } = limits;
    let connections = Arc::new(Semaphore::new(max_connections));
    let registry = Arc::new(Registry::default());
    let (draining, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
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
        let served = serve_one(tcp, peer, conn, drain_rx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _registered = registered;
            served.await;
        });
    }

    drop(listener);
    tracing::info!(
        listener = name,
        connections = registry.len(),
        grace_ms = grace.as_millis() as u64,
        "stopped accepting; draining connections"
    );
    // Every connection closes politely once its requests are answered.
    let _ = draining.send(true);
    if tokio::time::timeout(grace, registry.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            connections = registry.len(),
            "shutdown_grace is over; closing the connections still open"
        );
        // Cut now rather than left to whoever drops the runtime: the
        // requests still in flight end here (their plugin calls dropped),
        // and when this returns no connection of this listener is open.
        registry.close_all();
        registry.drained().await;
    }
}

/// One accepted connection of the main listener, served in its own task.
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
        let service = routed(ctx, conn.clone());
        let io = TokioIo::new(tls);
        let ended = if http2 {
            let c = protocols.http2.serve_connection(io, service);
            drive(c, &conn, &mut draining).await
        } else {
            let c = protocols.http1.serve_connection(io, service);
            drive(c, &conn, &mut draining).await
        };
        ended.log(peer, "main");
    }
}

/// One accepted connection of the ops listener: plain HTTP/1.1.
async fn serve_plain(
    ctx: Arc<Ctx>,
    http1: Arc<http1::Builder>,
    tcp: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    mut draining: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    // No TLS: the first request's head is timed from the accept.
    conn.handshake_done(true);
    let io = TokioIo::new(Watched::new(tcp, conn.clone()));
    let service = routed(ctx, conn.clone());
    let c = http1.serve_connection(io, service);
    drive(c, &conn, &mut draining).await.log(peer, "ops");
}

/// The service of one connection: each request to the routing table, busy
/// on `conn` (no deadline of its own, never evicted) until it is answered.
fn routed(
    ctx: Arc<Ctx>,
    conn: Arc<Conn>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<http_body_util::Full<bytes::Bytes>>,
    Error = Infallible,
    Future = impl Future<
        Output = Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, Infallible>,
    > + Send
             + 'static,
> + Clone {
    service_fn(move |req| {
        let ctx = ctx.clone();
        let request = conn.request();
        async move {
            let response = ctx.router.route(&ctx, req).await;
            drop(request);
            Ok::<_, Infallible>(response)
        }
    })
}

/// How a connection ended.
enum Ended {
    Done,
    Error(String),
    Cut(Cut),
}

impl Ended {
    fn log(self, peer: SocketAddr, listener: &'static str) {
        match self {
            Ended::Done => {}
            Ended::Error(e) => {
                tracing::debug!(%peer, listener, error = %e, "connection ended with an error")
            }
            Ended::Cut(cut) => {
                tracing::debug!(%peer, listener, cut = cut.as_str(), "connection cut")
            }
        }
    }
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
