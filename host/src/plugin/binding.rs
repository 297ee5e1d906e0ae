//! A tenant's binding: the plugin, the settings and limits it runs with, its
//! concurrency share, and what actually answers ([`Backend`]).
//!
//! The seam for benchmarks: a shipped build only ever has
//! [`Backend::Plugin`]; a benchmark may bind a tenant to a
//! [`NativeResolver`] compiled into the host instead, and every other step
//! of a request (routing, auth, decode, the permit, encode) stays the same.
//! The runtime does not know about the second kind: the choice is made here,
//! once per call, by the binding's own backend.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::instances::Instances;
use super::invoke::{Invocation, Outcome, Overloaded};
use super::limits::{Limits, Settings};
use super::{Plugin, StoreScope, wit};

/// A resolver compiled into the host, answering in place of a tenant's plugin
/// (benchmarks only: it runs without store, instance, limits or deadline,
/// and with a fresh in-memory claim store per call, not the tenant's).
pub trait NativeResolver: Send + Sync {
    /// Resolves one request with the tenant's settings.
    fn resolve(&self, request: &wit::ImportRequest, settings: &Settings) -> Outcome;
}

/// What answers a tenant's requests.
pub enum Backend {
    /// The tenant's plugin, with the warm instances it keeps in `reuse` mode.
    Plugin(Instances),
    /// A resolver compiled into the host (see [`NativeResolver`]).
    Native(Arc<dyn NativeResolver>),
}

impl Default for Backend {
    fn default() -> Self {
        Backend::Plugin(Instances::default())
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Plugin(instances) => f.debug_tuple("Plugin").field(instances).finish(),
            Backend::Native(_) => f.write_str("Native"),
        }
    }
}

impl Backend {
    /// Warm instances waiting for a request (always 0 in `fresh` mode and natively).
    pub fn idle(&self) -> usize {
        match self {
            Backend::Plugin(instances) => instances.idle(),
            Backend::Native(_) => 0,
        }
    }
}

/// Everything one request needs to run a tenant's plugin, borrowed from
/// whoever owns it: a live tenant, a reload's smoke test, `hookbox run`.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    /// The plugin version (its digest names every answer).
    pub plugin: &'a Plugin,
    /// What `config-get` answers.
    pub settings: &'a Arc<Settings>,
    /// What one invocation may use.
    pub limits: &'a Limits,
    /// What answers.
    pub backend: &'a Backend,
    /// Invocations in flight at once (`limits.max_concurrency` permits);
    /// beyond them a request is refused, not queued.
    pub permits: &'a Semaphore,
    /// The tenant's space of the claim store: the plugin's claims and the
    /// pipeline's idempotent answers (the App's store for a live tenant, a
    /// throwaway one for smoke requests and `hookbox run`).
    pub scope: &'a StoreScope,
}

impl Binding<'_> {
    /// Runs the plugin's event handler on one event, in a fresh instance
    /// under the binding's limits and scope; `Err` when no instance slot was free.
    pub async fn handle_event(
        &self,
        event: &super::events::Event,
    ) -> Result<super::HandlerRun, Overloaded> {
        self.plugin
            .runtime()
            .handle_event(
                self.plugin,
                self.settings.clone(),
                self.limits,
                self.scope,
                event,
            )
            .await
    }

    /// Runs one request on the backend; `Err` when no instance slot was free.
    pub async fn invoke(&self, request: &wit::ImportRequest) -> Result<Invocation, Overloaded> {
        match self.backend {
            Backend::Plugin(instances) => {
                self.plugin
                    .runtime()
                    .invoke_pooled(
                        self.plugin,
                        instances,
                        self.settings,
                        self.limits,
                        self.scope,
                        request,
                    )
                    .await
            }
            Backend::Native(resolver) => {
                let start = Instant::now();
                let outcome = resolver.resolve(request, self.settings);
                Ok(Invocation {
                    result: Ok(outcome),
                    log: Default::default(),
                    elapsed: start.elapsed(),
                    fuel_consumed: None,
                    peak_memory: 0,
                    store_calls: (0, 0),
                })
            }
        }
    }
}
