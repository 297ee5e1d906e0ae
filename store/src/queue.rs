//! Types of the durable per-tenant event queue (Okta event hooks, issue 14).
//!
//! Lifecycle of an event: [`crate::Store::enqueue`] (durable before it returns; deduplicated by
//! uuid for [`DEDUPE_WINDOW`]) → [`crate::Store::next_due`] leases it to one worker for a while →
//! the worker calls [`crate::Store::ack`] (gone) or [`crate::Store::fail`] (retry later, or dead
//! with its reason). A worker that crashes holding a lease loses it when the lease runs out: the
//! event becomes due again, so an acknowledged delivery is processed at least once even across
//! restarts. Dead events are listed by [`crate::Store::dead`] and put back by
//! [`crate::Store::replay`].
//!
//! Order: `next_due` hands out the event with the earliest due time, ties broken by id (ids grow
//! in enqueue order), so the events of one delivery come out in their order unless one of them is
//! waiting for a retry.

use std::time::{Duration, SystemTime};

/// How long an event's uuid is remembered to drop redeliveries (Okta retries within seconds;
/// a day also covers an operator re-sending a delivery).
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Longest event uuid, in bytes.
pub const MAX_EVENT_UUID: usize = 128;
/// Largest event payload, in bytes.
pub const MAX_EVENT_PAYLOAD: usize = 1 << 20;
/// Most events one `enqueue` accepts.
pub const MAX_EVENTS_PER_ENQUEUE: usize = 1000;
/// Failure reasons are cut to this many bytes.
pub const MAX_FAIL_REASON: usize = 1024;

/// One event handed to [`crate::Store::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// The event's unique id (Okta's LogEvent `uuid`): the deduplication key.
    pub uuid: String,
    /// The event as the host wants it back (e.g. its JSON); opaque to the store.
    pub payload: Vec<u8>,
}

/// The answer to [`crate::Store::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Every new event is durably queued; `duplicates` were already seen (in this batch or within
    /// the dedupe window) and dropped.
    Accepted {
        /// Events newly queued.
        accepted: usize,
        /// Events dropped as already seen.
        duplicates: usize,
    },
    /// Queuing the new events would exceed `max_queued`: **nothing** was queued (answer 503 so
    /// Okta retries).
    Full {
        /// Events queued for the tenant right now.
        queued: usize,
    },
}

/// An event leased to a worker by [`crate::Store::next_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue's id for the event (for `ack`/`fail`); grows in enqueue order.
    pub id: u64,
    /// The event's uuid.
    pub uuid: String,
    /// Its payload, as enqueued.
    pub payload: Vec<u8>,
    /// How many times handling it failed before (0 on the first try).
    pub attempts: u32,
}

/// The answer to [`crate::Store::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The event will be due again after the given delay.
    Retrying,
    /// The event moved to the dead list.
    Dead,
    /// No queued event has that id (already acked, or dead).
    Unknown,
}

/// An event that failed for good ([`crate::Store::dead`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEvent {
    /// The queue's id for the event (for `replay`).
    pub id: u64,
    /// The event's uuid.
    pub uuid: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// How many times handling it failed.
    pub attempts: u32,
    /// The last failure's reason.
    pub reason: String,
    /// When it was declared dead.
    pub died_at: SystemTime,
}

pub(crate) fn check_events(events: &[QueuedEvent]) -> Result<(), crate::StoreError> {
    use crate::StoreError::Invalid;
    if events.len() > MAX_EVENTS_PER_ENQUEUE {
        return Err(Invalid(format!(
            "{} events in one enqueue, more than {MAX_EVENTS_PER_ENQUEUE}",
            events.len()
        )));
    }
    for e in events {
        if e.uuid.is_empty() || e.uuid.len() > MAX_EVENT_UUID {
            return Err(Invalid(format!(
                "event uuid must be 1 to {MAX_EVENT_UUID} bytes"
            )));
        }
        if e.payload.len() > MAX_EVENT_PAYLOAD {
            return Err(Invalid(format!(
                "event {} payload is {} bytes, more than {MAX_EVENT_PAYLOAD}",
                e.uuid,
                e.payload.len()
            )));
        }
    }
    Ok(())
}

/// Cuts a reason to [`MAX_FAIL_REASON`] bytes on a character boundary.
pub(crate) fn cut_reason(reason: &str) -> &str {
    if reason.len() <= MAX_FAIL_REASON {
        return reason;
    }
    let mut end = MAX_FAIL_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
