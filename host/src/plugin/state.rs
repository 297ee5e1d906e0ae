//! What one request's `Store` holds, and the host side of everything a
//! plugin may call: the `host` interface (log, config-get) of both WIT
//! versions, a locked-down WASI, and the memory limiter. The 0.2.0 `claims`
//! and `directory` interfaces are in `claims.rs`.
//!
//! A `State` belongs to one store, which belongs to one tenant and serves one
//! request at a time: one request in `fresh` mode, up to
//! `reuse_max_requests` in `reuse` mode, with [`State::begin`] resetting
//! everything per-request before each. It is never shared between tenants.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::v0_2::hookbox::okta_import as v0_2;
use super::claims::{Lookups, StoreCalls, StoreScope, reserve};
use super::fair::CallCpu;
use super::hookbox::okta_import::host::{self, Level};
use super::hookbox::okta_import::types;
use super::limits::Limits;

/// Longest log line kept from a plugin; longer lines are cut.
pub const MAX_LOG_LINE: usize = 1024;
/// Log lines kept from one invocation (host `log` calls plus stdout/stderr);
/// the rest are counted, not kept, so a chatty plugin cannot flood the log.
pub const MAX_LOG_LINES: usize = 64;
/// Bytes of stdout and of stderr kept from one invocation.
pub const MAX_STDIO_BYTES: usize = 16 * 1024;

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    settings: Arc<BTreeMap<String, String>>,
    pub(super) limiter: MemoryLimiter,
    pub(super) deadline: Instant,
    pub(super) log: PluginLog,
    stdout: Capture,
    stderr: Capture,
    /// The tenant's space of the claim store (always this store's tenant).
    pub(super) scope: StoreScope,
    /// Store calls made during the current request.
    pub(super) calls: StoreCalls,
    /// What a store call (or a directory lookup) leaves of the deadline for
    /// the plugin itself.
    pub(super) reserve: Duration,
    /// Directory lookups left in the current request (made at its first lookup).
    pub(super) lookups: Lookups,
    /// The current call's hold on a CPU slot (`None` between calls of a
    /// reused instance, and while nothing runs).
    pub(super) cpu: Option<CallCpu>,
}

impl State {
    /// A store's state for one tenant (its settings, limits and store
    /// scope); [`State::begin`] must run before each request.
    pub fn new(
        settings: Arc<BTreeMap<String, String>>,
        limits: &Limits,
        scope: StoreScope,
    ) -> State {
        let stdout = Capture::default();
        let stderr = Capture::default();
        // Deny by default: the builder starts with no preopened directories, no
        // environment, no arguments and an empty stdin; network access is
        // switched off explicitly. Clocks and randomness stay (std needs them
        // for `Instant` and `HashMap`), and stdio is captured into the log.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            wasi,
            table: ResourceTable::new(),
            settings,
            limiter: MemoryLimiter::new(limits.memory),
            deadline: Instant::now(),
            log: PluginLog::default(),
            stdout,
            stderr,
            scope,
            calls: StoreCalls::default(),
            reserve: reserve(limits.deadline),
            lookups: None,
            cpu: None,
        }
    }

    /// Resets what belongs to one request, so nothing of the previous request
    /// of a reused store leaks into this one's figures or log: the deadline,
    /// the log, captured stdio, the store-call count, the directory lookup
    /// budget and the limiter's `exceeded` flag. The settings
    /// and the memory limit are the tenant's and stay. The limiter's `peak`
    /// stays too: linear memory never shrinks, so the instance's largest
    /// memory so far is also the largest it has during this request.
    pub fn begin(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.log = PluginLog::default();
        for capture in [&self.stdout, &self.stderr] {
            *capture.lock() = CaptureBuf::default();
        }
        self.limiter.exceeded = false;
        self.calls = StoreCalls::default();
        self.lookups = None;
    }

    /// Store calls made since [`State::begin`], and calls refused by the cap.
    pub fn store_calls(&self) -> (u32, u32) {
        (self.calls.made, self.calls.refused)
    }

    /// Everything the plugin logged since [`State::begin`], stdout and stderr
    /// included (as lines), in that order; leaves the log and captures empty.
    pub fn take_log(&mut self) -> PluginLog {
        let mut log = std::mem::take(&mut self.log);
        for (capture, level) in [(&self.stdout, Level::Info), (&self.stderr, Level::Warn)] {
            let buf = std::mem::take(&mut *capture.lock());
            for line in String::from_utf8_lossy(&buf.data)
                .lines()
                .filter(|l| !l.is_empty())
            {
                log.push(level, line);
            }
            if buf.dropped > 0 {
                log.dropped += 1;
            }
        }
        log
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}

impl host::Host for State {
    fn log(&mut self, level: Level, message: String) {
        self.log.push(level, &message);
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).cloned()
    }
}

