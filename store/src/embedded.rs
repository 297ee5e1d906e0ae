//! The embedded backend: one redb file, one [`redb::Database`] per process.
//!
//! Invariants:
//! - Every table is keyed by `(tenant, ...)` tuples, so tenants can never collide.
//! - A write is durable once its transaction's `commit` returns (redb's default immediate
//!   durability: fsync before return). Nothing is reported as done before that.
//! - redb serializes write transactions itself; we additionally let at most one write task onto
//!   Tokio's blocking pool at a time (a semaphore awaited asynchronously), so a burst of claims
//!   waits as cheap futures rather than as parked blocking threads.
//! - **Group commit** for the per-request writes (`claim`, `remember`): each is queued, and the
//!   next holder of the writer permit applies every queued one, in arrival order, in one write
//!   transaction with one commit (one fsync). Each sees the ones before it (a second claim of a
//!   key in the same group finds it taken). Every caller is told its result only after that
//!   commit returned; if anything in the group fails, the transaction is dropped (nothing of
//!   it is written) and every caller in the group gets the error. The caller that commits a
//!   group does it on the blocking pool, which finishes (and answers everyone) even if that
//!   caller is dropped; a write whose caller went away before its group began is not made. Without it
//!   every imported user cost two fsyncs one after another, which bounded a replica to about
//!   2,000 requests a second on this machine's disk, whatever its cores.
//! - Reads run in parallel on their own snapshot (MVCC) and never wait for writers.
//! - **Point lookups run inline** on the caller's thread ([`Embedded::lookup`]): a read
//!   transaction and a B-tree get or two take microseconds, while a hand-off to the blocking
//!   pool and back costs more than the read itself and, worse, its return trip is a wake from
//!   outside the runtime, which waits in Tokio's global queue for a worker; with a plugin
//!   spinning on the other worker that wait reached a millisecond at p99 (`bench/README.md`).
//!   A lookup that meets the database being reopened (the write lock held) goes to the
//!   blocking pool instead, so a worker never waits for a repair. A page missing from redb's
//!   cache is read from the file on the caller's thread: a short blocking read, like a plugin's
//!   slice of CPU. Scans (listings) and every write stay on the blocking pool.
//! - Claims check-then-insert inside one write transaction: atomic per key.
//! - Expired answers are invisible as soon as they expire, and deleted later: a few on every
//!   `remember`, the rest by a sweep every [`SWEEP_EVERY`] that stops when the store is dropped.
//! - A failed write (a full disk) fails only its own call. redb then refuses every later write
//!   (`PreviousIo`) until the file is opened again, so the next write reopens it (redb repairs
//!   it to its last commit) under the writer permit; until that succeeds, writes fail with the
//!   reason and reads say the database is closed. No restart needed once there is room again.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, TryLockError, Weak};
use std::time::Duration;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TransactionError, WriteTransaction,
};
use tokio::sync::{Semaphore, oneshot};

use crate::{
    ClaimOutcome, ClaimRecord, NewAnswer, Remembered, StoreError, StoredAnswer, from_ms, now_ms,
};

/// `(tenant, key) -> (owner, claimed_at_ms)`.
const CLAIMS: TableDefinition<(&str, &str), (&str, u64)> = TableDefinition::new("claims_v1");
/// `(request_digest, body, created_ms, expires_ms)`.
type AnswerValue = (&'static [u8], &'static [u8], u64, u64);
/// `(tenant, event_id) -> AnswerValue`.
const ANSWERS: TableDefinition<(&str, &str), AnswerValue> = TableDefinition::new("answers_v1");
/// `(expires_ms, tenant, event_id) -> ()`: the answers in expiry order, for the sweep.
const ANSWER_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("answer_expiry_v1");

/// How often the background sweep deletes expired answers.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Expired answers deleted by each `remember` (amortizes the sweep over writes).
const PURGE_PER_WRITE: usize = 8;

pub(crate) struct Embedded {
    pub(crate) inner: Arc<Shared>,
}

