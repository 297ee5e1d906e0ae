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
//! Never across tenants: the pool lives in the tenant's [`crate::tenant::Tenant`],
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
//! (`engine.max_instances` is shared by all tenants); a tenant keeps at most
//! `max_concurrency` of them, which is also how many it can use at once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::Store;

use super::state::State;
use super::{Plugin, Resolve};
use crate::config::{InstanceMode, Limits};

/// One tenant's plugin, bound to its settings and limits, with the warm
/// instances it keeps in `reuse` mode (none in `fresh` mode).
pub struct Instances {
    plugin: Plugin,
    settings: Arc<BTreeMap<String, String>>,
    limits: Limits,
    /// Warm instances not serving a request, most recently used last.
    idle: Mutex<Vec<Warm>>,
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
            .field("plugin", &self.plugin)
            .field("mode", &self.limits.instance_mode)
            .field("idle", &self.idle())
            .finish()
    }
}

impl Instances {
    pub fn new(plugin: Plugin, settings: Arc<BTreeMap<String, String>>, limits: Limits) -> Self {
        Instances {
            plugin,
            settings,
            limits,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    pub fn settings(&self) -> &Arc<BTreeMap<String, String>> {
        &self.settings
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Warm instances waiting for a request (always 0 in `fresh` mode).
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Warm>> {
        // Only pushes and pops happen under the lock; a poisoned lock still holds usable stores.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A warm instance for the next request, if this tenant reuses them and one is idle.
    pub(super) fn take(&self) -> Option<Warm> {
        match self.limits.instance_mode {
            InstanceMode::Fresh => None,
            // The most recently used: its pages are the likeliest to be in cache.
            InstanceMode::Reuse { .. } => self.lock().pop(),
        }
    }

    /// Keeps an instance whose call succeeded for a later request, unless it
    /// has served its quota or the pool is full; otherwise drops it (which
    /// frees its slot in the engine's pool).
    pub(super) fn give_back(&self, warm: Warm) {
        let InstanceMode::Reuse { max_requests } = self.limits.instance_mode else {
            return;
        };
        if warm.served >= max_requests {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.limits.max_concurrency as usize {
            idle.push(warm);
        }
        // Otherwise `warm` is dropped here, after the guard (locals drop
        // before parameters), so the lock is not held while the store is freed.
    }
}
