//! One connection's deadlines, for every phase of its life, and the table of
//! live connections that makes room at the connection cap.
//!
//! A connection is always in exactly one phase, and each phase but one has a
//! deadline (`[server]` keys in brackets):
//!
//! | phase | from | cut after |
//! |---|---|---|
//! | handshake | accept | `handshake_timeout` |
//! | waiting | end of the handshake | `header_timeout`: the first request's head must be complete |
//! | idle | the last answer of a keep-alive connection | `idle_timeout` (HTTP/2: PINGs or not) |
//! | head | the first byte after idle (HTTP/1.1 only) | `header_timeout` |
//! | busy | a request reached the router | none here: `request_timeout` and the plugin's deadline bound it |
//! | closing | a polite close began (GOAWAY) | `write_timeout` |
//!
//! A head the client pipelined behind a whole request was read before the
//! answer, so no byte after idle starts its `head` phase: the connection
//! stays idle (cut at `idle_timeout`, evictable) while hyper waits for the
//! rest of it. That is the same hold silence after an answer gives, so no
//! phase is unbounded; hyper's own head timer cannot do better, since it
//! also runs on idle keep-alive connections.
//!
//! Independently of the phase, a write to the client that makes no progress
//! for `write_timeout` cuts the connection (a client that never reads its
//! answers). Invariants: [`Conn::cut`] resolves at the earliest deadline of
//! the current state and is re-armed by every change ([`Notify`] keeps one
//! wake-up if nobody is waiting, so a change is never lost); a connection
//! with a request in flight is never evicted, and reads never extend a
//! deadline (a trickling client cannot keep a connection open).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ServerConfig;

/// The budgets of [`Conn`]'s phases; see the module docs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    handshake: Duration,
    header: Duration,
    idle: Duration,
    write: Duration,
}

impl Deadlines {
    pub(super) fn new(server: &ServerConfig) -> Deadlines {
        Deadlines {
            handshake: server.handshake_timeout,
            header: server.header_timeout,
            idle: server.idle_timeout,
            write: server.write_timeout,
        }
    }
}

/// Why a connection was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// The TLS handshake took longer than `handshake_timeout`.
    Handshake,
    /// A request's head took longer than `header_timeout` (or none came).
    Header,
    /// No request for `idle_timeout`.
    Idle,
    /// A write made no progress for `write_timeout`.
    Write,
    /// A polite close (GOAWAY) did not finish within `write_timeout`.
    Closing,
    /// Closed to make room at `max_connections`.
    Evicted,
    /// Still open when a drain's `shutdown_grace` ended.
    Grace,
}

impl Cut {
    /// A short name for the log line.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Cut::Handshake => "handshake timeout",
            Cut::Header => "header timeout",
            Cut::Idle => "idle timeout",
            Cut::Write => "write timeout",
            Cut::Closing => "close timeout",
            Cut::Evicted => "evicted at the connection cap",
            Cut::Grace => "shutdown grace over",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Handshake,
    Waiting,
    Idle,
    Head,
    Busy(usize),
    Closing,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// When `phase` began.
    since: Instant,
    /// Since when a write has been waiting for the client to read.
    write_blocked: Option<Instant>,
    evicted: bool,
    /// Closed because a drain's grace ended (cut whatever its phase).
    grace_over: bool,
    /// Set once a polite close began: the phase after the last answer is
    /// `Closing`, not `Idle`.
    closing: bool,
    /// HTTP/1.1: the first byte after idle starts the head's timer. HTTP/2
    /// sends control frames (WINDOW_UPDATE, PING) on idle connections, so
    /// there a byte means nothing and only `idle_timeout` applies.
    reads_start_head: bool,
}

/// One connection's phase and deadlines, shared by its I/O ([`Watched`]),
/// its service (a [`Request`] per request in flight) and its task
/// ([`Conn::cut`]).
#[derive(Debug)]
pub(super) struct Conn {
    deadlines: Deadlines,
    state: Mutex<State>,
    changed: Notify,
}

