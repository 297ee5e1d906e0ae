//! A fair share of plugin CPU between tenants: [`CpuScheduler`].
//!
//! Wasm runs only while its call holds one of `engine.cpu_slots` CPU slots.
//! A call takes a slot before it instantiates its plugin; at every epoch
//! tick (`EPOCH_TICK`, 5 ms) it lets its worker run the other ready tasks,
//! then gives the slot back and queues for one again. It also gives it back
//! while it awaits the claim store, and for good when it ends (or is
//! dropped). So a plugin that spins to its deadline holds
//! a slot for one tick at a time, and between its ticks every other tenant's
//! waiting call has its turn.
//!
//! Invariants:
//! - **Bounded**: at most `slots` calls hold a slot at once, and at most
//!   `per_tenant` of them are one tenant's; a tenant at its cap waits even
//!   when a slot is free, so one tenant never fills every slot (with the
//!   default, `slots - 1`, one slot is always left for the others).
//! - **Least used first**: each tenant has a virtual time, the CPU time its
//!   calls held slots for (nanoseconds, charged when a slot is given back). A
//!   free slot goes to the waiting call of the eligible tenant (under its
//!   cap) with the smallest virtual time; among one tenant's calls, and
//!   between tenants with equal times, first come first served. A tenant
//!   that had nothing running or waiting starts again at the scheduler's
//!   virtual clock (the largest virtual time granted so far), never below:
//!   being idle earns no credit to spend later in a burst.
//! - **Work-conserving below the caps**: a slot is never left free while a
//!   call of a tenant under its cap waits for one (`Sched::dispatch` runs
//!   after every change).
//! - **Cancellation-safe**: a call dropped while it waits leaves the queue
//!   (its entry is skipped and removed), and a slot granted to a call that
//!   is gone is given back at once; a slot ([`Slot`]) is released when
//!   dropped, whatever path the call took.
//! - **Deadlines hold**: waiting for a slot never outlasts the call's
//!   deadline (`CallCpu::enter` gives up at it), and a call that reached
//!   its deadline while it waited is interrupted as it resumes, without
//!   running: after an epoch yield its next check is 0 ticks away
//!   (`CallCpu::at_tick`); after a host call the epoch is advanced so
//!   its next check fires.
//! - **No wasm without a slot**: so a tenant's calls never run on more
//!   than `per_tenant` threads at once, whatever their number.
//! - **Heavy tenants are known**: a tenant one of whose calls has held
//!   slots for [`HEAVY_CALL`] of CPU in all is *heavy* from then until
//!   [`HEAVY_FOR`] after the last such call (idle or not, so a tenant cannot
//!   shed the mark by pausing). Its calls that start meanwhile run on the
//!   background threads (`background.rs`); this module only keeps
//!   the mark, which changes nothing in how slots are granted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// CPU one call may hold slots for before its tenant is heavy: two epoch
/// ticks. A call of the reference plugin takes tens of microseconds; a call
/// that yields at a tick twice is not a lookup.
pub const HEAVY_CALL: Duration = Duration::from_millis(10);

/// How long a tenant stays heavy after its last heavy call.
pub const HEAVY_FOR: Duration = Duration::from_secs(30);

/// Plugin CPU slots shared by every tenant of an engine, handed out fairly.
#[derive(Clone)]
pub struct CpuScheduler {
    inner: Arc<Inner>,
}

struct Inner {
    slots: usize,
    per_tenant: usize,
    state: Mutex<Sched>,
}

#[derive(Default)]
struct Sched {
    free: usize,
    /// Tenants with a call running or waiting (an idle tenant is removed).
    tenants: HashMap<Arc<str>, TenantQueue>,
    /// The largest virtual time granted a slot so far: where a tenant that
    /// comes back from idle starts.
    clock: u64,
    /// Arrival order of waiting calls (ties between tenants, and FIFO).
    seq: u64,
    /// Heavy tenants, until when (kept while idle; expired ones are removed
    /// when read). At most one entry per tenant that ever made a heavy call.
    heavy: HashMap<Arc<str>, Instant>,
}

