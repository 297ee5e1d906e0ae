//! One invocation: a fresh store and instance, the call, and an honest
//! account of how it ended.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

use super::state::{PluginLog, State};
use super::{Plugin, Runtime, wit};
use crate::config::Limits;

/// Slack past the plugin's deadline before the host abandons the call
/// outright. The epoch check normally fires first (within one tick); this
/// backstop only matters if a call were ever stuck where epochs are not
/// checked, and guarantees the host never waits on a plugin forever.
const BACKSTOP_GRACE: Duration = Duration::from_millis(100);

/// Why a plugin produced no usable answer. Each kind has a fixed summary for
/// Okta (no internals); the details go to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access…).
    Trap(String),
    /// The plugin ran past its deadline and was interrupted.
    Deadline,
    /// The plugin tried to grow its memory past its limit.
    MemoryLimit,
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
            Failure::MemoryLimit => "memory_limit",
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
            Failure::MemoryLimit => "hookbox: the plugin exceeded its memory limit",
            Failure::FuelExhausted => "hookbox: the plugin exceeded its fuel limit",
            Failure::Instantiate(_) => "hookbox: the plugin could not be started",
            Failure::InvalidAnswer(_) => "hookbox: the plugin returned an invalid answer",
        }
    }

    /// Details for the log (may contain a wasm backtrace; never sent to Okta).
    pub fn detail(&self) -> &str {
        match self {
            Failure::Trap(d) | Failure::Instantiate(d) | Failure::InvalidAnswer(d) => d,
            Failure::Deadline | Failure::MemoryLimit | Failure::FuelExhausted => "",
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

/// The result of one invocation and what it cost.
#[derive(Debug)]
pub struct Invocation {
    pub result: Result<Outcome, Failure>,
    /// Whether instantiation failed because every pool slot was taken
    /// (the host answers 503 so Okta retries, instead of an error body).
    pub pool_exhausted: bool,
    pub log: PluginLog,
    pub elapsed: Duration,
    /// Fuel consumed, when the engine meters fuel.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the plugin grew to, in bytes.
    pub peak_memory: usize,
}

impl Runtime {
    /// Runs `plugin` on one request in a fresh instance under `limits`.
    /// Never panics and never outlives `limits.deadline` by more than a tick
    /// plus a short backstop grace.
    pub async fn invoke(
        &self,
        plugin: &Plugin,
        request: &wit::ImportRequest,
        settings: Arc<BTreeMap<String, String>>,
        limits: &Limits,
    ) -> Invocation {
        // Benchmarks only (feature `native-resolver`, never in a shipped build):
        // with HOOKBOX_BENCH_NATIVE set, the resolver compiled into the host
        // answers instead of the plugin, on the same path otherwise. See `native.rs`.
        #[cfg(feature = "native-resolver")]
        if let Some(native) = crate::native::invoke(request, &settings) {
            return native;
        }
        let start = Instant::now();
        let deadline = start + limits.deadline;
        let mut store = Store::new(self.engine(), State::new(settings, limits.memory, deadline));
        store.limiter(|s| &mut s.limiter);
        let fuel = if self.fuel_enabled() {
            Some(limits.fuel.unwrap_or(u64::MAX))
        } else {
            None
        };
        if let Some(fuel) = fuel {
            // Cannot fail: fuel is enabled on this engine.
            let _ = store.set_fuel(fuel);
        }
        // Check at every epoch tick: past the deadline, interrupt (a trap);
        // before it, yield to the executor so a busy plugin shares its thread.
        // tokio's `yield_now` (not a plain re-wake) lets the runtime poll its
        // I/O driver first, so a spinning plugin cannot starve the sockets of
        // other requests on the same worker.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });

        let call = async {
            let hook = plugin.pre().instantiate_async(&mut store).await?;
            hook.hookbox_okta_import_resolver()
                .call_resolve(&mut store, request)
                .await
        };
        let raw = tokio::time::timeout(limits.deadline + BACKSTOP_GRACE, call).await;

        let mut pool_exhausted = false;
        let result = match raw {
            Err(_elapsed) => Err(Failure::Deadline),
            Ok(Ok(Ok(response))) => Ok(Outcome::Response(response)),
            Ok(Ok(Err(summary))) => Ok(Outcome::Declined(summary)),
            Ok(Err(e)) => {
                pool_exhausted = e.is::<PoolConcurrencyLimitError>();
                Err(classify(&e, store.data()))
            }
        };
        let fuel_consumed = fuel.and_then(|f| store.get_fuel().ok().map(|left| f - left));
        let state = store.data_mut();
        Invocation {
            result,
            pool_exhausted,
            log: state.take_log(),
            elapsed: start.elapsed(),
            fuel_consumed,
            peak_memory: state.limiter.peak,
        }
    }
}

fn classify(e: &wasmtime::Error, state: &State) -> Failure {
    // The limiter's record wins: a guest allocator that cannot grow memory
    // usually aborts with `unreachable`, which is a trap only in form.
    if state.limiter.exceeded {
        return Failure::MemoryLimit;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Deadline,
        Some(Trap::OutOfFuel) => Failure::FuelExhausted,
        Some(_) => Failure::Trap(format!("{e:?}")),
        None if e.is::<PoolConcurrencyLimitError>() => Failure::Instantiate(e.to_string()),
        // Errors raised by host functions or WASI while the guest ran.
        None => Failure::Trap(format!("{e:?}")),
    }
}