pub(crate) struct Shared {
    /// `None` only after a failed write, until it is reopened (see the module docs).
    db: RwLock<Option<Database>>,
    /// Whether commits are fsync'd (all but a throwaway store's).
    durable: bool,
    writer: Semaphore,
    /// Writes waiting for the next group commit (see the module docs).
    group: Mutex<Vec<Box<dyn Grouped>>>,
    path: PathBuf,
    // Declared after `db` so the directory outlives the database file handle on drop.
    _scratch_dir: Option<tempfile::TempDir>,
}

impl Shared {
    fn database(&self) -> RwLockReadGuard<'_, Option<Database>> {
        // Nothing panics while the lock is held, so a poisoned lock's value is still right.
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A read transaction on the current database.
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        begin_read(self.database().as_ref())
    }

    /// A write transaction, durable unless this is a throwaway store. Only
    /// called under the writer permit, which makes the reopen exclusive.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let first = match self.database().as_ref() {
            Some(db) => db.begin_write(),
            None => Err(TransactionError::Storage(StorageError::PreviousIo)),
        };
        let mut tx = match first {
            Err(TransactionError::Storage(StorageError::PreviousIo)) => self.reopen()?,
            other => other.map_err(db_err)?,
        };
        if !self.durable {
            tx.set_durability(Durability::None).map_err(db_err)?;
        }
        Ok(tx)
    }

    /// Closes the database redb refuses to write to after a failed write, and
    /// opens the file again (redb recovers it to its last commit). Left closed
    /// if that fails (no room yet): the next write tries again.
    fn reopen(&self) -> Result<WriteTransaction, StoreError> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        // The old handle must go first: it holds the file's lock.
        drop(db.take());
        let fresh = open_db(&self.path, self.durable).map_err(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "embedded store: reopening after a failed write failed");
            e
        })?;
        tracing::info!(path = %self.path.display(), "embedded store reopened after a failed write");
        let tx = fresh.begin_write().map_err(db_err);
        *db = Some(fresh);
        tx
    }
}

impl Embedded {
    pub(crate) async fn open(
        path: PathBuf,
        scratch_dir: Option<tempfile::TempDir>,
    ) -> Result<Self, StoreError> {
        let p = path.clone();
        let db = blocking(move || open_db(&p, true)).await??;
        Ok(Self::with_db(db, path, scratch_dir, true))
    }

    /// Like [`Embedded::open`] for a throwaway file: its commits are not fsync'd
    /// ([`Durability::None`]), since nothing in it has to survive a crash.
    pub(crate) async fn open_throwaway(
        path: PathBuf,
        scratch_dir: tempfile::TempDir,
    ) -> Result<Self, StoreError> {
        let p = path.clone();
        let db = blocking(move || open_db(&p, false)).await??;
        Ok(Self::with_db(db, path, Some(scratch_dir), false))
    }

