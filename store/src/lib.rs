//! hookbox's durable state: login **claims** and **idempotent answers**, per tenant, on one of two
//! backends chosen by configuration — an embedded [redb](https://docs.rs/redb) file (the default,
//! one process) or Redis (several replicas).
//!
//! # Invariants (both backends, one test suite checks them on each)
//! - **Tenant isolation.** Every operation takes the tenant id from the host; keys of different
//!   tenants live in disjoint key spaces (redb tuple keys `(tenant, key)`, Redis keys
//!   `prefix:{tenant}:…` with tenant ids restricted to `[a-z0-9_-]`). A plugin never names a tenant.
//! - **Claims are atomic per key and durable once [`ClaimOutcome::Claimed`] is returned**: redb's
//!   write transaction has committed (fsync), or Redis acknowledged the script's write. Two
//!   concurrent claims of one key by different owners: exactly one gets `Claimed`, the other
//!   `Taken`. Claims never expire; only [`Store::release`] (by the owner) or
//!   [`Store::force_release`] (an operator) removes one.
//! - **Keys are compared byte for byte.** The store does no case folding or normalisation: a
//!   caller that wants `George@x` and `george@x` to collide (Okta logins) must fold before calling.
//! - **Idempotent answers: first writer wins.** [`Store::remember`] stores an answer only if none
//!   is live for `(tenant, event_id)`; otherwise it returns the live one, so two racing
//!   computations of one event both end up sending the first stored answer. Answers expire after
//!   their TTL (default 10 minutes); an expired answer is never returned.
//! - **Every call is bounded.** Redis calls time out after the configured `call_timeout` with
//!   [`StoreError::Timeout`] or fail fast with [`StoreError::Unavailable`]; the connection is
//!   re-established by itself when Redis is back. The embedded backend runs redb on Tokio's
//!   blocking pool so it never blocks the async workers.
//! - **Event queue** (Okta event hooks): see [`queue`] — durable once `enqueue` returns,
//!   deduplicated by event uuid, leased to one worker at a time, retried, then dead.

#![warn(missing_docs)]

mod config;
mod embedded;
mod embedded_queue;
mod error;
mod limits;
pub mod queue;
mod queue_redis;
mod redis_backend;
#[cfg(feature = "test-support")]
pub mod testing;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{
    DEFAULT_ANSWER_TTL, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, StoreConfig,
    parse_duration,
};
pub use error::StoreError;
pub use limits::{
    MAX_ANSWER_BODY, MAX_CLAIM_KEY, MAX_CLAIM_OWNER, MAX_EVENT_ID, MAX_LIST_LIMIT, MAX_TENANT,
};
pub use queue::{DeadEvent, Delivery, Enqueued, FailOutcome, QueuedEvent};

/// The answer to [`Store::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimOutcome {
    /// The key was free and now belongs to the caller (durably).
    Claimed,
    /// The key already belonged to this same owner (a retry, a re-run import).
    AlreadyYours,
    /// The key belongs to another owner.
    Taken,
}

/// One claim, as an operator sees it ([`Store::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The claimed key, exactly as claimed.
    pub key: String,
    /// Its owner.
    pub owner: String,
    /// When it was claimed (the claiming host's clock, millisecond precision).
    pub claimed_at: SystemTime,
}

/// An answer kept for an event id so that a retry gets the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// SHA-256 (or any 32-byte digest the host chooses) of the request that produced the answer,
    /// so the host can tell a true retry from a different request reusing the event id.
    pub request_digest: [u8; 32],
    /// The answer's bytes, returned unchanged.
    pub body: Vec<u8>,
    /// When it was stored (the storing host's clock, millisecond precision).
    pub created_at: SystemTime,
}

/// The answer to [`Store::remember`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remembered {
    /// This answer is now the one for the event id.
    Stored,
    /// Another answer was stored first and is still live: send that one instead.
    Existing(StoredAnswer),
}

