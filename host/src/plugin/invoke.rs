//! One invocation: a store and instance (new, or a tenant's warm one in
//! `reuse` mode), the call, and an honest account of how it ended.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

use super::fair::Tick;
use super::instances::{Instances, Warm};
use super::limits::{Limits, Settings};
use super::state::{PluginLog, State};
use super::{Plugin, Runtime, StoreScope, wit};

/// Slack past the plugin's deadline before the host abandons the call
/// outright. The epoch check normally fires first (within one tick); this
/// backstop only matters if a call were ever stuck where epochs are not
/// checked, and guarantees the host never waits on a plugin forever.
pub(super) const BACKSTOP_GRACE: Duration = Duration::from_millis(100);

/// Why a plugin produced no usable answer. Each kind has a fixed summary for
/// Okta (no internals); the details go to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access…).
    Trap(String),
    /// The plugin ran past its deadline and was interrupted.
    Deadline,
    /// The plugin exhausted its call stack (runaway recursion).
    StackOverflow,
    /// The plugin tried to grow its memory past its limit.
    MemoryLimit,
    /// The plugin tried to grow a table past the engine's table limit.
    TableLimit,
    /// The plugin used up its fuel.
    FuelExhausted,
    /// The plugin could not be instantiated (other than for the reasons above).
    Instantiate(String),
    /// The plugin's answer broke a rule of Okta's format (found by the encoder).
    InvalidAnswer(String),
}

impl Failure {
    /// A short machine-readable name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Trap(_) => "trap",
            Failure::Deadline => "deadline",
            Failure::StackOverflow => "stack_overflow",
            Failure::MemoryLimit => "memory_limit",
            Failure::TableLimit => "table_limit",
            Failure::FuelExhausted => "fuel_exhausted",
            Failure::Instantiate(_) => "instantiate",
            Failure::InvalidAnswer(_) => "invalid_answer",
        }
    }

    /// What Okta is told: the kind of failure only, never internals.
    pub fn summary(&self) -> &'static str {
        match self {
            Failure::Trap(_) => "hookbox: the plugin failed (trap)",
            Failure::Deadline => "hookbox: the plugin exceeded its deadline",
            Failure::StackOverflow => "hookbox: the plugin exceeded its call stack limit",
            Failure::MemoryLimit => "hookbox: the plugin exceeded its memory limit",
            Failure::TableLimit => "hookbox: the plugin exceeded its table limit",
            Failure::FuelExhausted => "hookbox: the plugin exceeded its fuel limit",
            Failure::Instantiate(_) => "hookbox: the plugin could not be started",
            Failure::InvalidAnswer(_) => "hookbox: the plugin returned an invalid answer",
        }
    }

    /// Details for the log (may contain a wasm backtrace; never sent to Okta).
    pub fn detail(&self) -> &str {
        match self {
            Failure::Trap(d) | Failure::Instantiate(d) | Failure::InvalidAnswer(d) => d,
            Failure::Deadline
            | Failure::StackOverflow
            | Failure::MemoryLimit
            | Failure::TableLimit
            | Failure::FuelExhausted => "",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.summary())?;
        if !self.detail().is_empty() {
            write!(f, ": {}", self.detail())?;
        }
        Ok(())
    }
}

/// What the plugin answered when it ran to completion.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Commands (possibly none) and debug context.
    Response(wit::Response),
    /// The plugin declined with a summary for Okta's `errorSummary`.
    Declined(String),
}

/// Every slot of the engine's instance pool was taken, so the plugin did not
/// run: the request is refused (503, which Okta retries once) rather than
/// answered with an error body. A value, so no caller can forget to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no free instance slot")]
pub struct Overloaded;

/// The result of one invocation and what it cost.
#[derive(Debug)]
pub struct Invocation {
    /// How the plugin's call ended.
    pub result: Result<Outcome, Failure>,
    /// What the plugin logged (host `log` calls, stdout and stderr), capped.
    pub log: PluginLog,
    /// Instantiation (unless warm) and call.
    pub elapsed: Duration,
    /// Fuel consumed, when the engine meters fuel.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the plugin grew to, in bytes (for a reused
    /// instance, over its lifetime: linear memory never shrinks).
    pub peak_memory: usize,
    /// Claim-store calls the plugin made, and calls refused by the per-request cap.
    pub store_calls: (u32, u32),
}

impl Runtime {
    /// Runs `plugin` on one request in a fresh instance under `limits`, its
    /// claims in `scope`. Never panics and never outlives `limits.deadline`
    /// by more than a tick plus a short backstop grace.
    pub async fn invoke(
        &self,
        plugin: &Plugin,
        request: &wit::ImportRequest,
        settings: Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
    ) -> Result<Invocation, Overloaded> {
        self.run(plugin, None, settings, limits, scope, request)
            .await
            .0
    }