    fn with_db(
        db: Database,
        path: PathBuf,
        scratch_dir: Option<tempfile::TempDir>,
        durable: bool,
    ) -> Self {
        let inner = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            durable,
            writer: Semaphore::new(1),
            group: Mutex::new(Vec::new()),
            path,
            _scratch_dir: scratch_dir,
        });
        spawn_sweeper(Arc::downgrade(&inner));
        Embedded { inner }
    }

    /// Runs `f` on the blocking pool with a reference to the shared state (scans).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || f(&inner)).await?
    }

    /// Runs the point lookup `f` on a read transaction, here on the caller's
    /// thread; on the blocking pool only while the database is being reopened
    /// (see the module docs). `f` must stay a lookup: a few gets, no scan.
    pub(crate) async fn lookup<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let tx = match self.inner.db.try_read() {
            Ok(db) => Some(begin_read(db.as_ref())),
            // Nothing panics while the lock is held, so a poisoned lock's value is still right.
            Err(TryLockError::Poisoned(e)) => Some(begin_read(e.into_inner().as_ref())),
            Err(TryLockError::WouldBlock) => None,
        };
        match tx {
            Some(tx) => f(&tx?),
            None => self.read(move |s| f(&s.begin_read()?)).await,
        }
    }

    /// The one writer slot (see the module docs), awaited asynchronously.
    async fn writer_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        self.inner
            .writer
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("embedded store is closing".into()))
    }

    /// Like `read`, holding the writer permit for the whole blocking call.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self.writer_permit().await?;
        let inner = self.inner.clone();
        let out = blocking(move || f(&inner)).await?;
        drop(permit);
        out
    }

    /// Queues `f` for the next group commit and waits for its result, which
    /// is sent once the group's transaction committed (see the module docs).
    /// `f` runs inside the shared transaction and returns its result and
    /// whether it changed anything (a group that changed nothing is not
    /// committed, so costs no fsync).
    pub(crate) async fn write_grouped<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        let (done, mut result) = oneshot::channel();
        self.inner.queue(Box::new(Job {
            f: Some(f),
            out: None,
            done,
        }));
        let permit = self.writer_permit().await?;
        // This write was queued before the permit was taken: either an earlier
        // holder committed it (every caller of a group is told before that
        // holder gives the permit back), or it is still queued and this caller
        // commits the group it is in.
        if let Ok(out) = result.try_recv() {
            return out;
        }
        let group = self.inner.take_group();
        let shared = self.inner.clone();
        // On the blocking pool, which finishes it even if this caller is
        // dropped meanwhile: the group is committed and its callers told.
        let _ = blocking(move || {
            let (group, outcome) = commit_group(&shared, group);
            // Callers are told once this task holds the database no more: one
            // that drops the store and opens the file again must not find it
            // still locked.
            drop(shared);
            for job in group {
                job.finish(outcome.as_ref().map(|_| ()));
            }
        })
        .await;
        drop(permit);
        result
            .await
            .map_err(|_| StoreError::Unavailable("embedded store write task failed".into()))?
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.lookup(|tx| {
            tx.open_table(CLAIMS).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn claim(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        now: u64,
    ) -> Result<ClaimOutcome, StoreError> {
        // Most claims of a taken key need no write transaction (and no fsync): decide on a
        // snapshot first. A claim that exists in a snapshot exists now, unless released, and a
        // release racing this call may be ordered either way.
        let (t, k, o) = (tenant.to_owned(), key.to_owned(), owner.to_owned());
        let seen = self
            .lookup(move |tx| {
                let table = tx.open_table(CLAIMS).map_err(db_err)?;
                let owner = table
                    .get((t.as_str(), k.as_str()))
                    .map_err(db_err)?
                    .map(|v| v.value().0 == o);
                Ok(owner)
            })
            .await?;
        match seen {
            Some(true) => return Ok(ClaimOutcome::AlreadyYours),
            Some(false) => return Ok(ClaimOutcome::Taken),
            None => {}
        }
        let (t, k, o) = (tenant.to_owned(), key.to_owned(), owner.to_owned());
        self.write_grouped(move |tx| {
            let mut table = tx.open_table(CLAIMS).map_err(db_err)?;
            let current = table
                .get((t.as_str(), k.as_str()))
                .map_err(db_err)?
                .map(|v| v.value().0 == o);
            let outcome = match current {
                Some(true) => ClaimOutcome::AlreadyYours,
                Some(false) => ClaimOutcome::Taken,
                None => {
                    table
                        .insert((t.as_str(), k.as_str()), (o.as_str(), now))
                        .map_err(db_err)?;
                    ClaimOutcome::Claimed
                }
            };
            Ok((outcome, outcome == ClaimOutcome::Claimed))
        })
        .await
    }

    pub(crate) async fn owner_of(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (t, k) = (tenant.to_owned(), key.to_owned());
        self.lookup(move |tx| {
            let table = tx.open_table(CLAIMS).map_err(db_err)?;
            let owner = table
                .get((t.as_str(), k.as_str()))
                .map_err(db_err)?
                .map(|v| v.value().0.to_owned());
            Ok(owner)
        })
        .await
    }

    pub(crate) async fn release(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let (t, k, o) = (tenant.to_owned(), key.to_owned(), owner.to_owned());
        self.write(move |s| {
            let tx = s.begin_write()?;
            let removed = {
                let mut table = tx.open_table(CLAIMS).map_err(db_err)?;
                let matches = table
                    .get((t.as_str(), k.as_str()))
                    .map_err(db_err)?
                    .is_some_and(|v| v.value().0 == o);
                if matches {
                    table.remove((t.as_str(), k.as_str())).map_err(db_err)?;
                }
                matches
            };
            if removed {
                tx.commit().map_err(db_err)?;
            } else {
                tx.abort().map_err(db_err)?;
            }
            Ok(removed)
        })
        .await
    }

    pub(crate) async fn force_release(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (t, k) = (tenant.to_owned(), key.to_owned());
        self.write(move |s| {
            let tx = s.begin_write()?;
            let former = {
                let mut table = tx.open_table(CLAIMS).map_err(db_err)?;
                let removed = table.remove((t.as_str(), k.as_str())).map_err(db_err)?;
                removed.map(|v| v.value().0.to_owned())
            };
            if former.is_some() {
                tx.commit().map_err(db_err)?;
            } else {
                tx.abort().map_err(db_err)?;
            }
            Ok(former)
        })
        .await
    }

    pub(crate) async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let t = tenant.to_owned();
        let after = after.map(str::to_owned);
        self.read(move |s| {
            let tx = s.begin_read()?;
            let table = tx.open_table(CLAIMS).map_err(db_err)?;
            // Tuple keys sort by tenant, then key bytes: a tenant's claims are one contiguous run.
            let start = match &after {
                Some(a) => Bound::Excluded((t.as_str(), a.as_str())),
                None => Bound::Included((t.as_str(), "")),
            };
            let mut out = Vec::new();
            for entry in table
                .range::<(&str, &str)>((start, Bound::Unbounded))
                .map_err(db_err)?
            {
                let (k, v) = entry.map_err(db_err)?;
                let (kt, kk) = k.value();
                if kt != t || out.len() >= limit {
                    break;
                }
                let (owner, at) = v.value();
                out.push(ClaimRecord {
                    key: kk.to_owned(),
                    owner: owner.to_owned(),
                    claimed_at: from_ms(at),
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn remember(
        &self,
        tenant: &str,
        event_id: &str,
        answer: NewAnswer,
    ) -> Result<Remembered, StoreError> {
        // No read first: callers remember an answer after their own recall found
        // none (hookbox's pipeline does), so a live one is rare here, and the
        // write below finds it all the same (a group that changed nothing is
        // not committed).
        let (t, e) = (tenant.to_owned(), event_id.to_owned());
        self.write_grouped(move |tx| {
            let now = answer.created_ms;
            let expires = now.saturating_add(answer.ttl_ms);
            let existing = {
                let mut answers = tx.open_table(ANSWERS).map_err(db_err)?;
                let mut expiry = tx.open_table(ANSWER_EXPIRY).map_err(db_err)?;
                let current = answers
                    .get((t.as_str(), e.as_str()))
                    .map_err(db_err)?
                    .map(|v| decode_answer(v.value()))
                    .transpose()?;
                match current {
                    Some((live, exp)) if exp > now => Some(live),
                    stale => {
                        if let Some((_, exp)) = stale {
                            expiry
                                .remove((exp, t.as_str(), e.as_str()))
                                .map_err(db_err)?;
                        }
                        answers
                            .insert(
                                (t.as_str(), e.as_str()),
                                (
                                    answer.request_digest.as_slice(),
                                    answer.body.as_slice(),
                                    now,
                                    expires,
                                ),
                            )
                            .map_err(db_err)?;
                        expiry
                            .insert((expires, t.as_str(), e.as_str()), ())
                            .map_err(db_err)?;
                        purge(&mut answers, &mut expiry, now, PURGE_PER_WRITE)?;
                        None
                    }
                }
            };
            Ok(match existing {
                Some(live) => (Remembered::Existing(live), false),
                None => (Remembered::Stored, true),
            })
        })
        .await
    }

    pub(crate) async fn recall(
        &self,
        tenant: &str,
        event_id: &str,
        now: u64,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        let (t, e) = (tenant.to_owned(), event_id.to_owned());
        self.lookup(move |tx| {
            let table = tx.open_table(ANSWERS).map_err(db_err)?;
            let Some(v) = table.get((t.as_str(), e.as_str())).map_err(db_err)? else {
                return Ok(None);
            };
            let (answer, expires) = decode_answer(v.value())?;
            Ok((expires > now).then_some(answer))
        })
        .await
    }

    pub(crate) async fn purge_expired(&self, now: u64, max: usize) -> Result<usize, StoreError> {
        self.write(move |s| purge_txn(s, now, max)).await
    }
}

fn purge_txn(s: &Shared, now: u64, max: usize) -> Result<usize, StoreError> {
    let tx = s.begin_write()?;
    let n = {
        let mut answers = tx.open_table(ANSWERS).map_err(db_err)?;
        let mut expiry = tx.open_table(ANSWER_EXPIRY).map_err(db_err)?;
        purge(&mut answers, &mut expiry, now, max)?
    };
    if n > 0 {
        tx.commit().map_err(db_err)?;
    } else {
        tx.abort().map_err(db_err)?;
    }
    Ok(n)
}

/// Deletes up to `max` answers that expired at or before `now`, oldest first.
fn purge(
    answers: &mut redb::Table<(&str, &str), AnswerValue>,
    expiry: &mut redb::Table<(u64, &str, &str), ()>,
    now: u64,
    max: usize,
) -> Result<usize, StoreError> {
    let mut due: Vec<(u64, String, String)> = Vec::new();
    for entry in expiry.iter().map_err(db_err)? {
        let (k, _) = entry.map_err(db_err)?;
        let (exp, t, e) = k.value();
        if exp > now || due.len() >= max {
            break;
        }
        due.push((exp, t.to_owned(), e.to_owned()));
    }
    for (exp, t, e) in &due {
        expiry
            .remove((*exp, t.as_str(), e.as_str()))
            .map_err(db_err)?;
        // Only delete the answer this index entry describes (a newer one may have replaced it).
        let same = answers
            .get((t.as_str(), e.as_str()))
            .map_err(db_err)?
            .is_some_and(|v| v.value().3 == *exp);
        if same {
            answers.remove((t.as_str(), e.as_str())).map_err(db_err)?;
        }
    }
    Ok(due.len())
}

fn decode_answer(v: (&[u8], &[u8], u64, u64)) -> Result<(StoredAnswer, u64), StoreError> {
    let (digest, body, created, expires) = v;
    let request_digest: [u8; 32] = digest.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "stored answer digest is {} bytes, not 32",
            digest.len()
        ))
    })?;
    Ok((
        StoredAnswer {
            request_digest,
            body: body.to_vec(),
            created_at: from_ms(created),
        },
        expires,
    ))
}

/// Deletes expired answers every [`SWEEP_EVERY`] until the store is dropped.
fn spawn_sweeper(shared: Weak<Shared>) {
    // The store is opened inside a runtime (`Store::open` is async), so this cannot fail there.
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(s) = shared.upgrade() else { return };
            let Ok(permit) = s.writer.acquire().await else {
                return;
            };
            let swept = blocking({
                let s = s.clone();
                move || {
                    let n = purge_txn(&s, now_ms(), 10_000)?;
                    crate::embedded_queue::purge_seen(&s, now_ms())?;
                    Ok::<_, StoreError>(n)
                }
            })
            .await;
            drop(permit);
            match swept {
                Ok(Ok(n)) if n > 0 => tracing::debug!(deleted = n, "expired answers swept"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, path = %s.path.display(), "answer sweep failed")
                }
            }
        }
    });
}