impl Conn {
    /// A connection just accepted: its handshake's timer runs.
    pub(super) fn new(deadlines: Deadlines) -> Arc<Conn> {
        Arc::new(Conn {
            deadlines,
            state: Mutex::new(State {
                phase: Phase::Handshake,
                since: Instant::now(),
                write_blocked: None,
                evicted: false,
                grace_over: false,
                closing: false,
                reads_start_head: true,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, valid after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state());
        self.changed.notify_one();
    }

    /// The handshake is done; `http1` says whether a read after idle starts
    /// a request's head (see [`State::reads_start_head`]).
    pub(super) fn handshake_done(&self, http1: bool) {
        self.update(|s| {
            if matches!(s.phase, Phase::Handshake) {
                s.phase = Phase::Waiting;
                s.since = Instant::now();
            }
            s.reads_start_head = http1;
        });
    }

    /// A request reached the router; its phase ends when the guard drops.
    pub(super) fn request(self: &Arc<Self>) -> Request {
        self.update(|s| {
            s.phase = match s.phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            };
            s.since = Instant::now();
        });
        Request(self.clone())
    }

    /// A polite close began (GOAWAY, or `Connection: close` after the answer
    /// in flight): it gets `write_timeout` once no request is in flight.
    pub(super) fn closing(&self) {
        self.update(|s| {
            s.closing = true;
            if !matches!(s.phase, Phase::Busy(_)) {
                s.phase = Phase::Closing;
                s.since = Instant::now();
            }
        });
    }

    /// Since when the connection has had no request in flight, if it may be
    /// evicted (it has none, and it was not evicted already).
    fn evictable_since(&self) -> Option<Instant> {
        let s = self.state();
        match s.phase {
            _ if s.evicted => None,
            Phase::Busy(_) => None,
            _ => Some(s.since),
        }
    }

    fn evict(&self) {
        self.update(|s| s.evicted = true);
    }

    fn on_read(&self) {
        let mut s = self.state();
        if s.reads_start_head && matches!(s.phase, Phase::Idle) {
            s.phase = Phase::Head;
            s.since = Instant::now();
            drop(s);
            self.changed.notify_one();
        }
    }

    fn on_write(&self, blocked: bool) {
        let mut s = self.state();
        match (blocked, s.write_blocked) {
            (true, None) => {
                s.write_blocked = Some(Instant::now());
                drop(s);
                self.changed.notify_one();
            }
            // Progress ends the wait; the old deadline's wake-up finds nothing due.
            (false, Some(_)) => s.write_blocked = None,
            _ => {}
        }
    }

    /// The earliest deadline of the current state, and what passing it means.
    fn next_cut(&self) -> Option<(Instant, Cut)> {
        let s = self.state();
        if s.grace_over {
            return Some((Instant::now(), Cut::Grace));
        }
        if s.evicted {
            return Some((Instant::now(), Cut::Evicted));
        }
        let d = self.deadlines;
        let phase = match s.phase {
            Phase::Handshake => Some((s.since + d.handshake, Cut::Handshake)),
            Phase::Waiting | Phase::Head => Some((s.since + d.header, Cut::Header)),
            Phase::Idle => Some((s.since + d.idle, Cut::Idle)),
            Phase::Closing => Some((s.since + d.write, Cut::Closing)),
            Phase::Busy(_) => None,
        };
        let write = s.write_blocked.map(|t| (t + d.write, Cut::Write));
        match (phase, write) {
            (Some(p), Some(w)) => Some(if w.0 < p.0 { w } else { p }),
            (p, w) => p.or(w),
        }
    }

    /// Resolves when the connection must be cut, and says why.
    pub(super) async fn cut(&self) -> Cut {
        loop {
            match self.next_cut() {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// A request in flight on a [`Conn`]: while one exists, the connection is
/// busy (no deadline of its own, never evicted).
pub(super) struct Request(Arc<Conn>);

impl Drop for Request {
    fn drop(&mut self) {
        self.0.update(|s| {
            s.phase = match s.phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ if s.closing => Phase::Closing,
                _ => Phase::Idle,
            };
            s.since = Instant::now();
        });
    }
}

/// A transport that reports its reads and stalled writes to its [`Conn`].
/// It sits under TLS, so it sees what really crosses the socket.
pub(super) struct Watched<T> {
    io: T,
    conn: Arc<Conn>,
}

impl<T> Watched<T> {
    pub(super) fn new(io: T, conn: Arc<Conn>) -> Watched<T> {
        Watched { io, conn }
    }

    fn written<R>(&self, poll: Poll<R>) -> Poll<R> {
        self.conn.on_write(poll.is_pending());
        poll
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.on_read();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.written(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.written(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.written(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.written(poll)
    }
}

/// Every live connection, so that at the cap the one idle the longest can
/// be closed to make room, and so that a drain can wait for the last one.
#[derive(Debug, Default)]
pub(super) struct Registry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    emptied: Notify,
}

impl Registry {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `conn` until the returned guard drops.
    pub(super) fn register(self: &Arc<Self>, conn: Arc<Conn>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.live().insert(id, conn);
        Registered {
            registry: self.clone(),
            id,
        }
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        self.live().len()
    }

    /// Closes the connection that has had no request in flight for the
    /// longest (a silent client, a keep-alive connection nobody uses);
    /// `false` if every connection has a request in flight.
    ///
    /// Oldest first: a flood of silent connections evicts its own oldest
    /// members before a new client that is still sending its request.
    pub(super) fn evict_idlest(&self) -> bool {
        let live = self.live();
        let idlest = live
            .values()
            .filter_map(|c| c.evictable_since().map(|t| (t, c)))
            .min_by_key(|(t, _)| *t);
        match idlest {
            Some((_, conn)) => {
                conn.evict();
                true
            }
            None => false,
        }
    }

    /// Closes every connection at once, requests in flight or not (when a
    /// drain's grace is over). Each is cut by its own task, which drops its
    /// requests as a client gone would.
    pub(super) fn close_all(&self) {
        for conn in self.live().values() {
            conn.update(|s| s.grace_over = true);
        }
    }

    /// Resolves once no connection is open.
    pub(super) async fn drained(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.live().is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

/// A connection's place in the [`Registry`], given up on drop.
pub(super) struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut live = self.registry.live();
        live.remove(&self.id);
        if live.is_empty() {
            drop(live);
            self.registry.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlines() -> Deadlines {
        Deadlines {
            handshake: Duration::from_secs(1),
            header: Duration::from_secs(2),
            idle: Duration::from_secs(3),
            write: Duration::from_secs(4),
        }
    }

    fn due(conn: &Conn) -> Option<(Duration, Cut)> {
        let s = conn.state().since;
        conn.next_cut().map(|(at, why)| (at - s, why))
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let conn = Conn::new(deadlines());
        assert_eq!(due(&conn), Some((Duration::from_secs(1), Cut::Handshake)));
        conn.handshake_done(true);
        assert_eq!(due(&conn), Some((Duration::from_secs(2), Cut::Header)));
        // Bytes of the first request do not extend its head's deadline.
        conn.on_read();
        assert_eq!(due(&conn), Some((Duration::from_secs(2), Cut::Header)));
        let first = conn.request();
        let second = conn.request();
        assert_eq!(due(&conn), None);
        drop(first);
        assert_eq!(due(&conn), None, "one request still in flight");
        drop(second);
        assert_eq!(due(&conn), Some((Duration::from_secs(3), Cut::Idle)));
        conn.on_read();
        assert_eq!(due(&conn), Some((Duration::from_secs(2), Cut::Header)));
        conn.closing();
        assert_eq!(due(&conn), Some((Duration::from_secs(4), Cut::Closing)));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_reads_do_not_start_a_head_and_idle_holds() {
        let conn = Conn::new(deadlines());
        conn.handshake_done(false);
        drop(conn.request());
        conn.on_read();
        assert_eq!(due(&conn), Some((Duration::from_secs(3), Cut::Idle)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_cuts_even_a_busy_connection() {
        let conn = Conn::new(deadlines());
        conn.handshake_done(true);
        let _busy = conn.request();
        conn.on_write(true);
        let start = Instant::now();
        assert_eq!(conn.cut().await, Cut::Write);
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        // Progress clears it.
        conn.on_write(false);
        assert_eq!(conn.next_cut(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn cut_wakes_on_changes() {
        let conn = Conn::new(deadlines());
        conn.handshake_done(true);
        let busy = conn.request();
        let waiter = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.cut().await })
        };
        tokio::task::yield_now().await;
        let start = Instant::now();
        drop(busy);
        assert_eq!(waiter.await.expect("joined"), Cut::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_takes_the_idlest_and_never_a_busy_one() {
        let registry = Arc::new(Registry::default());
        let old = Conn::new(deadlines());
        let _r1 = registry.register(old.clone());
        tokio::time::advance(Duration::from_millis(10)).await;
        let busy = Conn::new(deadlines());
        let _r2 = registry.register(busy.clone());
        let _req = busy.request();
        tokio::time::advance(Duration::from_millis(10)).await;
        let young = Conn::new(deadlines());
        let _r3 = registry.register(young.clone());
        assert!(registry.evict_idlest());
        assert_eq!(old.cut().await, Cut::Evicted);
        assert!(registry.evict_idlest());
        assert_eq!(young.cut().await, Cut::Evicted);
        assert!(!registry.evict_idlest(), "only a busy one is left");
        assert_eq!(registry.len(), 3);
    }
}