    /// Runs a tenant's plugin on one request, in the tenant's instance mode:
    /// a fresh instance, or (in `reuse` mode) one of the tenant's warm
    /// `instances`, which goes back to them only if this call succeeded.
    /// Same guarantees as [`Runtime::invoke`]. If this future is dropped
    /// mid-call, the instance it holds is dropped with it, never given back.
    pub(super) async fn invoke_pooled(
        &self,
        plugin: &Plugin,
        instances: &Instances,
        settings: &Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
        request: &wit::ImportRequest,
    ) -> Result<Invocation, Overloaded> {
        let warm = instances.take(limits);
        let (invocation, warm) = self
            .run(plugin, warm, settings.clone(), limits, scope, request)
            .await;
        if let Some(warm) = warm {
            instances.give_back(warm, limits, self.idle_budget());
        }
        invocation
    }

    /// The one place a store is built for a plugin: its state, the memory
    /// limiter and the epoch check. What changes per request is set by
    /// [`Runtime::begin`], so new and reused stores go through the same steps.
    pub(super) fn new_store(
        &self,
        settings: Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
    ) -> Store<State> {
        let mut store = Store::new(self.engine(), State::new(settings, limits, scope.clone()));
        store.limiter(|s| &mut s.limiter);
        // Check at every epoch tick: past the deadline, interrupt (a trap);
        // before it, yield to the executor so a busy plugin shares its thread,
        // and give its CPU slot back and queue for one again, so it shares
        // the CPU fairly with other tenants' calls (`fair`). The yield polls
        // tokio's I/O driver first, so a spinning plugin cannot starve the
        // sockets of other requests on the same worker. The deadline is read
        // from the state at each tick, so one callback serves every request
        // of the store.
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            Ok(if Instant::now() >= state.deadline {
                UpdateDeadline::Interrupt
            } else if let Some(cpu) = &state.cpu {
                // Deadline 0 ticks away: the guest checks again as soon as
                // it resumes (`CallCpu::at_tick`).
                match cpu.at_tick() {
                    Tick::Run => UpdateDeadline::Continue(1),
                    Tick::Yield(queued) => UpdateDeadline::YieldCustom(0, queued),
                }
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store
    }

    /// Arms a store (new or reused) for one request: the deadline, a full
    /// tank of fuel, the next epoch check, and an empty log. Returns the fuel
    /// given, when the engine meters it.
    pub(super) fn begin(
        &self,
        store: &mut Store<State>,
        limits: &Limits,
        deadline: Instant,
    ) -> Option<u64> {
        store.data_mut().begin(deadline);
        store.set_epoch_deadline(1);
        let fuel = self.fuel_enabled().then(|| limits.fuel.unwrap_or(u64::MAX));
        if let Some(fuel) = fuel {
            // Cannot fail: fuel is enabled on this engine. Setting (not adding)
            // means a reused store never carries over what an earlier request left.
            let _ = store.set_fuel(fuel);
        }
        fuel
    }

    /// Runs `call` (instantiation and the guest's call) on `store` while
    /// holding a CPU slot of the scope's tenant ([`super::fair`]): no wasm
    /// runs without one. `None` when the deadline passed first: still queued
    /// for a slot, or the backstop (`BACKSTOP_GRACE` past it) expired. The
    /// slot goes back when this returns; a store never keeps one.
    pub(super) async fn on_cpu<T>(
        &self,
        store: &mut Store<State>,
        scope: &StoreScope,
        deadline: Instant,
        call: impl AsyncFnOnce(&mut Store<State>) -> wasmtime::Result<T>,
    ) -> Option<wasmtime::Result<T>> {
        let cpu = self.cpu_call(scope.tenant_id(), deadline);
        if !cpu.enter().await {
            return None;
        }
        store.data_mut().cpu = Some(cpu);
        let raw = tokio::time::timeout_at((deadline + BACKSTOP_GRACE).into(), call(store))
            .await
            .ok();
        store.data_mut().cpu = None;
        raw
    }

    /// [`Runtime::run_here`], on the background threads while the scope's
    /// tenant is heavy (the call's arguments cloned into it; the warm
    /// instance comes back with the invocation), else in place.
    async fn run(
        &self,
        plugin: &Plugin,
        warm: Option<Warm>,
        settings: Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
        request: &wit::ImportRequest,
    ) -> (Result<Invocation, Overloaded>, Option<Warm>) {
        let start = Instant::now();
        let Some(background) = self.background_for(scope.tenant_id()) else {
            return self
                .run_here(start, plugin, warm, settings, limits, scope, request)
                .await;
        };
        let bound = caller_bound(start, limits.deadline);
        let (runtime, plugin, limits) = (self.clone(), plugin.clone(), limits.clone());
        let (scope, request) = (scope.clone(), request.clone());
        let call = async move {
            runtime
                .run_here(start, &plugin, warm, settings, &limits, &scope, &request)
                .await
        };
        background
            .run(bound, call)
            .await
            .unwrap_or_else(|| (Ok(Invocation::starved(start)), None))
    }

    /// One call, in `warm` if given, else in a new instance, with its
    /// deadline counted from `start`. Returns the
    /// instance for reuse only when the call ran to completion (an answer or
    /// a decline) without touching the memory limit: after a trap, an
    /// interrupt or an abandoned call the instance's state is unknown.
    #[allow(clippy::too_many_arguments)] // `run`'s, plus where the call began
    async fn run_here(
        &self,
        start: Instant,
        plugin: &Plugin,
        warm: Option<Warm>,
        settings: Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
        request: &wit::ImportRequest,
    ) -> (Result<Invocation, Overloaded>, Option<Warm>) {
        let deadline = start + limits.deadline;
        let (mut store, resolve, served) = match warm {
            Some(w) => (w.store, Some(w.resolve), w.served),
            None => (self.new_store(settings, limits, scope), None, 0),
        };
        let fuel = self.begin(&mut store, limits, deadline);

        let raw = self
            .on_cpu(&mut store, scope, deadline, async |store| {
                let resolve = match resolve {
                    Some(resolve) => resolve,
                    None => plugin.instantiate(store).await?,
                };
                let answer = resolve.call(store, request).await?;
                Ok((resolve, answer))
            })
            .await;

        let mut reusable = None;
        let result = match raw {
            None => Err(Failure::Deadline),
            Some(Ok((resolve, answer))) => {
                reusable = Some(resolve);
                Ok(match answer {
                    Ok(response) => Outcome::Response(response),
                    Err(summary) => Outcome::Declined(summary),
                })
            }
            // The plugin never ran: not a failure of it, an overload of the host.
            Some(Err(e)) if e.is::<PoolConcurrencyLimitError>() => {
                return (Err(Overloaded), None);
            }
            Some(Err(e)) => Err(classify(&e, store.data())),
        };
        let fuel_consumed = fuel.and_then(|f| store.get_fuel().ok().map(|left| f - left));
        let state = store.data_mut();
        let invocation = Invocation {
            result,
            log: state.take_log(),
            elapsed: start.elapsed(),
            fuel_consumed,
            peak_memory: state.limiter.peak,
            store_calls: state.store_calls(),
        };
        // A guest may survive a refused `memory.grow` or `table.grow`; its
        // instance is still not trusted with another request.
        let warm = reusable
            .filter(|_| !store.data().limiter.hit())
            .map(|resolve| Warm {
                store,
                resolve,
                served: served + 1,
            });
        (Ok(invocation), warm)
    }
}

/// How long the caller of a call on the background threads waits for it:
/// the call's own backstop (`BACKSTOP_GRACE` past its deadline), and as much
/// again for its answer to come back from a thread that may be starved.
pub(super) fn caller_bound(start: Instant, deadline: Duration) -> Instant {
    start + deadline + 2 * BACKSTOP_GRACE
}

impl Invocation {
    /// A call on the background threads that had not finished by
    /// [`caller_bound`]: its thread got too little CPU, and it was aborted.
    /// What it logged or used is lost with it.
    pub(super) fn starved(start: Instant) -> Invocation {
        Invocation {
            result: Err(Failure::Deadline),
            log: PluginLog::default(),
            elapsed: start.elapsed(),
            fuel_consumed: None,
            peak_memory: 0,
            store_calls: (0, 0),
        }
    }
}

pub(super) fn classify(e: &wasmtime::Error, state: &State) -> Failure {
    // The limiter's record wins: a guest allocator that cannot grow memory
    // usually aborts with `unreachable`, which is a trap only in form.
    if state.limiter.exceeded {
        return Failure::MemoryLimit;
    }
    if state.limiter.table_exceeded {
        return Failure::TableLimit;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Deadline,
        Some(Trap::OutOfFuel) => Failure::FuelExhausted,
        Some(Trap::StackOverflow) => Failure::StackOverflow,
        Some(_) => Failure::Trap(format!("{e:?}")),
        // Errors raised by host functions or WASI while the guest ran.
        None => Failure::Trap(format!("{e:?}")),
    }
}