/// One write of a group commit (see the module docs).
trait Grouped: Send {
    /// Runs inside the group's transaction; `Ok(true)` if it changed anything.
    fn apply(&mut self, tx: &WriteTransaction) -> Result<bool, StoreError>;
    /// Tells the caller: its result if the group committed (or changed
    /// nothing), else the group's error.
    fn finish(self: Box<Self>, group: Result<(), &StoreError>);
}

struct Job<T, F> {
    f: Option<F>,
    out: Option<T>,
    done: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Grouped for Job<T, F>
where
    T: Send,
    F: FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError> + Send,
{
    fn apply(&mut self, tx: &WriteTransaction) -> Result<bool, StoreError> {
        // A caller that went away before its group began gets no write made
        // for it later, behind its back.
        if self.done.is_closed() {
            return Ok(false);
        }
        let Some(f) = self.f.take() else {
            return Ok(false);
        };
        let (out, changed) = f(tx)?;
        self.out = Some(out);
        Ok(changed)
    }

    fn finish(self: Box<Self>, group: Result<(), &StoreError>) {
        let result = match (group, self.out) {
            (Err(e), _) => Err(e.duplicate()),
            (Ok(()), Some(out)) => Ok(out),
            // Only a job whose caller is gone is not applied.
            (Ok(()), None) => Err(StoreError::Unavailable(
                "embedded store write was not applied".into(),
            )),
        };
        // A caller that went away does not want its result.
        let _ = self.done.send(result);
    }
}

impl Shared {
    fn queue(&self, job: Box<dyn Grouped>) {
        self.group
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
    }