/// 0.2.0's `host`: the same functions as 0.1.0's, on its own (versioned)
/// instance name; one implementation.
impl v0_2::host::Host for State {
    fn log(&mut self, level: v0_2::host::Level, message: String) {
        let level = match level {
            v0_2::host::Level::Trace => Level::Trace,
            v0_2::host::Level::Debug => Level::Debug,
            v0_2::host::Level::Info => Level::Info,
            v0_2::host::Level::Warn => Level::Warn,
            v0_2::host::Level::Error => Level::Error,
        };
        <State as host::Host>::log(self, level, message);
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        <State as host::Host>::config_get(self, key)
    }
}

impl v0_2::events::Host for State {}

/// The lines a plugin logged in one invocation, capped.
#[derive(Debug, Default, Clone)]
pub struct PluginLog {
    pub lines: Vec<LogLine>,
    /// Lines not kept because the cap was reached.
    pub dropped: usize,
}

impl PluginLog {
    fn push(&mut self, level: Level, message: &str) {
        if self.lines.len() >= MAX_LOG_LINES {
            self.dropped += 1;
            return;
        }
        self.lines.push(LogLine {
            level,
            message: truncate(message, MAX_LOG_LINE).to_owned(),
        });
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Enforces a tenant's memory limit and the engine's table limit, and
/// records whether the plugin hit them, so an allocation failure inside the
/// guest (which usually surfaces as an `unreachable` trap from the guest's
/// allocator) is reported as what it is.
pub struct MemoryLimiter {
    limit: usize,
    pub(super) peak: usize,
    pub(super) exceeded: bool,
    /// A table grow past [`MAX_TABLE_ELEMENTS`] was refused.
    pub(super) table_exceeded: bool,
}

impl MemoryLimiter {
    fn new(limit: u64) -> MemoryLimiter {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            peak: 0,
            exceeded: false,
            table_exceeded: false,
        }
    }

    /// Whether the plugin hit a limit: its instance is not trusted again.
    pub(super) fn hit(&self) -> bool {
        self.exceeded || self.table_exceeded
    }
}

/// Elements one table may grow to: the pool's table slots are sized for it
/// (`table_elements`, 8 bytes each), and the limiter refuses (and records)
/// a grow past it, so a table bomb is named as one. Measured on the real
/// builds, the largest table is the JavaScript build's 7,694 elements (the
/// Python build's 5,676, the reference plugin's 88).
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.table_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }
}

/// A guest's stdout or stderr: keeps the first [`MAX_STDIO_BYTES`] and
/// silently accepts (and counts) the rest, so a guest that prints a lot keeps
/// running instead of failing on a closed stream.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<CaptureBuf>>);

#[derive(Default)]
struct CaptureBuf {
    data: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn lock(&self) -> MutexGuard<'_, CaptureBuf> {
        // A poisoned lock only means a writer panicked mid-append; the bytes are still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, bytes: &[u8]) {
        let mut buf = self.lock();
        let room = MAX_STDIO_BYTES.saturating_sub(buf.data.len());
        let kept = room.min(bytes.len());
        buf.data.extend_from_slice(&bytes[..kept]);
        buf.dropped += bytes.len() - kept;
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    // Overridden so WASIp2 writes land here directly, without the default
    // adapter's background task per stream.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_capped_in_length_and_count() {
        let mut log = PluginLog::default();
        log.push(Level::Info, &"é".repeat(MAX_LOG_LINE));
        assert!(log.lines[0].message.len() <= MAX_LOG_LINE);
        for _ in 0..MAX_LOG_LINES + 10 {
            log.push(Level::Debug, "x");
        }
        assert_eq!(log.lines.len(), MAX_LOG_LINES);
        assert_eq!(log.dropped, 11);
    }

    #[test]
    fn capture_keeps_a_prefix_and_counts_the_rest() {
        let c = Capture::default();
        c.append(&vec![b'a'; MAX_STDIO_BYTES - 1]);
        c.append(b"bc");
        let buf = c.lock();
        assert_eq!(buf.data.len(), MAX_STDIO_BYTES);
        assert_eq!(buf.dropped, 1);
    }

    #[test]
    fn memory_limiter_refuses_growth_past_the_limit_and_remembers() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 19, None).expect("ok"));
        assert!(!l.memory_growing(1 << 19, (1 << 20) + 1, None).expect("ok"));
        assert!(l.exceeded);
        assert_eq!(l.peak, 1 << 19);
    }

    #[test]
    fn table_growth_is_refused_past_the_table_limit_and_remembered() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.table_growing(1, MAX_TABLE_ELEMENTS, None).expect("ok"));
        assert!(!l.hit());
        assert!(
            !l.table_growing(1, MAX_TABLE_ELEMENTS + 1, None)
                .expect("ok")
        );
        assert!(l.table_exceeded && l.hit() && !l.exceeded);
    }
}