/// A handle on the configured store. Cheap to clone (an `Arc` inside), `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    answer_ttl: Duration,
}

enum Backend {
    Embedded(embedded::Embedded),
    Redis(redis_backend::RedisStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .field("answer_ttl", &self.inner.answer_ttl)
            .finish()
    }
}

impl Store {
    /// Opens the configured backend.
    ///
    /// Embedded: creates the parent directories (mode 0700) and the file; fails with
    /// [`StoreError::Io`] if it cannot (unwritable directory, full disk) and with
    /// [`StoreError::Unavailable`] if another process holds the file.
    ///
    /// Redis: checks the URL ([`StoreError::Invalid`]) but does **not** require Redis to be up:
    /// the connection is made on first use and re-made after every loss, so a host can start (and
    /// report not ready through [`Store::ping`]) while Redis is down.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let answer_ttl = config.answer_ttl();
        let backend = match config {
            StoreConfig::Embedded { path, .. } => {
                Backend::Embedded(embedded::Embedded::open(path.clone(), None).await?)
            }
            StoreConfig::Redis {
                url,
                prefix,
                call_timeout,
                connect_timeout,
                ..
            } => Backend::Redis(redis_backend::RedisStore::open(
                url,
                prefix,
                *call_timeout,
                *connect_timeout,
            )?),
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                answer_ttl,
            }),
        })
    }

    /// A throwaway embedded store in a fresh temporary directory, deleted when the last clone of
    /// the handle is dropped. For `hookbox run`, dry runs and tests.
    pub async fn scratch() -> Result<Store, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix("hookbox-store-")
            .tempdir()
            .map_err(|e| StoreError::io("creating a temporary directory", e))?;
        let path = dir.path().join("store.redb");
        let backend = Backend::Embedded(embedded::Embedded::open(path, Some(dir)).await?);
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                answer_ttl: DEFAULT_ANSWER_TTL,
            }),
        })
    }

    /// Like [`Store::scratch`], without an fsync per write: nothing in it survives the process
    /// anyway (a dry run's claims, which must never be kept). Same semantics otherwise.
    pub async fn throwaway() -> Result<Store, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix("hookbox-store-")
            .tempdir()
            .map_err(|e| StoreError::io("creating a temporary directory", e))?;
        let path = dir.path().join("store.redb");
        let backend = Backend::Embedded(embedded::Embedded::open_throwaway(path, dir).await?);
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                answer_ttl: DEFAULT_ANSWER_TTL,
            }),
        })
    }

    /// `"embedded"` or `"redis"`, for metrics labels and logs.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Redis(_) => "redis",
        }
    }

    /// The configured lifetime of idempotent answers (used by [`Store::remember`]).
    pub fn answer_ttl(&self) -> Duration {
        self.inner.answer_ttl
    }

    /// Checks that the backend answers (a read transaction, or Redis `PING`). For `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Embedded(b) => b.ping().await,
            Backend::Redis(b) => b.ping().await,
        }
    }

    /// Claims `key` for `owner` in `tenant`'s space: atomic per key, durable once
    /// [`ClaimOutcome::Claimed`] is returned. Keys are compared byte for byte (fold case first if
    /// the keys are case-insensitive, as Okta logins are).
    pub async fn claim(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        limits::tenant(tenant)?;
        limits::claim_key(key)?;
        limits::owner(owner)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.claim(tenant, key, owner, now_ms()).await,
            Backend::Redis(b) => b.claim(tenant, key, owner, now_ms()).await,
        }
    }

    /// The owner of `key` in `tenant`'s space, if it is claimed.
    pub async fn owner_of(&self, tenant: &str, key: &str) -> Result<Option<String>, StoreError> {
        limits::tenant(tenant)?;
        limits::claim_key(key)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.owner_of(tenant, key).await,
            Backend::Redis(b) => b.owner_of(tenant, key).await,
        }
    }

    /// Releases `key` if, and only if, `owner` holds it (an atomic compare-and-delete). Returns
    /// whether a claim was removed.
    pub async fn release(&self, tenant: &str, key: &str, owner: &str) -> Result<bool, StoreError> {
        limits::tenant(tenant)?;
        limits::claim_key(key)?;
        limits::owner(owner)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.release(tenant, key, owner).await,
            Backend::Redis(b) => b.release(tenant, key, owner).await,
        }
    }

    /// Operator: removes the claim on `key` whoever holds it; returns the former owner.
    pub async fn force_release(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        limits::tenant(tenant)?;
        limits::claim_key(key)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.force_release(tenant, key).await,
            Backend::Redis(b) => b.force_release(tenant, key).await,
        }
    }

    /// Operator: up to `limit` (at most [`MAX_LIST_LIMIT`]) claims of `tenant` whose keys sort
    /// strictly after `after` (byte order), in byte order of their keys. Page by passing the last
    /// key of one page as `after` of the next; an empty page is the end.
    pub async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        limits::tenant(tenant)?;
        if let Some(after) = after {
            limits::claim_key(after)?;
        }
        let limit = limit.min(MAX_LIST_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        match &self.inner.backend {
            Backend::Embedded(b) => b.list(tenant, after, limit).await,
            Backend::Redis(b) => b.list(tenant, after, limit).await,
        }
    }

    /// Keeps `body` as the answer to `(tenant, event_id)` for the configured answer TTL, unless a
    /// live answer is already there: first writer wins, atomically.
    pub async fn remember(
        &self,
        tenant: &str,
        event_id: &str,
        request_digest: [u8; 32],
        body: Vec<u8>,
    ) -> Result<Remembered, StoreError> {
        self.remember_for(
            tenant,
            event_id,
            request_digest,
            body,
            self.inner.answer_ttl,
        )
        .await
    }

    /// [`Store::remember`] with an explicit TTL (at least 1 ms).
    pub async fn remember_for(
        &self,
        tenant: &str,
        event_id: &str,
        request_digest: [u8; 32],
        body: Vec<u8>,
        ttl: Duration,
    ) -> Result<Remembered, StoreError> {
        limits::tenant(tenant)?;
        limits::event_id(event_id)?;
        limits::body(&body)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let answer = NewAnswer {
            request_digest,
            body,
            created_ms: now_ms(),
            ttl_ms,
        };
        match &self.inner.backend {
            Backend::Embedded(b) => b.remember(tenant, event_id, answer).await,
            Backend::Redis(b) => b.remember(tenant, event_id, answer).await,
        }
    }

    /// The live answer to `(tenant, event_id)`, if any (expired answers are absent).
    pub async fn recall(
        &self,
        tenant: &str,
        event_id: &str,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        limits::tenant(tenant)?;
        limits::event_id(event_id)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.recall(tenant, event_id, now_ms()).await,
            Backend::Redis(b) => b.recall(tenant, event_id).await,
        }
    }

    /// Deletes expired answers now; returns how many. The embedded backend also does this on its
    /// own (a little on every `remember`, and a sweep every minute); Redis expires keys itself, so
    /// there this returns 0.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        match &self.inner.backend {
            Backend::Embedded(b) => b.purge_expired(now_ms(), usize::MAX).await,
            Backend::Redis(_) => Ok(0),
        }
    }
}