#[derive(Default)]
struct TenantQueue {
    running: usize,
    vtime: u64,
    waiting: VecDeque<Waiter>,
}

struct Waiter {
    seq: u64,
    grant: oneshot::Sender<Slot>,
    /// The call's CPU so far, in nanoseconds (shared by its slots).
    used: Arc<AtomicU64>,
}

/// One CPU slot, held by one call of one tenant; given back (and its time
/// charged to the tenant) when dropped.
pub struct Slot {
    inner: Arc<Inner>,
    tenant: Arc<str>,
    since: Instant,
    /// Charged instead of the measured time (deterministic tests).
    cost: Option<Duration>,
    /// The CPU its call has held slots for, this one's time added on drop.
    used: Arc<AtomicU64>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let used = self.cost.unwrap_or_else(|| self.since.elapsed());
        let used = u64::try_from(used.as_nanos()).unwrap_or(u64::MAX);
        let call = self
            .used
            .fetch_add(used, Ordering::Relaxed)
            .saturating_add(used);
        let (grants, became_heavy) = {
            let mut s = self.inner.lock();
            s.free += 1;
            if let Some(t) = s.tenants.get_mut(&self.tenant) {
                t.running -= 1;
                t.vtime = t.vtime.saturating_add(used);
            }
            let became_heavy =
                call >= HEAVY_CALL.as_nanos() as u64 && s.mark_heavy(&self.tenant, Instant::now());
            s.forget_if_idle(&self.tenant);
            (s.dispatch(&self.inner), became_heavy)
        };
        // Outside the lock: a grant whose receiver is gone comes back as its
        // slot, whose drop takes the lock again.
        send(grants);
        if became_heavy {
            tracing::info!(
                tenant = %self.tenant,
                cpu_ms = call / 1_000_000,
                for_secs = HEAVY_FOR.as_secs(),
                "a plugin call used a lot of CPU: the tenant's calls run at background priority for a while"
            );
        }
    }
}

impl Slot {
    /// Gives the slot back, charging `cost` instead of the time it was held.
    pub fn release_charging(mut self, cost: Duration) {
        self.cost = Some(cost);
    }
}

