//! The event worker: one per process, off the request path, handing each
//! tenant's queued events to its plugin's event handler.
//!
//! Invariants:
//! - one task per tenant with an event handler, started within a second of
//!   the tenant appearing in the table (at start or by a reload) and ended
//!   when it leaves it or loses its handler; a tenant's events are handled one
//!   at a time, in the order `next_due` hands them out (enqueue order, except
//!   an event waiting for its retry);
//! - a task leases an event ([`super::lease`]), runs the handler in a fresh
//!   instance under the tenant's limits, and then acknowledges it or records
//!   the failure (retry after [`super::backoff`], or dead at `max_attempts`);
//! - nothing is lost when the worker stops or dies: on shutdown each task
//!   finishes the event in hand (bounded by the handler's deadline) and takes
//!   no new one; a killed process's leases run out and its events are due
//!   again after the restart (or on another replica sharing the store);
//! - the worker wakes when this process queues events ([`crate::App::events_queued`])
//!   and otherwise polls every [`IDLE_POLL`], for retries coming due, expired
//!   leases and events queued by other replicas;
//! - a store error never ends a task: it logs, waits a poll interval, and
//!   tries again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookbox_store::{Delivery, FailOutcome};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::{self, JoinSet};
use tracing::Instrument as _;

use super::delivery::{self, Payload};
use crate::App;
use crate::plugin::{HandlerRun, Overloaded};
use crate::tenant::Tenant;

/// How often an idle tenant's queue is looked at without a wake-up.
pub const IDLE_POLL: Duration = Duration::from_secs(1);

/// When every instance slot is taken: how long to wait before trying the
/// same event again, and how many times, before counting it as an attempt.
const OVERLOAD_WAIT: Duration = Duration::from_millis(50);
const OVERLOAD_TRIES: u32 = 20;

/// Runs the worker until `stop` turns true (or its sender is dropped), then
/// waits for every tenant task to finish the event in hand. Dropping this
/// future aborts the tenant tasks too (they live in its `JoinSet`): a server
/// future dropped without a shutdown takes its worker with it.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<task::Id, String> = HashMap::new();
    let mut wake = app.events_wake();
    loop {
        if *stop.borrow() {
            break;
        }
        while let Some(done) = tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    tracing::error!(error = %e, "an event task ended abnormally; restarting it");
                    e.id()
                }
            };
            running.remove(&id);
        }
        for tenant in app.tenants().iter() {
            if tenant.handles_events() && !running.values().any(|t| t == tenant.id()) {
                let id = tenant.id().to_owned();
                let span = tracing::info_span!("events", tenant = %id);
                let handle = tasks
                    .spawn(tenant_loop(app.clone(), id.clone(), stop.clone()).instrument(span));
                running.insert(handle.id(), id);
            }
        }
        tokio::select! {
            r = stop.changed() => if r.is_err() { break },
            _ = wake.changed() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// One tenant's events, one at a time, until the tenant goes or `stop`.
async fn tenant_loop(app: Arc<App>, id: String, mut stop: watch::Receiver<bool>) {
    let mut wake = app.events_wake();
    loop {
        if *stop.borrow() {
            return;
        }
        // The current version of the tenant, for each event: a reload's new
        // plugin, limits or `events` apply from the next event on.
        let Some(tenant) = app.tenant(&id).filter(|t| t.handles_events()) else {
            return;
        };
        // Seen before looking: whatever is queued from here on wakes the wait below.
        wake.borrow_and_update();
        match app
            .store()
            .next_due(&id, super::lease(tenant.limits()))
            .await
        {
            Ok(Some(event)) => {
                handle(&app, &tenant, event).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(kind = e.kind(), error = %e, "event queue unavailable"),
        }
        // Not held while idle: a recycled engine's old table (and its pool)
        // is freed as soon as its last request is done, not a poll later.
        drop(tenant);
        tokio::select! {
            r = stop.changed() => if r.is_err() { return },
            _ = wake.changed() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

/// Handles one leased event, then acknowledges it or records the failure.
async fn handle(app: &App, tenant: &Tenant, event: Delivery) {
    let span = tracing::info_span!(
        "event",
        uuid = %event.uuid,
        attempt = event.attempts + 1,
        plugin = tenant.plugin().short_digest(),
    );
    async {
        let outcome = match run_handler(app, tenant, &event).await {
            Ok(run) => {
                run.trace(tenant.log_budget());
                run.verdict()
            }
            Err(reason) => Err(reason),
        };
        settle(app, tenant, &event, outcome).await;
    }
    .instrument(span)
    .await
}

/// Decodes the payload and runs the handler; `Err` is the reason it did not
/// run to a verdict (an undecodable payload, no instance slot).
async fn run_handler(app: &App, tenant: &Tenant, event: &Delivery) -> Result<HandlerRun, String> {
    let payload = Payload::from_bytes(&event.payload).map_err(|e| e.to_string())?;
    let typed = delivery::log_event(&Value::Object(payload.event.clone()), "event")
        .map_err(|e| format!("queued event does not decode: {e}"))?;
    let wit_event = super::to_wit(&payload, typed);
    let scope = app.scope(tenant);
    let binding = tenant.binding(&scope);
    for _ in 0..OVERLOAD_TRIES {
        match binding.handle_event(&wit_event).await {
            Ok(run) => return Ok(run),
            Err(Overloaded) => tokio::time::sleep(OVERLOAD_WAIT).await,
        }
    }
    Err("no free instance slot to run the handler".into())
}

/// Acknowledges the event, or schedules its retry, or declares it dead.
async fn settle(app: &App, tenant: &Tenant, event: &Delivery, outcome: Result<(), String>) {
    let store = app.store();
    let id = tenant.id();
    let counted = |outcome| app.metrics().event_handled(id, outcome);
    let reason = match outcome {
        Ok(()) => {
            match store.ack(id, event.id).await {
                Ok(_) => {
                    counted("handled");
                    tracing::info!(outcome = "handled", "event handled")
                }
                // The lease runs out and the event is handled again: at least once.
                Err(e) => {
                    counted("unsettled");
                    tracing::warn!(kind = e.kind(), error = %e, "event handled, but not acknowledged; it will be handled again")
                }
            }
            return;
        }
        Err(reason) => reason,
    };
    let config = &tenant.config().events;
    let attempts = event.attempts + 1;
    let retry_in = (attempts < config.max_attempts).then(|| super::backoff(config, attempts));
    match store.fail(id, event.id, &reason, retry_in).await {
        Ok(FailOutcome::Retrying) => {
            counted("retrying");
            tracing::warn!(
                outcome = "retrying",
                retry_in_ms = retry_in.map_or(0, |d| d.as_millis() as u64),
                reason = %reason,
                "event handler failed; will retry"
            )
        }
        Ok(FailOutcome::Dead) => {
            counted("dead");
            tracing::error!(
                outcome = "dead",
                attempts,
                reason = %reason,
                "event handler failed for the last time; the event is dead (hookbox events dead)"
            )
        }
        Ok(FailOutcome::Unknown) => {
            counted("unsettled");
            tracing::warn!(reason = %reason, "event handler failed; the event was already settled")
        }
        Err(e) => {
            counted("unsettled");
            tracing::warn!(
                kind = e.kind(),
                error = %e,
                reason = %reason,
                "event handler failed, and the failure was not recorded; the lease will run out"
            )
        }
    }
}