impl Store {
    /// Durably queues `events` for `tenant`, in their order, dropping those whose uuid was seen
    /// within [`queue::DEDUPE_WINDOW`] (or earlier in the same batch). All-or-nothing: if the new
    /// events would make more than `max_queued` queued events, nothing is queued and
    /// [`Enqueued::Full`] is returned. Returns only once the events are durable (embedded: the
    /// transaction committed; Redis: the script's writes acknowledged).
    pub async fn enqueue(
        &self,
        tenant: &str,
        events: Vec<QueuedEvent>,
        max_queued: usize,
    ) -> Result<Enqueued, StoreError> {
        limits::tenant(tenant)?;
        queue::check_events(&events)?;
        if events.is_empty() {
            return Ok(Enqueued::Accepted {
                accepted: 0,
                duplicates: 0,
            });
        }
        let now = now_ms();
        let window = queue::DEDUPE_WINDOW;
        match &self.inner.backend {
            Backend::Embedded(b) => b.enqueue(tenant, events, max_queued, window, now).await,
            Backend::Redis(b) => b.enqueue(tenant, events, max_queued, window, now).await,
        }
    }

    /// Leases the next due event of `tenant` (earliest due time, then lowest id) for `lease`:
    /// nobody else gets it until the lease runs out, after which it is due again (so a worker
    /// that dies mid-way does not lose it). `None` when nothing is due.
    pub async fn next_due(
        &self,
        tenant: &str,
        lease: Duration,
    ) -> Result<Option<Delivery>, StoreError> {
        limits::tenant(tenant)?;
        let now = now_ms();
        match &self.inner.backend {
            Backend::Embedded(b) => b.next_due(tenant, lease, now).await,
            Backend::Redis(b) => b.next_due(tenant, lease, now).await,
        }
    }

