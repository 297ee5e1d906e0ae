//! The event queue on the embedded backend (see [`crate::queue`] for the contract).
//!
//! Tables, all keyed by tenant first so tenants never meet:
//! - `Q_EVENTS (tenant, id) -> (uuid, payload, attempts, due_ms)`: queued (or leased) events;
//! - `Q_DUE (tenant, due_ms, id) -> ()`: the same events in the order `next_due` hands them out;
//! - `Q_SEEN (tenant, uuid) -> expires_ms`: uuids seen within the dedupe window;
//! - `Q_META tenant -> (next_id, queued)`: id allocation and the queue length for `max_queued`;
//! - `Q_DEAD (tenant, id) -> (uuid, payload, attempts, reason, died_ms)`.
//!
//! Every operation is one write transaction (durable once it returns), so the tables never
//! disagree with each other.

use std::time::Duration;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::embedded::{Embedded, Shared, db_err};
use crate::queue::{DeadEvent, Delivery, Enqueued, FailOutcome, QueuedEvent};
use crate::{StoreError, from_ms};

type EventValue = (&'static str, &'static [u8], u32, u64);
type DeadValue = (&'static str, &'static [u8], u32, &'static str, u64);

const Q_EVENTS: TableDefinition<(&str, u64), EventValue> = TableDefinition::new("q_events_v1");
const Q_DUE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("q_due_v1");
const Q_SEEN: TableDefinition<(&str, &str), u64> = TableDefinition::new("q_seen_v1");
const Q_META: TableDefinition<&str, (u64, u64)> = TableDefinition::new("q_meta_v1");
const Q_DEAD: TableDefinition<(&str, u64), DeadValue> = TableDefinition::new("q_dead_v1");

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(Q_EVENTS).map_err(db_err)?;
    tx.open_table(Q_DUE).map_err(db_err)?;
    tx.open_table(Q_SEEN).map_err(db_err)?;
    tx.open_table(Q_META).map_err(db_err)?;
    tx.open_table(Q_DEAD).map_err(db_err)?;
    Ok(())
}