fn send(grants: Vec<(oneshot::Sender<Slot>, Slot)>) {
    for (tx, slot) in grants {
        // A receiver dropped since: the slot is dropped here, which gives it back.
        let _ = tx.send(slot);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Sched> {
        // Every critical section leaves the counters consistent before it can
        // panic (it does not), so a poisoned lock's state is still right.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sched {
    /// Grants free slots to the best eligible waiters, until none is free or
    /// none is eligible. Returns the grants, to be sent after the lock.
    fn dispatch(&mut self, inner: &Arc<Inner>) -> Vec<(oneshot::Sender<Slot>, Slot)> {
        let mut grants = Vec::new();
        while self.free > 0 {
            // Drop waiters whose call is gone, then pick the least-used
            // eligible tenant; ties go to the earliest waiter.
            let mut best: Option<(u64, u64, Arc<str>)> = None;
            for (name, t) in self.tenants.iter_mut() {
                while t.waiting.front().is_some_and(|w| w.grant.is_closed()) {
                    t.waiting.pop_front();
                }
                if t.running >= inner.per_tenant {
                    continue;
                }
                let Some(head) = t.waiting.front() else {
                    continue;
                };
                let key = (t.vtime, head.seq);
                if best.as_ref().is_none_or(|(v, s, _)| key < (*v, *s)) {
                    best = Some((key.0, key.1, name.clone()));
                }
            }
            let Some((vtime, _, name)) = best else { break };
            let Some(t) = self.tenants.get_mut(&name) else {
                break;
            };
            let Some(waiter) = t.waiting.pop_front() else {
                break;
            };
            t.running += 1;
            self.free -= 1;
            self.clock = self.clock.max(vtime);
            grants.push((
                waiter.grant,
                Slot {
                    inner: inner.clone(),
                    tenant: name,
                    since: Instant::now(),
                    cost: None,
                    used: waiter.used,
                },
            ));
        }
        let idle: Vec<Arc<str>> = self
            .tenants
            .iter()
            .filter(|(_, t)| t.running == 0 && t.waiting.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for n in idle {
            self.tenants.remove(&n);
        }
        grants
    }

    /// Marks `tenant` heavy until [`HEAVY_FOR`] after `now`; `true` if it was
    /// not heavy at `now`.
    fn mark_heavy(&mut self, tenant: &Arc<str>, now: Instant) -> bool {
        let was = self.heavy.insert(tenant.clone(), now + HEAVY_FOR);
        if was.is_none() {
            // A new entry: drop the expired ones, which a tenant no longer
            // configured would otherwise leave forever.
            self.heavy.retain(|_, until| *until > now);
        }
        was.is_none_or(|until| until <= now)
    }

    /// Whether `tenant` is heavy at `now`; forgets it if its mark expired.
    fn heavy_at(&mut self, tenant: &str, now: Instant) -> bool {
        match self.heavy.get(tenant) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.heavy.remove(tenant);
                false
            }
            None => false,
        }
    }

    fn forget_if_idle(&mut self, tenant: &str) {
        if self
            .tenants
            .get(tenant)
            .is_some_and(|t| t.running == 0 && t.waiting.is_empty())
        {
            self.tenants.remove(tenant);
        }
    }
}

impl CpuScheduler {
    /// `slots` CPU slots (at least 1), at most `per_tenant` (at least 1, at
    /// most `slots`) held by one tenant at once.
    pub fn new(slots: u32, per_tenant: u32) -> CpuScheduler {
        let slots = slots.max(1) as usize;
        let per_tenant = (per_tenant.max(1) as usize).min(slots);
        CpuScheduler {
            inner: Arc::new(Inner {
                slots,
                per_tenant,
                state: Mutex::new(Sched {
                    free: slots,
                    ..Sched::default()
                }),
            }),
        }
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// The per-tenant cap.
    pub fn per_tenant(&self) -> usize {
        self.inner.per_tenant
    }

    /// Slots held right now (sampled).
    pub fn running(&self) -> usize {
        self.inner.slots - self.inner.lock().free
    }

    /// Calls waiting for a slot right now (sampled).
    pub fn waiting(&self) -> usize {
        self.inner
            .lock()
            .tenants
            .values()
            .map(|t| t.waiting.iter().filter(|w| !w.grant.is_closed()).count())
            .sum()
    }

    /// A tenant's virtual time (CPU nanoseconds charged, from where it last
    /// came back from idle); `None` for a tenant with nothing running or waiting.
    pub fn vtime(&self, tenant: &str) -> Option<u64> {
        self.inner.lock().tenants.get(tenant).map(|t| t.vtime)
    }

    /// Whether `tenant` is heavy now (see the module docs): its calls that
    /// start now run at background priority.
    pub fn is_heavy(&self, tenant: &str) -> bool {
        self.is_heavy_at(tenant, Instant::now())
    }

    pub(crate) fn is_heavy_at(&self, tenant: &str, now: Instant) -> bool {
        self.inner.lock().heavy_at(tenant, now)
    }

    /// Queues a call of `tenant` for a slot; the receiver resolves when one
    /// is granted (at once, if a slot is free and the tenant under its cap).
    /// Dropping the receiver withdraws the call. Each call acquired this way
    /// is a call of its own for [`HEAVY_CALL`].
    pub fn acquire(&self, tenant: &Arc<str>) -> oneshot::Receiver<Slot> {
        self.acquire_for(tenant, Arc::default())
    }

    /// [`CpuScheduler::acquire`] for a call whose CPU so far is `used`
    /// (nanoseconds, shared by all its slots).
    pub(crate) fn acquire_for(
        &self,
        tenant: &Arc<str>,
        used: Arc<AtomicU64>,
    ) -> oneshot::Receiver<Slot> {
        let (tx, rx) = oneshot::channel();
        let grants = {
            let mut s = self.inner.lock();
            let clock = s.clock;
            s.seq += 1;
            let seq = s.seq;
            let t = s
                .tenants
                .entry(tenant.clone())
                .or_insert_with(|| TenantQueue {
                    vtime: clock,
                    ..TenantQueue::default()
                });
            t.waiting.push_back(Waiter {
                seq,
                grant: tx,
                used,
            });
            s.dispatch(&self.inner)
        };
        send(grants);
        rx
    }

    /// The CPU account of one call of `tenant`, whose deadline is `deadline`;
    /// `engine` is advanced when the call must be interrupted at once.
    pub(crate) fn call(
        &self,
        tenant: Arc<str>,
        deadline: Instant,
        engine: wasmtime::Engine,
    ) -> CallCpu {
        CallCpu {
            scheduler: self.clone(),
            tenant,
            deadline,
            engine,
            slot: Arc::new(Mutex::new(None)),
            regranted: Arc::new(AtomicBool::new(false)),
            used: Arc::default(),
        }
    }
}

/// One call's hold on the CPU: the slot it holds (if any right now), shared
/// with the future that re-acquires it after an epoch yield. Dropping it
/// (with the call's store) gives the slot back.
pub(crate) struct CallCpu {
    scheduler: CpuScheduler,
    tenant: Arc<str>,
    deadline: Instant,
    engine: wasmtime::Engine,
    slot: Arc<Mutex<Option<Slot>>>,
    /// Set when a slot was granted again after an epoch yield, and taken by
    /// the epoch callback that runs as the guest resumes (see
    /// [`CallCpu::at_tick`]).
    regranted: Arc<AtomicBool>,
    /// The CPU this call has held slots for, in nanoseconds.
    used: Arc<AtomicU64>,
}

/// What a call does at an epoch check, given its CPU account.
pub(crate) enum Tick {
    /// Run on until the next epoch tick (it holds a slot it was just granted).
    Run,
    /// Give the slot back and queue for one again: the future to await.
    Yield(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>),
}

type Held = Arc<Mutex<Option<Slot>>>;

fn hold(cell: &Held) -> MutexGuard<'_, Option<Slot>> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for a slot until `deadline`; `true` if one was granted (and put in `cell`).
async fn wait_for_slot(
    scheduler: &CpuScheduler,
    tenant: &Arc<str>,
    used: &Arc<AtomicU64>,
    deadline: Instant,
    cell: &Held,
) -> bool {
    let rx = scheduler.acquire_for(tenant, used.clone());
    tokio::select! {
        granted = rx => match granted {
            Ok(slot) => {
                *hold(cell) = Some(slot);
                true
            }
            // The scheduler never drops a sender without sending; treat it
            // as no slot rather than trust it.
            Err(_) => false,
        },
        () = tokio::time::sleep_until(deadline.into()) => false,
    }
}

impl CallCpu {
    /// Waits for a slot before the call runs wasm; `false` when the
    /// deadline passed first (the call must not run).
    pub(crate) async fn enter(&self) -> bool {
        wait_for_slot(
            &self.scheduler,
            &self.tenant,
            &self.used,
            self.deadline,
            &self.slot,
        )
        .await
    }

    /// Gives the slot back (the call is about to await something else than
    /// the CPU, or has ended).
    pub(crate) fn release(&self) {
        drop(hold(&self.slot).take());
    }

    /// After an await off the CPU: queues for a slot again. If the deadline
    /// passes first the guest resumes without one, and the epoch is advanced
    /// so its next check interrupts it.
    pub(crate) async fn resume(&self) {
        if !self.enter().await {
            self.engine.increment_epoch();
        }
    }

    /// At an epoch check before the deadline (the caller interrupts past
    /// it): either the first check after a yield, whose slot was just
    /// granted again, which runs on; or a tick, which returns the future
    /// that first lets this worker run every other task that is ready (and
    /// poll the I/O driver), then gives the slot back and queues for one
    /// again.
    ///
    /// Why the slot is held through the yield, not given back before it:
    /// giving it back grants it to the tenant's next waiting call, whose
    /// wake-up lands in this worker's LIFO slot, which tokio runs before
    /// anything else queued here (up to three in a row). A spinning tenant's
    /// calls then ran slice after slice on one worker while other tenants'
    /// tasks queued behind them waited, unless the other workers were idle
    /// enough to steal them. Held, the slot only keeps the same tenant's
    /// other calls waiting (the tenant is at its cap), which is the point.
    ///
    /// Why the first check after a yield exists at all: wasmtime arms the
    /// next epoch deadline only once the yield's future is done, so the
    /// yield asks for a deadline 0 ticks away, and the guest comes straight
    /// back here when it resumes. That is what makes a call that waited in
    /// the queue past its deadline stop at once (the caller sees the
    /// deadline passed) instead of running a whole tick without a slot.
    pub(crate) fn at_tick(&self) -> Tick {
        if self.regranted.swap(false, Ordering::AcqRel) {
            return Tick::Run;
        }
        let scheduler = self.scheduler.clone();
        let tenant = self.tenant.clone();
        let deadline = self.deadline;
        let cell = self.slot.clone();
        let regranted = self.regranted.clone();
        let used = self.used.clone();
        Tick::Yield(Box::pin(async move {
            // tokio's `yield_now` (not a plain re-wake) resumes the call only
            // once this worker has run out of other ready tasks and polled
            // the I/O driver, so other requests on this worker move first.
            tokio::task::yield_now().await;
            drop(hold(&cell).take());
            if wait_for_slot(&scheduler, &tenant, &used, deadline, &cell).await {
                regranted.store(true, Ordering::Release);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    /// The slot granted to `rx`, if any (never waits).
    fn granted(rx: &mut oneshot::Receiver<Slot>) -> Option<Slot> {
        rx.try_recv().ok()
    }

    #[test]
    fn free_slots_are_granted_at_once_up_to_the_tenant_cap() {
        let s = CpuScheduler::new(3, 2);
        let a = t("a");
        let mut r1 = s.acquire(&a);
        let mut r2 = s.acquire(&a);
        let mut r3 = s.acquire(&a);
        let one = granted(&mut r1).expect("a free slot");
        let _two = granted(&mut r2).expect("a free slot");
        // The third slot is free, but A is at its cap of 2.
        assert!(granted(&mut r3).is_none());
        assert_eq!((s.running(), s.waiting()), (2, 1));
        // B gets the free slot A may not take.
        let mut b = s.acquire(&t("b"));
        assert!(granted(&mut b).is_some());
        // When A gives one back, its waiting call gets it.
        drop(one);
        assert!(granted(&mut r3).is_some());
    }

    #[test]
    fn a_tenant_is_heavy_from_its_first_call_past_the_mark_until_it_expires() {
        let s = CpuScheduler::new(2, 1);
        let (a, b) = (t("a"), t("b"));
        // B makes many short calls, each a call of its own: never heavy.
        for _ in 0..10 {
            let mut rb = s.acquire(&b);
            granted(&mut rb)
                .expect("free")
                .release_charging(HEAVY_CALL / 2);
        }
        assert!(!s.is_heavy(&b));
        // One call of A holds slots for three slices: heavy once the sum of
        // its slices reaches the mark, not before.
        let call = Arc::<AtomicU64>::default();
        let slice = HEAVY_CALL / 3 + Duration::from_micros(1);
        for turn in 1..=3 {
            assert!(!s.is_heavy(&a), "heavy after {} slices", turn - 1);
            let mut ra = s.acquire_for(&a, call.clone());
            granted(&mut ra).expect("free").release_charging(slice);
        }
        let marked = Instant::now();
        assert!(s.is_heavy(&a));
        // A went idle (nothing running or waiting): still heavy.
        assert_eq!(s.vtime(&a), None);
        assert!(s.is_heavy_at(&a, marked + HEAVY_FOR - Duration::from_secs(1)));
        // The mark expires, and is forgotten.
        assert!(!s.is_heavy_at(&a, marked + HEAVY_FOR + Duration::from_secs(1)));
        assert!(!s.is_heavy(&a));
        assert!(!s.is_heavy(&b));
    }

    #[test]
    fn the_least_used_tenant_goes_first() {
        let s = CpuScheduler::new(1, 1);
        let (a, b, c) = (t("a"), t("b"), t("c"));
        let mut ra = s.acquire(&a);
        let slot = granted(&mut ra).expect("free");
        // A spins: at each tick it gives its slot back and queues again.
        // While A holds it, B and then C queue.
        let mut rb = s.acquire(&b);
        let mut rc = s.acquire(&c);
        let mut ra2 = s.acquire(&a);
        slot.release_charging(Duration::from_millis(5));
        // A used 5 ms, B and C nothing: B (queued first) goes.
        let slot = granted(&mut rb).expect("B is least used and first");
        assert!(granted(&mut rc).is_none() && granted(&mut ra2).is_none());
        slot.release_charging(Duration::from_millis(1));
        // B has gone idle (it used 1 ms); C has used nothing: C.
        let slot = granted(&mut rc).expect("C is least used");
        slot.release_charging(Duration::from_millis(1));
        // Only A waits.
        let slot = granted(&mut ra2).expect("A at last");
        assert_eq!(s.vtime(&a), Some(5_000_000));
        drop(slot);
    }

    #[test]
    fn a_busy_tenant_waits_behind_a_lighter_one_on_every_turn() {
        let s = CpuScheduler::new(1, 1);
        let (a, b) = (t("a"), t("b"));
        let mut ra = s.acquire(&a);
        let mut held = granted(&mut ra).expect("free");
        let mut order = Vec::new();
        // Both keep one call queued at all times: A charges 5 ms a turn, B 1 ms.
        let mut qa = None;
        let mut qb = Some(s.acquire(&b));
        let mut holder = "a";
        for _ in 0..12 {
            if holder == "a" {
                qa = Some(s.acquire(&a));
            } else {
                qb = Some(s.acquire(&b));
            }
            let cost = if holder == "a" { 5 } else { 1 };
            held.release_charging(Duration::from_millis(cost));
            if let Some(slot) = qb.as_mut().and_then(granted) {
                holder = "b";
                held = slot;
            } else if let Some(slot) = qa.as_mut().and_then(granted) {
                holder = "a";
                held = slot;
            } else {
                panic!("the slot was given to nobody");
            }
            order.push(holder);
        }
        // B runs five 1 ms turns for each 5 ms turn of A: equal CPU time.
        let b_turns = order.iter().filter(|h| **h == "b").count();
        assert_eq!(b_turns, 10, "{order:?}");
    }

    #[test]
    fn an_idle_tenant_comes_back_at_the_clock_without_credit() {
        let s = CpuScheduler::new(1, 1);
        let (a, b) = (t("a"), t("b"));
        for _ in 0..3 {
            let mut r = s.acquire(&a);
            granted(&mut r)
                .expect("free")
                .release_charging(Duration::from_millis(5));
        }
        // A went idle after each call: it starts at the clock every time.
        assert_eq!(s.vtime(&a), None);
        let mut ra = s.acquire(&a);
        let slot = granted(&mut ra).expect("free");
        let mut rb = s.acquire(&b);
        // B arrives after a long idle, at the clock (A's last start): not below it.
        assert_eq!(s.vtime(&b), s.vtime(&a));
        slot.release_charging(Duration::from_millis(5));
        assert!(granted(&mut rb).is_some());
    }

    #[test]
    fn a_withdrawn_waiter_is_skipped_and_a_slot_sent_to_a_gone_call_comes_back() {
        let s = CpuScheduler::new(1, 1);
        let mut r = s.acquire(&t("a"));
        let slot = granted(&mut r).expect("free");
        let gone = s.acquire(&t("b"));
        let mut next = s.acquire(&t("c"));
        drop(gone);
        drop(slot);
        assert!(granted(&mut next).is_some(), "B withdrew: C gets the slot");
        assert_eq!(s.waiting(), 0);

        // A grant in flight to a call dropped right after: the slot returns.
        let s = CpuScheduler::new(1, 1);
        let r = s.acquire(&t("a"));
        assert_eq!(s.running(), 1);
        drop(r);
        assert_eq!(s.running(), 0);
        let mut again = s.acquire(&t("a"));
        assert!(granted(&mut again).is_some());
    }

    #[tokio::test]
    async fn a_call_waiting_past_its_deadline_gives_up_and_holds_nothing() {
        let s = CpuScheduler::new(1, 1);
        let mut r = s.acquire(&t("a"));
        let _busy = granted(&mut r).expect("free");
        let engine = wasmtime::Engine::default();
        let late = s.call(t("b"), Instant::now(), engine);
        assert!(!late.enter().await);
        assert_eq!((s.running(), s.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn a_tick_lets_the_ready_tasks_run_before_it_gives_the_slot_back() {
        let s = CpuScheduler::new(1, 1);
        let engine = wasmtime::Engine::default();
        let call = s.call(t("a"), Instant::now() + Duration::from_secs(60), engine);
        assert!(call.enter().await);
        let mut rb = s.acquire(&t("b"));
        let Tick::Yield(queued) = call.at_tick() else {
            panic!("a tick must yield")
        };
        let queued = tokio::spawn(queued);
        // Ready when the tick's future first runs: it runs before A's slot
        // goes back (to B, the least used), not after.
        let ready = tokio::spawn(async move { (granted(&mut rb), rb) });
        let (early, rb) = ready.await.expect("the ready task");
        assert!(
            early.is_none(),
            "the slot went back before the ready task ran"
        );
        // Then the slot goes to B, and A queues behind it.
        let b = rb.await.expect("B is granted the slot");
        assert!(!queued.is_finished());
        drop(b);
        queued.await.expect("A is granted it again");
        assert_eq!((s.running(), s.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn after_a_yield_only_a_regranted_call_runs_on() {
        let s = CpuScheduler::new(1, 1);
        let engine = wasmtime::Engine::default();
        let call = s.call(
            t("a"),
            Instant::now() + Duration::from_secs(60),
            engine.clone(),
        );
        assert!(call.enter().await);
        // A tick: the slot is held through the yield, then goes back and
        // comes back (nobody else waits).
        let Tick::Yield(queued) = call.at_tick() else {
            panic!("a tick must yield")
        };
        assert_eq!(s.running(), 1);
        queued.await;
        assert_eq!(s.running(), 1);
        // The check as the guest resumes runs on; the next tick yields again.
        assert!(matches!(call.at_tick(), Tick::Run));
        assert!(matches!(call.at_tick(), Tick::Yield(_)));

        // A call that queued past its deadline is not told to run on: its
        // resume check sees the deadline and interrupts (the callback's job).
        let s = CpuScheduler::new(1, 1);
        let mut r = s.acquire(&t("hog"));
        let _hog = granted(&mut r).expect("free");
        let late = s.call(t("a"), Instant::now() + Duration::from_millis(20), engine);
        let Tick::Yield(queued) = late.at_tick() else {
            panic!("a tick must yield")
        };
        queued.await;
        assert!(matches!(late.at_tick(), Tick::Yield(_)));
        assert_eq!((s.running(), s.waiting()), (1, 0));
    }
}