    fn take_group(&self) -> Vec<Box<dyn Grouped>> {
        std::mem::take(&mut *self.group.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Applies `group` in one write transaction and commits it once (under the
/// writer permit); hands the group back with the outcome, for its callers.
fn commit_group(
    s: &Shared,
    mut group: Vec<Box<dyn Grouped>>,
) -> (Vec<Box<dyn Grouped>>, Result<(), StoreError>) {
    let outcome = (|| {
        let tx = s.begin_write()?;
        let mut changed = false;
        for job in &mut group {
            changed |= job.apply(&tx)?;
        }
        if changed {
            tx.commit().map_err(db_err)
        } else {
            tx.abort().map_err(db_err)
        }
    })();
    (group, outcome)
}

/// A read transaction on `db`, the current database (`None` while closed after a failed write).
fn begin_read(db: Option<&Database>) -> Result<ReadTransaction, StoreError> {
    match db {
        Some(db) => db.begin_read().map_err(db_err),
        None => Err(StoreError::Unavailable(
            "embedded database closed after a failed write; the next write reopens it".into(),
        )),
    }
}

async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store task failed: {e}")))
}

/// redb's page cache for a throwaway store: a dry run streams, so its memory
/// must not grow with the file (redb's default cache is 1 GiB); a durable
/// store keeps the default, since its reads are hot.
const THROWAWAY_CACHE: usize = 16 << 20;

fn open_db(path: &Path, durable: bool) -> Result<Database, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dirs(parent)?;
    }
    let mut builder = Database::builder();
    if !durable {
        builder.set_cache_size(THROWAWAY_CACHE);
    }
    let db = builder.create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "{} is already open (another hookbox process?)",
            path.display()
        )),
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            StoreError::io(format!("opening {}", path.display()), io)
        }
        other => db_err(other),
    })?;
    create_tables(&db)?;
    Ok(db)
}