    /// Removes a handled event from the queue. `false` if no queued event has that id.
    pub async fn ack(&self, tenant: &str, id: u64) -> Result<bool, StoreError> {
        limits::tenant(tenant)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.ack(tenant, id).await,
            Backend::Redis(b) => b.ack(tenant, id).await,
        }
    }

    /// Records a failed attempt: with `retry_in`, the event is due again after that delay (the
    /// caller owns the backoff policy, using [`Delivery::attempts`]); without, it moves to the
    /// dead list with `reason` (cut to [`queue::MAX_FAIL_REASON`] bytes).
    pub async fn fail(
        &self,
        tenant: &str,
        id: u64,
        reason: &str,
        retry_in: Option<Duration>,
    ) -> Result<FailOutcome, StoreError> {
        limits::tenant(tenant)?;
        let reason = queue::cut_reason(reason);
        let now = now_ms();
        match &self.inner.backend {
            Backend::Embedded(b) => b.fail(tenant, id, reason, retry_in, now).await,
            Backend::Redis(b) => b.fail(tenant, id, reason, retry_in, now).await,
        }
    }

    /// Operator: up to `limit` (at most [`MAX_LIST_LIMIT`]) dead events with ids above `after`,
    /// in id order.
    pub async fn dead(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadEvent>, StoreError> {
        limits::tenant(tenant)?;
        let limit = limit.min(MAX_LIST_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        match &self.inner.backend {
            Backend::Embedded(b) => b.dead(tenant, after, limit).await,
            Backend::Redis(b) => b.dead(tenant, after, limit).await,
        }
    }

    /// Operator: puts a dead event back in the queue, due now, with its attempts reset (beyond
    /// `max_queued`: an operator's decision). `false` if no dead event has that id.
    pub async fn replay(&self, tenant: &str, id: u64) -> Result<bool, StoreError> {
        limits::tenant(tenant)?;
        let now = now_ms();
        match &self.inner.backend {
            Backend::Embedded(b) => b.replay(tenant, id, now).await,
            Backend::Redis(b) => b.replay(tenant, id, now).await,
        }
    }

    /// How many events `tenant` has queued (leased ones included, dead ones not).
    pub async fn queued(&self, tenant: &str) -> Result<usize, StoreError> {
        limits::tenant(tenant)?;
        match &self.inner.backend {
            Backend::Embedded(b) => b.queued(tenant).await,
            Backend::Redis(b) => b.queued(tenant).await,
        }
    }
}

/// An answer on its way into a backend.
pub(crate) struct NewAnswer {
    request_digest: [u8; 32],
    body: Vec<u8>,
    created_ms: u64,
    ttl_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
