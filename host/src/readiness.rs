//! Readiness (`GET /readyz`): whether this process should be sent traffic.
//!
//! Ready when, and only when, all of these hold:
//! - every tenant's plugin is loaded ([`Readiness::loaded`], set once the
//!   start-up load and smoke requests are done; until then `/healthz` says
//!   the process is alive and `/readyz` that it is not ready);
//! - no drain has begun ([`Readiness::drain`]: from the first shutdown
//!   signal on, for good);
//! - every registered dependency check passes ([`Readiness::register`]):
//!   each feature with something to reach (the claim store's `ping`, an
//!   OAuth issuer's keys) registers one [`Check`] when the app is built, and
//!   `/readyz` runs them all concurrently, each bounded by [`CHECK_TIMEOUT`].
//!
//! `/healthz` never consults any of this: a process that is loading, draining
//! or cut off from a dependency is alive, and restarting it would not help.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

/// How long one dependency check may take before it counts as failed: under
/// a readiness probe's usual 1 s timeout (the checks run concurrently).
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// What a [`Check`] returns: `Err` says why the dependency is not usable.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One dependency readiness waits for.
pub trait Check: Send + Sync {
    /// A short, fixed name for the `/readyz` answer and logs (e.g. `store`,
    /// `oauth:acme`): never a secret or a URL with credentials.
    fn name(&self) -> &str;
    /// Whether the dependency answers now. Bounded by [`CHECK_TIMEOUT`] by the caller.
    fn check(&self) -> CheckFuture<'_>;
}

/// The state `/readyz` answers from; held by [`crate::App`].
#[derive(Default)]
pub struct Readiness {
    loaded: AtomicBool,
    draining: AtomicBool,
    checks: RwLock<Vec<Arc<dyn Check>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("loaded", &self.loaded.load(Ordering::Relaxed))
            .field("draining", &self.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// `/readyz`'s answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Whether traffic should be sent here.
    pub ready: bool,
    /// Why not, one sentence per reason (empty when ready).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Readiness {
    /// Every tenant's plugin is loaded (the start-up load is done).
    pub fn loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// A drain began: not ready from now on, whatever else holds.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether a drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Adds a dependency check; see the module docs.
    pub fn register(&self, check: Arc<dyn Check>) {
        self.checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(check);
    }

    /// Runs every check (concurrently, each bounded) and says whether this
    /// process is ready, and if not, why.
    pub async fn status(&self) -> Status {
        let mut reasons = Vec::new();
        if self.is_draining() {
            reasons.push("draining: shutting down".to_owned());
        }
        if !self.loaded.load(Ordering::Acquire) {
            reasons.push("loading: tenants' plugins are not all loaded yet".to_owned());
        }
        let checks: Vec<Arc<dyn Check>> = self
            .checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let results = futures::future::join_all(checks.iter().map(|c| async move {
            match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some(format!("{}: {why}", c.name())),
                Err(_) => Some(format!(
                    "{}: no answer within {} ms",
                    c.name(),
                    CHECK_TIMEOUT.as_millis()
                )),
            }
        }))
        .await;
        reasons.extend(results.into_iter().flatten());
        Status {
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Result<(), &'static str>);

    impl Check for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn check(&self) -> CheckFuture<'_> {
            let r = self.1.map_err(str::to_owned);
            Box::pin(async move { r })
        }
    }

    #[tokio::test]
    async fn ready_only_when_loaded_not_draining_and_every_check_passes() {
        let r = Readiness::default();
        assert!(!r.status().await.ready, "not loaded yet");
        r.loaded();
        assert_eq!(
            r.status().await,
            Status {
                ready: true,
                reasons: vec![]
            }
        );
        r.register(Arc::new(Fixed("store", Ok(()))));
        assert!(r.status().await.ready);
        r.register(Arc::new(Fixed("oauth:acme", Err("keys unreachable"))));
        assert_eq!(
            r.status().await.reasons,
            vec!["oauth:acme: keys unreachable".to_owned()]
        );
        r.drain();
        let s = r.status().await;
        assert!(!s.ready);
        assert!(s.reasons[0].starts_with("draining"), "{s:?}");
    }
}