/// Forgets uuids whose dedupe window has passed.
pub(crate) fn purge_seen(s: &Shared, now: u64) -> Result<(), StoreError> {
    let tx = s.begin_write()?;
    tx.open_table(Q_SEEN)
        .map_err(db_err)?
        .retain(|_, expires| expires > now)
        .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Embedded {
    pub(crate) async fn enqueue(
        &self,
        tenant: &str,
        events: Vec<QueuedEvent>,
        max_queued: usize,
        dedupe_for: Duration,
        now: u64,
    ) -> Result<Enqueued, StoreError> {
        let t = tenant.to_owned();
        self.write(move |s| {
            let tx = s.begin_write()?;
            let result = {
                let mut seen = tx.open_table(Q_SEEN).map_err(db_err)?;
                let mut meta = tx.open_table(Q_META).map_err(db_err)?;
                let (next_id, queued) = meta
                    .get(t.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value())
                    .unwrap_or((1, 0));
                let mut fresh: Vec<&QueuedEvent> = Vec::new();
                let mut batch = std::collections::HashSet::new();
                for e in &events {
                    let known = seen
                        .get((t.as_str(), e.uuid.as_str()))
                        .map_err(db_err)?
                        .is_some_and(|v| v.value() > now);
                    if !known && batch.insert(e.uuid.as_str()) {
                        fresh.push(e);
                    }
                }
                let duplicates = events.len() - fresh.len();
                let queued_now = usize::try_from(queued).unwrap_or(usize::MAX);
                if !fresh.is_empty() && queued_now.saturating_add(fresh.len()) > max_queued {
                    Enqueued::Full { queued: queued_now }
                } else {
                    let mut evs = tx.open_table(Q_EVENTS).map_err(db_err)?;
                    let mut due = tx.open_table(Q_DUE).map_err(db_err)?;
                    let expires = now.saturating_add(ms(dedupe_for));
                    let mut id = next_id;
                    for e in &fresh {
                        seen.insert((t.as_str(), e.uuid.as_str()), expires)
                            .map_err(db_err)?;
                        evs.insert(
                            (t.as_str(), id),
                            (e.uuid.as_str(), e.payload.as_slice(), 0u32, now),
                        )
                        .map_err(db_err)?;
                        due.insert((t.as_str(), now, id), ()).map_err(db_err)?;
                        id += 1;
                    }
                    meta.insert(t.as_str(), (id, queued + fresh.len() as u64))
                        .map_err(db_err)?;
                    Enqueued::Accepted {
                        accepted: fresh.len(),
                        duplicates,
                    }
                }
            };
            if matches!(result, Enqueued::Accepted { accepted, .. } if accepted > 0) {
                tx.commit().map_err(db_err)?;
            } else {
                tx.abort().map_err(db_err)?;
            }
            Ok(result)
        })
        .await
    }

    pub(crate) async fn next_due(
        &self,
        tenant: &str,
        lease: Duration,
        now: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let t = tenant.to_owned();
        self.write(move |s| {
            let tx = s.begin_write()?;
            let delivery = {
                let mut due = tx.open_table(Q_DUE).map_err(db_err)?;
                let first = due
                    .range::<(&str, u64, u64)>((t.as_str(), 0, 0)..)
                    .map_err(db_err)?
                    .next()
                    .transpose()
                    .map_err(db_err)?
                    .and_then(|(k, _)| {
                        let (kt, at, id) = k.value();
                        (kt == t && at <= now).then_some((at, id))
                    });
                match first {
                    None => None,
                    Some((at, id)) => {
                        let mut evs = tx.open_table(Q_EVENTS).map_err(db_err)?;
                        let (uuid, payload, attempts) = {
                            let v =
                                evs.get((t.as_str(), id)).map_err(db_err)?.ok_or_else(|| {
                                    StoreError::Corrupt(format!("queued event {id} missing"))
                                })?;
                            let (u, p, a, _) = v.value();
                            (u.to_owned(), p.to_vec(), a)
                        };
                        // The lease: due again later unless acked or failed before then.
                        let until = now.saturating_add(ms(lease));
                        due.remove((t.as_str(), at, id)).map_err(db_err)?;
                        due.insert((t.as_str(), until, id), ()).map_err(db_err)?;
                        evs.insert(
                            (t.as_str(), id),
                            (uuid.as_str(), payload.as_slice(), attempts, until),
                        )
                        .map_err(db_err)?;
                        Some(Delivery {
                            id,
                            uuid,
                            payload,
                            attempts,
                        })
                    }
                }
            };
            if delivery.is_some() {
                tx.commit().map_err(db_err)?;
            } else {
                tx.abort().map_err(db_err)?;
            }
            Ok(delivery)
        })
        .await
    }

    pub(crate) async fn ack(&self, tenant: &str, id: u64) -> Result<bool, StoreError> {
        let t = tenant.to_owned();
        self.write(move |s| {
            let tx = s.begin_write()?;
            let found = remove_event(&tx, &t, id)?.is_some();
            if found {
                tx.commit().map_err(db_err)?;
            } else {
                tx.abort().map_err(db_err)?;
            }
            Ok(found)
        })
        .await
    }

    pub(crate) async fn fail(
        &self,
        tenant: &str,
        id: u64,
        reason: &str,
        retry_in: Option<Duration>,
        now: u64,
    ) -> Result<FailOutcome, StoreError> {
        let (t, r) = (tenant.to_owned(), reason.to_owned());
        self.write(move |s| {
            let tx = s.begin_write()?;
            let outcome = match retry_in {
                Some(delay) => {
                    let mut evs = tx.open_table(Q_EVENTS).map_err(db_err)?;
                    let current = evs.get((t.as_str(), id)).map_err(db_err)?.map(|v| {
                        let (u, p, a, d) = v.value();
                        (u.to_owned(), p.to_vec(), a, d)
                    });
                    match current {
                        None => FailOutcome::Unknown,
                        Some((uuid, payload, attempts, at)) => {
                            let until = now.saturating_add(ms(delay));
                            let mut due = tx.open_table(Q_DUE).map_err(db_err)?;
                            due.remove((t.as_str(), at, id)).map_err(db_err)?;
                            due.insert((t.as_str(), until, id), ()).map_err(db_err)?;
                            evs.insert(
                                (t.as_str(), id),
                                (
                                    uuid.as_str(),
                                    payload.as_slice(),
                                    attempts.saturating_add(1),
                                    until,
                                ),
                            )
                            .map_err(db_err)?;
                            FailOutcome::Retrying
                        }
                    }
                }
                None => match remove_event(&tx, &t, id)? {
                    None => FailOutcome::Unknown,
                    Some((uuid, payload, attempts)) => {
                        let mut dead = tx.open_table(Q_DEAD).map_err(db_err)?;
                        dead.insert(
                            (t.as_str(), id),
                            (
                                uuid.as_str(),
                                payload.as_slice(),
                                attempts.saturating_add(1),
                                r.as_str(),
                                now,
                            ),
                        )
                        .map_err(db_err)?;
                        FailOutcome::Dead
                    }
                },
            };
            if outcome == FailOutcome::Unknown {
                tx.abort().map_err(db_err)?;
            } else {
                tx.commit().map_err(db_err)?;
            }
            Ok(outcome)
        })
        .await
    }

    pub(crate) async fn dead(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadEvent>, StoreError> {
        let t = tenant.to_owned();
        self.read(move |s| {
            let tx = s.begin_read()?;
            let dead = tx.open_table(Q_DEAD).map_err(db_err)?;
            let start = after.map_or(0, |a| a.saturating_add(1));
            let mut out = Vec::new();
            for entry in dead
                .range::<(&str, u64)>((t.as_str(), start)..)
                .map_err(db_err)?
            {
                let (k, v) = entry.map_err(db_err)?;
                let (kt, id) = k.value();
                if kt != t || out.len() >= limit {
                    break;
                }
                let (uuid, payload, attempts, reason, died) = v.value();
                out.push(DeadEvent {
                    id,
                    uuid: uuid.to_owned(),
                    payload: payload.to_vec(),
                    attempts,
                    reason: reason.to_owned(),
                    died_at: from_ms(died),
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn replay(&self, tenant: &str, id: u64, now: u64) -> Result<bool, StoreError> {
        let t = tenant.to_owned();
        self.write(move |s| {
            let tx = s.begin_write()?;
            let moved = {
                let mut dead = tx.open_table(Q_DEAD).map_err(db_err)?;
                let removed = dead.remove((t.as_str(), id)).map_err(db_err)?.map(|v| {
                    let (u, p, ..) = v.value();
                    (u.to_owned(), p.to_vec())
                });
                match removed {
                    None => false,
                    Some((uuid, payload)) => {
                        let mut evs = tx.open_table(Q_EVENTS).map_err(db_err)?;
                        let mut due = tx.open_table(Q_DUE).map_err(db_err)?;
                        let mut meta = tx.open_table(Q_META).map_err(db_err)?;
                        evs.insert(
                            (t.as_str(), id),
                            (uuid.as_str(), payload.as_slice(), 0u32, now),
                        )
                        .map_err(db_err)?;
                        due.insert((t.as_str(), now, id), ()).map_err(db_err)?;
                        let (next_id, queued) = meta
                            .get(t.as_str())
                            .map_err(db_err)?
                            .map(|v| v.value())
                            .unwrap_or((id + 1, 0));
                        meta.insert(t.as_str(), (next_id, queued + 1))
                            .map_err(db_err)?;
                        true
                    }
                }
            };
            if moved {
                tx.commit().map_err(db_err)?;
            } else {
                tx.abort().map_err(db_err)?;
            }
            Ok(moved)
        })
        .await
    }

    pub(crate) async fn queued(&self, tenant: &str) -> Result<usize, StoreError> {
        let t = tenant.to_owned();
        self.lookup(move |tx| {
            let meta = tx.open_table(Q_META).map_err(db_err)?;
            let queued = meta
                .get(t.as_str())
                .map_err(db_err)?
                .map_or(0, |v| v.value().1);
            Ok(usize::try_from(queued).unwrap_or(usize::MAX))
        })
        .await
    }
}

/// Removes a queued event from `Q_EVENTS`, `Q_DUE` and the count; returns what it held.
fn remove_event(
    tx: &WriteTransaction,
    t: &str,
    id: u64,
) -> Result<Option<(String, Vec<u8>, u32)>, StoreError> {
    let mut evs = tx.open_table(Q_EVENTS).map_err(db_err)?;
    let Some((uuid, payload, attempts, at)) = evs.remove((t, id)).map_err(db_err)?.map(|v| {
        let (u, p, a, d) = v.value();
        (u.to_owned(), p.to_vec(), a, d)
    }) else {
        return Ok(None);
    };
    tx.open_table(Q_DUE)
        .map_err(db_err)?
        .remove((t, at, id))
        .map_err(db_err)?;
    let mut meta = tx.open_table(Q_META).map_err(db_err)?;
    let current = meta.get(t).map_err(db_err)?.map(|v| v.value());
    if let Some((next_id, queued)) = current {
        meta.insert(t, (next_id, queued.saturating_sub(1)))
            .map_err(db_err)?;
    }
    Ok(Some((uuid, payload, attempts)))
}
