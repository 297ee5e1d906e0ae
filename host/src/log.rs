//! What may reach the log, and how much of it: values that come from a
//! client are bounded and made inert before they are logged
//! ([`client_text`]), and each tenant's plugin gets a log volume per time
//! window ([`LogBudget`]).
//!
//! Invariants: a client-supplied value in a log line is at most
//! [`MAX_CLIENT_TEXT`] bytes of printable ASCII (so it can neither forge a
//! line nor flood one); a tenant's plugin lines take at most its
//! `limits.log_volume` bytes per `limits.log_window`, and the lines dropped
//! beyond it are counted and reported in at most two host lines per window
//! (one when the budget runs out, one summing up the drops when the next
//! window opens, on the tenant's next logged line).

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::plugin::PluginLog;
use crate::plugin::hookbox::okta_import::host::Level;

/// Longest client-supplied value written to the log, in bytes.
pub const MAX_CLIENT_TEXT: usize = 64;

/// `value` as it may appear in a log line: printable ASCII kept, anything
/// else (control characters, newlines, non-ASCII) shown as `?`, and at most
/// `max` bytes, with `…` when cut.
pub fn client_text(value: &str, max: usize) -> Cow<'_, str> {
    let clean = value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if clean {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(max.min(value.len()) + 3);
    for c in value.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        out.push(if c.is_ascii_graphic() || c == ' ' {
            c
        } else {
            '?'
        });
    }
    Cow::Owned(out)
}

/// A tenant's plugin log volume per window of time.
#[derive(Debug)]
pub struct LogBudget {
    volume: u64,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    used: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// The lines the last window dropped, reported when the next one opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Lines not logged.
    pub lines: u64,
    /// Their size in bytes.
    pub bytes: u64,
}

/// Whether a line may be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Within the budget: log it.
    Log,
    /// Over the budget, and the first line dropped in this window: drop it
    /// and say (once) that lines are being dropped.
    DropFirst,
    /// Over the budget: drop it silently (it is counted).
    Drop,
}

impl LogBudget {
    /// `volume` bytes of plugin log lines per `window`.
    pub fn new(volume: u64, window: Duration) -> LogBudget {
        LogBudget {
            volume,
            window,
            state: Mutex::new(Window {
                start: Instant::now(),
                used: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
            }),
        }
    }

    /// The configured volume per window.
    pub fn volume(&self) -> u64 {
        self.volume
    }

    /// The configured window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Opens a new window if the current one is over, returning what the
    /// closed window dropped (if anything) so the caller reports it once.
    pub fn roll(&self, now: Instant) -> Option<Dropped> {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(w.start) < self.window {
            return None;
        }
        let dropped = Dropped {
            lines: w.dropped_lines,
            bytes: w.dropped_bytes,
        };
        *w = Window {
            start: now,
            used: 0,
            dropped_lines: 0,
            dropped_bytes: 0,
        };
        (dropped.lines > 0).then_some(dropped)
    }

    /// Takes a line of `bytes` from the current window's budget.
    pub fn admit(&self, bytes: usize) -> Admit {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if w.dropped_lines == 0 && w.used.saturating_add(bytes) <= self.volume {
            w.used += bytes;
            return Admit::Log;
        }
        // Once a window drops a line it drops the rest, so a log never has
        // holes that depend on line sizes.
        w.dropped_lines += 1;
        w.dropped_bytes = w.dropped_bytes.saturating_add(bytes);
        if w.dropped_lines == 1 {
            Admit::DropFirst
        } else {
            Admit::Drop
        }
    }
}

/// Logs a plugin's `log` (one request's or one event's) within its tenant's
/// `budget`, in the caller's span: each line made inert (control characters
/// shown as `?`, so one plugin line is one log line), only
/// lines the filter lets through counted, the budget's drops reported (see
/// the module docs), and the per-call cap's drops said once if the budget
/// allows.
pub fn plugin_lines(budget: &LogBudget, log: &PluginLog) {
    if let Some(dropped) = budget.roll(Instant::now()) {
        tracing::warn!(
            target: "hookbox::plugin",
            dropped_lines = dropped.lines,
            dropped_bytes = dropped.bytes,
            window_s = budget.window().as_secs_f64(),
            "plugin log over its volume: lines were dropped in the last window"
        );
    }
    let admit = |bytes: usize| match budget.admit(bytes) {
        Admit::Log => true,
        Admit::DropFirst => {
            tracing::warn!(
                target: "hookbox::plugin",
                log_volume = budget.volume(),
                window_s = budget.window().as_secs_f64(),
                "plugin log over its volume: dropping its lines until the window ends"
            );
            false
        }
        Admit::Drop => false,
    };
    for line in &log.lines {
        let m = inert(&line.message);
        // Only lines the filter lets through count against the budget.
        let enabled = match line.level {
            Level::Trace => tracing::enabled!(target: "hookbox::plugin", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "hookbox::plugin", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "hookbox::plugin", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "hookbox::plugin", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "hookbox::plugin", tracing::Level::ERROR),
        };
        if !enabled || !admit(m.len()) {
            continue;
        }
        match line.level {
            Level::Trace => tracing::trace!(target: "hookbox::plugin", "{m}"),
            Level::Debug => tracing::debug!(target: "hookbox::plugin", "{m}"),
            Level::Info => tracing::info!(target: "hookbox::plugin", "{m}"),
            Level::Warn => tracing::warn!(target: "hookbox::plugin", "{m}"),
            Level::Error => tracing::error!(target: "hookbox::plugin", "{m}"),
        }
    }
    if log.dropped > 0 && admit(0) {
        tracing::warn!(target: "hookbox::plugin", dropped = log.dropped, "plugin log lines over the per-call cap were dropped");
    }
}

/// A plugin's line with its control characters (newlines included) shown
/// as `?`: one plugin line is one log line, whatever the plugin wrote.
fn inert(message: &str) -> Cow<'_, str> {
    if message.chars().any(char::is_control) {
        Cow::Owned(
            message
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_bounded_and_inert() {
        assert_eq!(
            client_text("JUGOUiYZTaKPmH6db0nDag", 64),
            "JUGOUiYZTaKPmH6db0nDag"
        );
        assert_eq!(client_text("a\nb\r\x1b[31mc", 64), "a?b??[31mc");
        assert_eq!(client_text("é", 64), "?");
        let text = "x".repeat(1000);
        let long = client_text(&text, 64);
        assert_eq!(long, format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn a_window_logs_its_volume_then_drops_and_counts_until_the_next() {
        let budget = LogBudget::new(100, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(budget.roll(t0), None);
        assert_eq!(budget.admit(60), Admit::Log);
        assert_eq!(budget.admit(40), Admit::Log);
        assert_eq!(budget.admit(1), Admit::DropFirst);
        assert_eq!(budget.admit(1), Admit::Drop);
        // A line that would fit is still dropped once the window dropped one.
        assert_eq!(budget.admit(0), Admit::Drop);
        assert_eq!(budget.roll(t0 + Duration::from_secs(1)), None);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(budget.roll(later), Some(Dropped { lines: 3, bytes: 2 }));
        assert_eq!(budget.admit(100), Admit::Log);
        assert_eq!(
            budget.roll(later + Duration::from_secs(10)),
            None,
            "nothing dropped"
        );
    }
}
