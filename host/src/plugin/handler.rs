//! One call of a plugin's event handler (`event-handler@0.2.0#handle`), for
//! the event worker and `hookbox run --events`.
//!
//! Always a fresh store and instance, whatever the tenant's instance mode:
//! events are handled one at a time per tenant, off the request path, so
//! instantiation is not worth a warm pool, and a handler that trapped or ran
//! out of time never leaves state behind for the next event. The store is
//! built and armed exactly like a request's ([`Runtime::new_store`],
//! [`Runtime::begin`]): the tenant's settings, memory, deadline, fuel and
//! claim scope.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::PoolConcurrencyLimitError;

use super::invoke::{Failure, Overloaded, caller_bound, classify};
use super::limits::{Limits, Settings};
use super::state::PluginLog;
use super::{Plugin, Runtime, StoreScope, events};

/// How one handler call ended, and what it cost.
#[derive(Debug)]
pub struct HandlerRun {
    /// `Ok(Ok(()))`: handled; `Ok(Err(reason))`: the handler said it failed;
    /// `Err`: it trapped, ran out of a limit, or could not start.
    pub result: Result<Result<(), String>, Failure>,
    /// What the handler logged, capped as for requests.
    pub log: PluginLog,
    /// Instantiation and call.
    pub elapsed: Duration,
    /// Fuel consumed, when the engine meters fuel.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the handler grew to, in bytes.
    pub peak_memory: usize,
    /// Claim-store calls made, and calls refused by the per-call cap.
    pub store_calls: (u32, u32),
}

impl HandlerRun {
    /// `Err(reason)` for anything but success: the handler's own reason, or
    /// the failure's kind and details (what a dead event records).
    pub fn verdict(&self) -> Result<(), String> {
        match &self.result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(reason.clone()),
            Err(failure) => Err(failure.to_string()),
        }
    }

    /// A short machine-readable name for logs.
    pub fn outcome(&self) -> &'static str {
        match &self.result {
            Ok(Ok(())) => "handled",
            Ok(Err(_)) => "handler_error",
            Err(f) => f.kind(),
        }
    }

    /// Logs what the handler logged (in the caller's span) within the
    /// tenant's `budget` ([`crate::log::plugin_lines`]), and its figures.
    pub fn trace(&self, budget: &crate::log::LogBudget) {
        crate::log::plugin_lines(budget, &self.log);
        tracing::debug!(
            plugin_us = self.elapsed.as_micros() as u64,
            peak_memory = self.peak_memory,
            fuel = self.fuel_consumed,
            "event handler ran"
        );
    }

    /// The figures against `limits`, as `hookbox run` prints them.
    pub fn report(&self, limits: &Limits) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "time: {:.3} ms of {} ms",
            self.elapsed.as_secs_f64() * 1e3,
            limits.deadline.as_millis()
        );
        let _ = writeln!(
            text,
            "memory: {} KiB peak of {} KiB",
            self.peak_memory / 1024,
            limits.memory / 1024
        );
        if let Some(fuel) = self.fuel_consumed {
            let _ = writeln!(text, "fuel: {fuel}");
        }
        let _ = writeln!(
            text,
            "store calls: {} ({} refused by the cap)",
            self.store_calls.0, self.store_calls.1
        );
        for line in &self.log.lines {
            let _ = writeln!(text, "log {:?}: {}", line.level, line.message);
        }
        text
    }
}

impl HandlerRun {
    /// A handler call on the background threads that had not finished by
    /// the caller's bound (as [`super::Invocation`]'s): aborted, what it
    /// logged or used lost with it.
    fn starved(start: Instant) -> HandlerRun {
        HandlerRun {
            result: Err(Failure::Deadline),
            log: PluginLog::default(),
            elapsed: start.elapsed(),
            fuel_consumed: None,
            peak_memory: 0,
            store_calls: (0, 0),
        }
    }
}

impl Runtime {
    /// Runs `plugin`'s event handler on `event` in a fresh instance under
    /// `limits`, its claims in `scope`. Never panics and never outlives
    /// `limits.deadline` by more than a tick plus a short grace. `Err` when
    /// no instance slot was free (the handler did not run). On the
    /// background threads while the tenant is heavy, as a request's call.
    pub async fn handle_event(
        &self,
        plugin: &Plugin,
        settings: Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
        event: &events::Event,
    ) -> Result<HandlerRun, Overloaded> {
        let start = Instant::now();
        let Some(background) = self.background_for(scope.tenant_id()) else {
            return self
                .handle_event_here(start, plugin, settings, limits, scope, event)
                .await;
        };
        let bound = caller_bound(start, limits.deadline);
        let (runtime, plugin, limits) = (self.clone(), plugin.clone(), limits.clone());
        let (scope, event) = (scope.clone(), event.clone());
        let call = async move {
            runtime
                .handle_event_here(start, &plugin, settings, &limits, &scope, &event)
                .await
        };
        background
            .run(bound, call)
            .await
            .unwrap_or_else(|| Ok(HandlerRun::starved(start)))
    }

    async fn handle_event_here(
        &self,
        start: Instant,
        plugin: &Plugin,
        settings: Arc<Settings>,
        limits: &Limits,
        scope: &StoreScope,
        event: &events::Event,
    ) -> Result<HandlerRun, Overloaded> {
        let mut store = self.new_store(settings, limits, scope);
        let deadline = start + limits.deadline;
        let fuel = self.begin(&mut store, limits, deadline);
        // As for a resolve call (`invoke`): wasm runs only with a CPU slot.
        let raw = self
            .on_cpu(&mut store, scope, deadline, async |store| {
                let handle = plugin.instantiate_handler(store).await?;
                let typed = handle.typed::<(&events::Event,), (Result<(), String>,)>(&*store)?;
                let (answer,) = typed.call_async(store, (event,)).await?;
                Ok(answer)
            })
            .await;
        let result = match raw {
            None => Err(Failure::Deadline),
            Some(Ok(answer)) => Ok(answer),
            Some(Err(e)) if e.is::<PoolConcurrencyLimitError>() => return Err(Overloaded),
            Some(Err(e)) => Err(classify(&e, store.data())),
        };
        let fuel_consumed = fuel.and_then(|f| store.get_fuel().ok().map(|left| f - left));
        let state = store.data_mut();
        Ok(HandlerRun {
            result,
            log: state.take_log(),
            elapsed: start.elapsed(),
            fuel_consumed,
            peak_memory: state.limiter.peak,
            store_calls: state.store_calls(),
        })
    }
}
