//! Giving back the memory the instance pool keeps after a burst.
//!
//! Why a whole engine: wasmtime's pooling allocator keeps up to
//! `engine.memory_keep_resident` (plus `engine.table_keep_resident`) of every
//! slot that ever served an instance resident for as long as the pool lives,
//! so that the slot's next instance starts fast (see the memory notes in
//! [`crate::plugin`]). wasmtime 48 has no call that decommits an unused warm
//! slot later, so after a burst of N instances at once the process keeps
//! N × keep-resident, up to `engine.max_instances` × keep-resident. The one
//! way to give that back is to drop the pool, which belongs to the engine.
//!
//! So [`run`] samples what the current engine's pool keeps in unused slots
//! ([`Runtime::unused_resident`](crate::plugin::Runtime::unused_resident)).
//! When it has stayed above `engine.idle_resident_limit` for
//! `engine.idle_resident_grace`, the app moves its tenants, unchanged, onto
//! a new engine with the same configuration ([`App::recycle`]); the old
//! engine, its pool and that memory go once the requests that started on it
//! are done. Memory after a burst is therefore back under the limit within
//! about the grace period plus the longest plugin deadline.
//!
//! Invariants:
//! - a recycle changes no answer and fails no request: requests in flight
//!   finish on the engine they started on, each tenant keeps its permits,
//!   log window, OAuth verifier and directory ([`crate::tenant::Tenant::rebound`]),
//!   and plugins are moved as compiled, never recompiled;
//! - one table change at a time: a recycle waits for a reload and a reload
//!   for a recycle ([`App::table_change`]);
//! - at most one recycle per grace period, whatever the traffic; a failed
//!   recycle changes nothing, is logged, and is tried again a grace later.
//!
//! The trade-off (numbers in `bench/README.md`): the new pool starts cold, so
//! each of its slots' first instance faults its pages in, as every instance
//! does with `memory_keep_resident = 0`; and a recycle copies each distinct
//! plugin's code once. Steady traffic keeps about `engine.max_unused_warm_slots`
//! slots warm and unused, which the default limit (twice what those keep)
//! leaves alone; `idle_resident_limit = "off"` never recycles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::App;

/// How often the pool is sampled for a grace period: ten times per grace,
/// within these bounds.
const SAMPLES_PER_GRACE: u32 = 10;
const MIN_SAMPLE: Duration = Duration::from_millis(10);
const MAX_SAMPLE: Duration = Duration::from_secs(1);

/// Watches `app`'s instance pool and recycles its engine as the module docs
/// say, until `stopped` turns true (or its sender is gone). Returns at once
/// when `engine.idle_resident_limit` is off.
pub async fn run(app: Arc<App>, mut stopped: watch::Receiver<bool>) {
    let config = app.runtime().config().clone();
    let Some(limit) = config.idle_resident_limit else {
        return;
    };
    let grace = config.idle_resident_grace;
    let mut ticks =
        tokio::time::interval((grace / SAMPLES_PER_GRACE).clamp(MIN_SAMPLE, MAX_SAMPLE));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut over_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    return;
                }
                continue;
            }
        }
        let kept = app.runtime().unused_resident();
        if kept <= limit {
            over_since = None;
            continue;
        }
        let since = *over_since.get_or_insert_with(Instant::now);
        if since.elapsed() < grace {
            continue;
        }
        // Whatever the outcome, the next recycle is at least a grace away.
        over_since = None;
        let started = Instant::now();
        match app.recycle().await {
            Ok(()) => tracing::info!(
                kept_bytes = kept,
                limit_bytes = limit,
                took_ms = started.elapsed().as_millis() as u64,
                "the instance pool kept more than engine.idle_resident_limit for \
                 engine.idle_resident_grace: tenants moved to a new engine, the old \
                 pool's memory goes back once its requests are done"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                kept_bytes = kept,
                "recycling the engine failed; nothing changed, trying again after the grace period"
            ),
        }
    }
}