/// Creates the tables once, so that read transactions never meet a missing table.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(db_err)?;
    tx.open_table(CLAIMS).map_err(db_err)?;
    tx.open_table(ANSWERS).map_err(db_err)?;
    tx.open_table(ANSWER_EXPIRY).map_err(db_err)?;
    crate::embedded_queue::create_tables(&tx)?;
    tx.commit().map_err(db_err)
}

fn create_private_dirs(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| StoreError::io(format!("creating directory {}", dir.display()), e))
}

/// Maps any redb error onto the store's error kinds.
pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => StoreError::io("reading or writing the embedded database", io),
        redb::Error::Corrupted(m) => StoreError::Corrupt(m),
        redb::Error::ValueTooLarge(n) => StoreError::Invalid(format!(
            "value of {n} bytes too large for the embedded store"
        )),
        e @ (redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)) => StoreError::Corrupt(format!(
            "embedded database is not in this version's format: {e}"
        )),
        other => StoreError::Unavailable(format!("embedded database: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = oneshot::Receiver<Result<ClaimOutcome, StoreError>>;

    /// A grouped write that claims `key` for `owner`, or fails when `fail`.
    fn claim(key: &str, owner: &str, fail: bool) -> (Box<dyn Grouped>, Outcome) {
        let (done, outcome) = oneshot::channel();
        let (k, o) = (key.to_owned(), owner.to_owned());
        let f = move |tx: &WriteTransaction| {
            if fail {
                return Err(StoreError::Invalid("a write that fails".into()));
            }
            let mut table = tx.open_table(CLAIMS).map_err(db_err)?;
            table
                .insert(("t", k.as_str()), (o.as_str(), 0))
                .map_err(db_err)?;
            Ok((ClaimOutcome::Claimed, true))
        };
        let job = Job {
            f: Some(f),
            out: None,
            done,
        };
        (Box::new(job), outcome)
    }

    async fn store() -> (tempfile::TempDir, Embedded) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Embedded::open(dir.path().join("store.redb"), None)
            .await
            .expect("opens");
        (dir, store)
    }

    fn finish(s: &Shared, group: Vec<Box<dyn Grouped>>) {
        let (group, outcome) = commit_group(s, group);
        for job in group {
            job.finish(outcome.as_ref().map(|_| ()));
        }
    }

    #[tokio::test]
    async fn a_failed_group_writes_nothing_and_every_caller_hears_the_error() {
        let (_dir, store) = store().await;
        let (a, mut a_out) = claim("a", "u1", false);
        let (bad, mut bad_out) = claim("x", "u2", true);
        let (b, mut b_out) = claim("b", "u3", false);
        finish(&store.inner, vec![a, bad, b]);
        for out in [&mut a_out, &mut bad_out, &mut b_out] {
            let got = out.try_recv().expect("told");
            assert!(matches!(got, Err(StoreError::Invalid(_))), "{got:?}");
        }
        for key in ["a", "b"] {
            assert_eq!(store.owner_of("t", key).await.expect("reads"), None);
        }
    }

    #[tokio::test]
    async fn a_write_whose_caller_went_away_is_not_made() {
        let (_dir, store) = store().await;
        let (gone, gone_out) = claim("a", "u1", false);
        drop(gone_out);
        let (kept, mut kept_out) = claim("b", "u2", false);
        finish(&store.inner, vec![gone, kept]);
        assert_eq!(
            kept_out.try_recv().expect("told").expect("committed"),
            ClaimOutcome::Claimed
        );
        assert_eq!(store.owner_of("t", "a").await.expect("reads"), None);
        assert_eq!(
            store.owner_of("t", "b").await.expect("reads").as_deref(),
            Some("u2")
        );
    }

    /// A lookup runs on the caller's thread, except while the database is
    /// being reopened (its write lock held, here by another thread): then it
    /// waits on the blocking pool, never on the caller's thread. A lookup that
    /// took the lock inline would block its first poll until the holder lets
    /// go (at the latest after 5 s) and come back finished, not pending.
    #[tokio::test]
    async fn a_lookup_never_waits_for_a_reopen_on_the_callers_thread() {
        use std::future::Future;
        use std::task::{Context, Waker};

        let (_dir, store) = store().await;
        let (a, _a_out) = claim("a", "u1", false);
        finish(&store.inner, vec![a]);
        assert_eq!(
            store.owner_of("t", "a").await.expect("reads").as_deref(),
            Some("u1")
        );

        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let inner = store.inner.clone();
        let holder = std::thread::spawn(move || {
            let _reopening = inner.db.write().expect("the lock");
            locked_tx.send(()).expect("told");
            let _ = release_rx.recv_timeout(Duration::from_secs(5));
        });
        locked.recv().expect("the lock is held");

        let mut lookup = std::pin::pin!(store.owner_of("t", "a"));
        let first = lookup
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert!(
            first.is_pending(),
            "the first poll waited for the lock: {first:?}"
        );
        release.send(()).expect("the holder waits");
        holder.join().expect("the holder");
        assert_eq!(lookup.await.expect("reads").as_deref(), Some("u1"));
    }
}
