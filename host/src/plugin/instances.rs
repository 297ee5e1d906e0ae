//! A tenant's instances of its plugin, in the tenant's instance mode
//! (`limits.instance_mode`).
//!
//! What each mode isolates:
//!
//! - **`fresh`** (the default): every request gets a new store and instance,
//!   dropped when the request ends. Nothing survives from one request to the
//!   next: no guest global, no heap byte, no WASI resource.
//! - **`reuse`**: after a request, its instance may serve a later request of
//!   the **same tenant**, so the guest's globals and heap (caches, counters,
//!   an interpreter's imported modules) carry over between that tenant's
//!   requests. What the host accounts per request is reset every time (the
//!   deadline, fuel, the log and captured stdout/stderr, the memory limiter's
//!   `exceeded` flag); the settings and limits are the tenant's and never
//!   change for a given pool. An instance goes back to the pool only when
//!   its call ran to completion (an answer or a decline) and never touched
//!   its memory limit; a trap, a deadline, fuel exhaustion or a refused
//!   memory growth drops it. It is also dropped after `reuse_max_requests`
//!   requests, which bounds how long a slow leak can grow.
//!
//! Never across tenants: the pool lives in the tenant's [`crate::tenant::Tenant`]
//! (its [`super::Backend`]),
//! built per tenant (tenants sharing a plugin file share its compiled code,
//! never its instances), and a reload that replaces the tenant drops its
//! pool with it.
//!
//! A plugin must not rely on what it kept: which warm instance a request
//! gets, and whether it gets one at all, is not specified. Okta retries a
//! request that timed out or failed once, and the retry may land on another
//! instance (or a fresh one), so an answer that depends on carried-over state
//! is not reproducible. Use `reuse` for plugins whose answer is a function of
//! the request and settings only (the reference resolver is), where the
//! carried-over state is the interpreter's warm-up, not data.
//!
//! Warm instances hold slots of the engine's instance pool while idle
//! (`engine.max_instances` is shared by all tenants). A tenant keeps at most
//! `max_concurrency` of them, which is also how many it can use at once, and
//! all tenants together keep at most half the pool idle (`IdleBudget`), so
//! warm instances parked by some tenants never leave the others without
//! slots: past the budget, an instance is dropped instead of kept.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::Store;

use super::Resolve;
use super::limits::{InstanceMode, Limits};
use super::state::State;

/// The warm instances one tenant keeps in `reuse` mode (none in `fresh`
/// mode). The plugin, settings and limits they run with are the tenant's
/// ([`super::Binding`]); the pool only keeps what is idle.
#[derive(Default)]
pub struct Instances {
    /// Warm instances not serving a request, most recently used last, each
    /// with its share of the engine-wide idle budget.
    idle: Mutex<Vec<(Warm, IdleToken)>>,
}

/// A store and the instance in it, with the number of requests it has served.
pub(super) struct Warm {
    pub(super) store: Store<State>,
    pub(super) resolve: Resolve,
    pub(super) served: u32,
}

impl fmt::Debug for Instances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instances")
            .field("idle", &self.idle())
            .finish()
    }
}

