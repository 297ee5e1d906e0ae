//! Okta's rate-limit headers, and the gate that stops calls until the reset.
//!
//! Okta answers every API call with `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and
//! `X-Rate-Limit-Reset` (the end of the current window, in epoch seconds), and `429` once the
//! limit is spent. The gate closes on a `429` or on `Remaining: 0`, until the reset; while it is
//! closed a lookup answers `rate-limited` at once, without waiting and without calling.
//!
//! Invariants:
//! - A gate only moves later (a late answer never reopens it early).
//! - A closure is bounded: at least [`MIN_429_PAUSE`] after a `429` (a reset already past on our
//!   clock would otherwise let the next call hit the limit again), and never more than
//!   [`MAX_PAUSE`] (a reset far in the future, from a skewed clock or a bad header, must not
//!   stop lookups for hours).
//! - One gate per (org, credential): Okta counts per org and token, and tenants sharing both
//!   share the gate (see [`crate::DirectoryClients`]).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;

/// Shortest pause after a `429`.
pub const MIN_429_PAUSE: Duration = Duration::from_secs(1);
/// Pause after a `429` without a usable `X-Rate-Limit-Reset` (Okta's windows are one minute).
pub const DEFAULT_429_PAUSE: Duration = Duration::from_secs(60);
/// Longest pause, whatever the reset header says.
pub const MAX_PAUSE: Duration = Duration::from_secs(300);

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub remaining: Option<u64>,
    /// Time from now until the reset (zero if the reset is already past); `None` if absent or
    /// unparsable.
    pub until_reset: Option<Duration>,
}

impl RateHeaders {
    pub(crate) fn parse(headers: &HeaderMap, now: SystemTime) -> RateHeaders {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let until_reset = number("x-rate-limit-reset").map(|epoch| {
            (UNIX_EPOCH + Duration::from_secs(epoch))
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
        });
        RateHeaders {
            remaining: number("x-rate-limit-remaining"),
            until_reset,
        }
    }

    /// How long to stop calling after this answer, if at all.
    pub(crate) fn pause(&self, status_429: bool) -> Option<Duration> {
        if status_429 {
            let pause = self.until_reset.unwrap_or(DEFAULT_429_PAUSE);
            Some(pause.clamp(MIN_429_PAUSE, MAX_PAUSE))
        } else if self.remaining == Some(0) {
            // The call itself succeeded; the next one would be refused until the reset.
            self.until_reset
                .filter(|d| !d.is_zero())
                .map(|d| d.min(MAX_PAUSE))
        } else {
            None
        }
    }
}

/// Closed until an instant; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct RateGate {
    until: Mutex<Option<Instant>>,
}

impl RateGate {
    /// When the gate reopens, if it is closed at `now`.
    pub(crate) fn closed_until(&self, now: Instant) -> Option<Instant> {
        let until = *self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        until.filter(|u| *u > now)
    }

    /// Closes the gate until `until` (or later, if it already is). Returns `true` if it was open.
    pub(crate) fn close_until(&self, until: Instant, now: Instant) -> bool {
        let mut guard = self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_open = guard.is_none_or(|u| u <= now);
        if guard.is_none_or(|u| u < until) {
            *guard = Some(until);
        }
        was_open
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(remaining: &str, reset: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-rate-limit-remaining",
            HeaderValue::from_str(remaining).unwrap(),
        );
        h.insert(
            "X-Rate-Limit-Reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        h
    }

    #[test]
    fn pauses() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let r = RateHeaders::parse(&headers("0", 1_000_030), now);
        assert_eq!(r.pause(false), Some(Duration::from_secs(30)));
        assert_eq!(r.pause(true), Some(Duration::from_secs(30)));
        let r = RateHeaders::parse(&headers("5", 1_000_030), now);
        assert_eq!(r.pause(false), None);
        // A reset in the past: no pause unless 429, then the floor.
        let r = RateHeaders::parse(&headers("0", 999_000), now);
        assert_eq!(r.pause(false), None);
        assert_eq!(r.pause(true), Some(MIN_429_PAUSE));
        // Far future: capped. Missing: default.
        let r = RateHeaders::parse(&headers("0", 9_000_000), now);
        assert_eq!(r.pause(true), Some(MAX_PAUSE));
        assert_eq!(r.pause(false), Some(MAX_PAUSE));
        let r = RateHeaders::parse(&HeaderMap::new(), now);
        assert_eq!(r.pause(true), Some(DEFAULT_429_PAUSE));
        assert_eq!(r.pause(false), None);
    }

    #[test]
    fn gate_only_moves_later() {
        let now = Instant::now();
        let gate = RateGate::default();
        assert!(gate.closed_until(now).is_none());
        assert!(gate.close_until(now + Duration::from_secs(10), now));
        assert!(!gate.close_until(now + Duration::from_secs(5), now));
        assert_eq!(gate.closed_until(now), Some(now + Duration::from_secs(10)));
        assert!(gate.closed_until(now + Duration::from_secs(10)).is_none());
    }
}
