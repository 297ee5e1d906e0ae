//! Okta event hooks: deliveries acknowledged only once durably queued, then
//! handed to the tenant's event handler off the request path.
//!
//! The path of one event, and the invariants it keeps:
//! 1. `POST /hooks/{tenant}/events` (`routes::events`) decodes the delivery
//!    ([`delivery`]; a malformed one is a 400 naming the field, and nothing
//!    is queued), keeps the events whose type the tenant subscribed to
//!    ([`crate::config::EventsConfig::types`]) and drops the others, and
//!    [`accept`]s them: one all-or-nothing `enqueue` into the store, durable
//!    when it returns, deduplicated by `uuid` for a day (across Okta's
//!    retries, replicas sharing a Redis store, and restarts). Only then does
//!    Okta get its 200. A full queue or an unreachable store is a 503 (Okta
//!    retries once): an event Okta was told is received is never lost.
//! 2. The `worker` (one per process, spawned with the server, stopped by
//!    its shutdown) leases each tenant's due events one at a time, in enqueue
//!    order, and calls the plugin's `handle` in a fresh instance under the
//!    tenant's limits. `ok` → the event is acknowledged (gone); `err`, a
//!    trap or the deadline → retried after an exponential backoff, and after
//!    `max_attempts` recorded as dead with the reason, for an operator to
//!    list and replay (`hookbox events`).
//! 3. A process that dies while handling leaves the lease to run out
//!    ([`lease`]): the event is due again, on this process after a restart or
//!    on another replica. Handling is therefore at least once; a handler sees
//!    an event twice only if the process died between the handler's return
//!    and the acknowledgement.

pub mod delivery;
mod map;
pub(crate) mod worker;

use std::time::Duration;

use hookbox_store::{DeadEvent, Enqueued, MAX_LIST_LIMIT, QueuedEvent, Store, StoreError};

use crate::config::EventsConfig;
use crate::plugin::Limits;
use delivery::{Delivery, Payload};

pub use map::to_wit;

/// The app-user sync event (Workflows' "Sync User in External Application"):
/// the default, and the only type handed over fully typed.
pub const SYNC_EVENT_TYPE: &str = "application.provision.user.sync";

/// Largest `events.max_queued` accepted.
pub const MAX_QUEUED: usize = 1_000_000;

/// Largest `events.max_attempts` accepted.
pub const MAX_ATTEMPTS: u32 = 100;

/// Largest `events.retry_backoff`, and the cap of the doubled backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How long a lease outlives the handler's deadline: time for the store
/// calls around the handler (acknowledge, or record the failure) to land
/// before another worker may take the event.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long a worker holds an event it handles under `limits`; a worker that
/// died holding it lets it go after this long.
pub fn lease(limits: &Limits) -> Duration {
    limits.deadline + LEASE_MARGIN
}

/// The wait before the retry that follows `attempts` failed attempts (1 or
/// more): `retry_backoff`, doubled at each attempt after the first, at most
/// [`MAX_BACKOFF`].
pub fn backoff(config: &EventsConfig, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    config
        .retry_backoff
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

/// What [`accept`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Events of a subscribed type newly queued.
    pub queued: usize,
    /// Events of a subscribed type already queued or handled (same `uuid`
    /// within a day, or twice in this delivery): not queued again.
    pub duplicates: usize,
    /// Events of other types: acknowledged and dropped.
    pub dropped: usize,
}

/// Why a delivery could not be queued; Okta gets a 503 and retries once.
#[derive(Debug, thiserror::Error)]
pub enum NotQueued {
    /// Queuing the delivery would take the tenant past `max_queued`.
    #[error("the tenant's event queue is full ({queued} queued)")]
    Full {
        /// Events queued for the tenant right now.
        queued: usize,
    },
    /// The store could not queue it (nothing was queued).
    #[error("the event store is unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Queues `delivery`'s events of the types `config` subscribes to, in their
/// order, in one durable all-or-nothing step; see the module docs.
pub async fn accept(
    store: &Store,
    tenant: &str,
    config: &EventsConfig,
    delivery: &Delivery,
) -> Result<Accepted, NotQueued> {
    let wanted: Vec<QueuedEvent> = delivery
        .events
        .iter()
        .filter(|e| config.types.contains(&e.event_type))
        .map(|e| QueuedEvent {
            uuid: e.uuid.clone(),
            payload: Payload::of(delivery, e).to_bytes(),
        })
        .collect();
    let dropped = delivery.events.len() - wanted.len();
    if wanted.is_empty() {
        return Ok(Accepted {
            queued: 0,
            duplicates: 0,
            dropped,
        });
    }
    match store.enqueue(tenant, wanted, config.max_queued).await? {
        Enqueued::Accepted {
            accepted,
            duplicates,
        } => Ok(Accepted {
            queued: accepted,
            duplicates,
            dropped,
        }),
        Enqueued::Full { queued } => Err(NotQueued::Full { queued }),
    }
}

/// Every dead event of `tenant`, oldest id first (the operator's list).
pub async fn all_dead(store: &Store, tenant: &str) -> Result<Vec<DeadEvent>, StoreError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.dead(tenant, after, MAX_LIST_LIMIT).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = Some(last.id);
        all.extend(page);
    }
}

/// Queues every dead event of `tenant` again; how many were.
pub async fn replay_all(store: &Store, tenant: &str) -> Result<usize, StoreError> {
    let mut replayed = 0;
    for dead in all_dead(store, tenant).await? {
        if store.replay(tenant, dead.id).await? {
            replayed += 1;
        }
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_configured_wait_up_to_the_cap() {
        let config = EventsConfig {
            retry_backoff: Duration::from_millis(500),
            ..EventsConfig::default()
        };
        let waits: Vec<_> = (1..=4).map(|a| backoff(&config, a)).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(backoff(&config, 60), MAX_BACKOFF);
        assert_eq!(backoff(&config, u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn only_subscribed_types_are_queued_once_each() {
        let store = Store::scratch().await.expect("scratch store");
        let body = include_str!("../../../tests/fixtures/events/delivery-mixed.json");
        let delivery = delivery::decode(body.as_bytes()).expect("fixture decodes");
        let config = EventsConfig::default();
        let first = accept(&store, "acme", &config, &delivery)
            .await
            .expect("queued");
        assert_eq!(
            first,
            Accepted {
                queued: 3,
                duplicates: 0,
                dropped: 2
            }
        );
        let again = accept(&store, "acme", &config, &delivery)
            .await
            .expect("queued");
        assert_eq!(
            again,
            Accepted {
                queued: 0,
                duplicates: 3,
                dropped: 2
            }
        );
        assert_eq!(store.queued("acme").await.expect("count"), 3);
        let full = EventsConfig {
            max_queued: 3,
            ..EventsConfig::default()
        };
        let mut other = delivery.clone();
        for e in &mut other.events {
            e.uuid.push_str("-other");
        }
        assert!(matches!(
            accept(&store, "acme", &full, &other).await,
            Err(NotQueued::Full { queued: 3 })
        ));
    }
}