impl Instances {
    /// Warm instances waiting for a request (always 0 in `fresh` mode).
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Warm, IdleToken)>> {
        // Only pushes and pops happen under the lock; a poisoned lock still holds usable stores.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A warm instance for the next request, if this tenant reuses them and one is idle.
    pub(super) fn take(&self, limits: &Limits) -> Option<Warm> {
        match limits.instance_mode {
            InstanceMode::Fresh => None,
            // The most recently used: its pages are the likeliest to be in cache.
            // Busy again: its idle token is returned to the budget.
            InstanceMode::Reuse { .. } => self.lock().pop().map(|(warm, _token)| warm),
        }
    }

    /// Keeps an instance whose call succeeded for a later request, unless it
    /// has served its quota, the tenant already keeps `max_concurrency` idle,
    /// or the engine-wide idle budget is spent; otherwise drops it (which
    /// frees its slot in the engine's pool).
    pub(super) fn give_back(&self, warm: Warm, limits: &Limits, budget: &Arc<IdleBudget>) {
        let InstanceMode::Reuse { max_requests } = limits.instance_mode else {
            return;
        };
        if warm.served >= max_requests {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < limits.max_concurrency as usize
            && let Some(token) = budget.try_take()
        {
            idle.push((warm, token));
        }
        // Otherwise `warm` is dropped here, after the guard (locals drop
        // before parameters), so the lock is not held while the store is freed.
    }
}

/// How many warm instances may sit idle across all tenants of an engine.
#[derive(Debug)]
pub(crate) struct IdleBudget {
    cap: usize,
    idle: AtomicUsize,
}

impl IdleBudget {
    /// Half of a pool of `pool_size` instances.
    pub(super) fn for_pool(pool_size: u32) -> Arc<IdleBudget> {
        Arc::new(IdleBudget {
            cap: pool_size as usize / 2,
            idle: AtomicUsize::new(0),
        })
    }

    /// Warm instances idle right now, across all tenants (sampled by the metrics).
    pub(super) fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    fn try_take(self: &Arc<Self>) -> Option<IdleToken> {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .ok()
            .map(|_| IdleToken(self.clone()))
    }
}

/// One idle instance's place in the budget, given back when dropped: when
/// the instance is taken for a request, or dropped with its tenant's pool.
struct IdleToken(Arc<IdleBudget>);

impl Drop for IdleToken {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Plugin, Runtime};
    use std::collections::BTreeMap;

    /// A new instance of `plugin` in a store armed like a request's, as if it
    /// had just served one request.
    async fn warm(runtime: &Runtime, plugin: &Plugin, limits: &Limits) -> Warm {
        let store_ = hookbox_store::Store::scratch()
            .await
            .expect("a scratch store");
        let scope = crate::plugin::StoreScope::new("t", &store_);
        let mut store = runtime.new_store(Arc::new(BTreeMap::new()), limits, &scope);
        runtime.begin(
            &mut store,
            limits,
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        );
        let resolve = plugin
            .instantiate(&mut store)
            .await
            .expect("a pool slot is free");
        Warm {
            store,
            resolve,
            served: 1,
        }
    }

    #[tokio::test]
    async fn tenants_together_keep_at_most_half_the_pool_idle() {
        let (runtime, plugin) = crate::plugin::reference_on_a_small_engine();
        let limits = Limits {
            max_concurrency: 4,
            instance_mode: InstanceMode::Reuse { max_requests: 10 },
            ..Limits::default()
        };
        let a = Instances::default();
        let b = Instances::default();
        let budget = runtime.idle_budget();

        // Tenant A had three requests in flight; the budget (2 of 4 slots) keeps two.
        let parked = [
            warm(&runtime, &plugin, &limits).await,
            warm(&runtime, &plugin, &limits).await,
            warm(&runtime, &plugin, &limits).await,
        ];
        for w in parked {
            a.give_back(w, &limits, budget);
        }
        assert_eq!((a.idle(), budget.idle()), (2, 2));

        // So tenant B still finds two free slots, and cannot park them.
        let (b1, b2) = (
            warm(&runtime, &plugin, &limits).await,
            warm(&runtime, &plugin, &limits).await,
        );
        b.give_back(b1, &limits, budget);
        b.give_back(b2, &limits, budget);
        assert_eq!((b.idle(), budget.idle()), (0, 2));

        // A warm instance taken for a request leaves the budget; B may park one now.
        let busy = a.take(&limits).expect("A has warm instances");
        assert_eq!(budget.idle(), 1);
        b.give_back(warm(&runtime, &plugin, &limits).await, &limits, budget);
        assert_eq!((b.idle(), budget.idle()), (1, 2));

        // Dropping a tenant's pool (a reload replacing it) returns its share
        // and its slots.
        drop(busy);
        drop(a);
        assert_eq!(budget.idle(), 1);
        let _three_more = [
            warm(&runtime, &plugin, &limits).await,
            warm(&runtime, &plugin, &limits).await,
            warm(&runtime, &plugin, &limits).await,
        ];
    }
}
