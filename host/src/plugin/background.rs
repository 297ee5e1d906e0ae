//! Where a heavy tenant's plugin calls run: [`Background`], threads of
//! their own at a low operating-system priority (`engine.heavy_priority`).
//!
//! Why: the fair CPU scheduler ([`super::fair`]) shares *plugin* CPU
//! between tenants, but a request also costs CPU outside the plugin (TLS,
//! HTTP, decoding, the store, encoding), on the connection threads. A
//! tenant whose plugin spins held its slot's core, and the other tenants'
//! protocol work shared what was left: end to end a light tenant kept about
//! 0.6 of its throughput beside a spinning one (bench/README.md). A tenant
//! whose calls use a lot of CPU ([`super::fair::HEAVY_CALL`]) is marked
//! heavy for a while, and its calls run here, where the kernel gives them
//! only the CPU that the connection threads and the light tenants' calls
//! leave. Light tenants' calls still run in place on the connection threads,
//! with no hand-off.
//!
//! Invariants:
//! - **`threads` threads, named `hookbox-heavy`**, one per CPU slot: a
//!   heavy call still holds a slot of the fair scheduler while it runs, so
//!   heavy tenants share these threads as fairly as before and never hold
//!   more slots than their caps.
//! - **A deadline the caller keeps**: at the lowest priority a call may get
//!   no CPU at all while the machine is saturated; [`Background::run`]
//!   gives up at the deadline it is given, on the caller's thread, and the
//!   call is aborted. So a heavy tenant's request is answered at its
//!   deadline however starved its call is.
//! - **Cancellation carries over**: dropping the future of
//!   [`Background::run`] (a client gone) aborts the call here at its next
//!   await or epoch yield, and drops its store and instance on this runtime.
//! - **A panic stays a panic**: a call that panics here (a hookbox bug;
//!   guest faults are traps) panics the caller's task, as it would in place.
//! - **A priority that cannot be set is a warning, not an error**: where the
//!   kernel refuses it (a seccomp profile, another OS), the threads run at
//!   the process's priority and the calls are still isolated from the
//!   connection threads' queues.
//! - **Dropped without blocking**: the runtime shuts down in the background,
//!   so an engine may be dropped inside async code.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Deserialize;
use tokio_util::task::AbortOnDropHandle;

/// The operating-system priority of heavy tenants' plugin calls
/// (`engine.heavy_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeavyPriority {
    /// Linux `SCHED_IDLE`: the CPU nobody else wants, and any other thread
    /// that wakes takes the core at once. The default: what keeps a light
    /// tenant's throughput and tail beside a spinning one.
    #[default]
    Idle,
    /// Nice 19: the lowest ordinary priority; a small share (about 1/70 of a
    /// contended core) even on a saturated machine, but a thread that wakes
    /// may wait for the heavy call's time slice to end.
    Lowest,
    /// No background threads: heavy calls run on the connection threads
    /// like every other call, and the CPU splits evenly between a heavy and
    /// a light tenant.
    Normal,
}

impl HeavyPriority {
    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HeavyPriority::Idle => "idle",
            HeavyPriority::Lowest => "lowest",
            HeavyPriority::Normal => "normal",
        }
    }
}

/// The threads heavy tenants' calls run on; see the module docs.
pub(crate) struct Background {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// Calls started here so far.
    calls: AtomicU64,
}

/// Whether a thread's priority could not be set (warned about once).
static PRIORITY_REFUSED: AtomicBool = AtomicBool::new(false);

impl Background {
    /// `threads` threads (at least 1) at `priority`; `None` for
    /// [`HeavyPriority::Normal`].
    pub(crate) fn new(
        threads: u32,
        priority: HeavyPriority,
    ) -> std::io::Result<Option<Background>> {
        if priority == HeavyPriority::Normal {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1) as usize)
            .thread_name("hookbox-heavy")
            // Time for deadlines and slot waits; I/O for host calls that
            // reach the network (the claim store, the directory).
            .enable_all()
            .on_thread_start(move || {
                if let Err(e) = lower_this_thread(priority)
                    && !PRIORITY_REFUSED.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        error = %e,
                        priority = priority.as_str(),
                        "cannot lower the priority of heavy plugin calls; they run at the process's"
                    );
                }
            })
            .build()?;
        Ok(Some(Background {
            runtime: Some(runtime),
            calls: AtomicU64::new(0),
        }))
    }

    /// Runs `call` here and waits for its output until `deadline`: `None`
    /// if it had not finished by then (it is aborted). Dropping the returned
    /// future aborts the call too.
    pub(crate) async fn run<F>(&self, deadline: Instant, call: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Some(runtime) = &self.runtime else {
            // Unreachable: `runtime` is taken only in `drop`.
            return tokio::time::timeout_at(deadline.into(), call).await.ok();
        };
        let handle = AbortOnDropHandle::new(runtime.spawn(call));
        match tokio::time::timeout_at(deadline.into(), handle).await {
            Err(_) => None,
            Ok(Ok(output)) => Some(output),
            Ok(Err(e)) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only this future's drop aborts the task, and the runtime
                // shuts down only when dropped, after this returns.
                Err(e) => panic!("heavy plugin call cancelled under its caller: {e}"),
            },
        }
    }
}

impl Background {
    /// Calls started here so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // A blocking shutdown would panic inside async code; calls still
            // running are dropped at their next await.
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's scheduling priority. Lowering is always
/// allowed to an unprivileged process (raising it back would not be, which
/// is why heavy calls get threads of their own rather than lowering a
/// connection thread for the length of a call).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_this_thread(priority: HeavyPriority) -> std::io::Result<()> {
    let rc = match priority {
        HeavyPriority::Normal => 0,
        HeavyPriority::Idle => {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` is a valid
            // sched_param that outlives the call.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
        }
        HeavyPriority::Lowest => {
            // SAFETY: plain syscalls on the calling thread's own id
            // (Linux's nice is per thread).
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread(priority: HeavyPriority) -> std::io::Result<()> {
    match priority {
        HeavyPriority::Normal => Ok(()),
        _ => Err(std::io::Error::other(
            "thread priorities are set on Linux only",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// The calling thread's scheduling policy and nice value.
    #[allow(unsafe_code)]
    fn policy_and_nice() -> (i32, i32) {
        // SAFETY: queries about the calling thread only.
        unsafe {
            (
                libc::sched_getscheduler(0),
                libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
            )
        }
    }

    /// Background threads at `priority` (not `Normal`).
    fn threads(n: u32, priority: HeavyPriority) -> Background {
        Background::new(n, priority)
            .expect("threads start")
            .expect("a priority with threads")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn calls_run_on_threads_of_their_own_at_the_priority_asked() {
        let caller = (std::thread::current().id(), policy_and_nice());
        for (priority, expected) in [
            (HeavyPriority::Idle, (libc::SCHED_IDLE, caller.1.1)),
            (HeavyPriority::Lowest, (libc::SCHED_OTHER, 19)),
        ] {
            let background = threads(2, priority);
            let (id, name, got) = background
                .run(far(), async {
                    let t = std::thread::current();
                    (t.id(), t.name().map(str::to_owned), policy_and_nice())
                })
                .await
                .expect("done before the deadline");
            assert_ne!(id, caller.0);
            assert_eq!(name.as_deref(), Some("hookbox-heavy"));
            assert_eq!(got, expected, "{priority:?}");
            // The caller's own thread was left as it was.
            assert_eq!(policy_and_nice(), caller.1);
        }
        assert!(
            Background::new(2, HeavyPriority::Normal)
                .expect("nothing to start")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_call_still_running_at_the_deadline_is_given_up_and_dropped() {
        let background = threads(1, HeavyPriority::Idle);
        let (dropped_tx, dropped) = oneshot::channel();
        let started = Instant::now();
        let out = background
            .run(Instant::now() + Duration::from_millis(50), async move {
                let _state = Dropped(Some(dropped_tx));
                std::future::pending::<()>().await;
            })
            .await;
        assert!(out.is_none());
        assert!(started.elapsed() >= Duration::from_millis(50));
        tokio::time::timeout(Duration::from_secs(30), dropped)
            .await
            .expect("the call was dropped")
            .expect("its state was dropped, not leaked");
    }

    /// Sends on drop: tells the test the call's state was dropped.
    struct Dropped(Option<oneshot::Sender<()>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    #[tokio::test]
    async fn dropping_the_caller_drops_the_call() {
        let background = Arc::new(threads(1, HeavyPriority::Idle));
        let (started_tx, started) = oneshot::channel();
        let (dropped_tx, dropped) = oneshot::channel();
        let caller = tokio::spawn({
            let background = background.clone();
            async move {
                background
                    .run(far(), async move {
                        let _state = Dropped(Some(dropped_tx));
                        let _ = started_tx.send(());
                        std::future::pending::<()>().await;
                    })
                    .await
            }
        });
        started.await.expect("the call started");
        caller.abort();
        tokio::time::timeout(Duration::from_secs(30), dropped)
            .await
            .expect("the call was dropped")
            .expect("its state was dropped, not leaked");
    }

    #[tokio::test]
    async fn a_panic_there_is_the_callers_panic() {
        let background = Arc::new(threads(1, HeavyPriority::Idle));
        let caller = tokio::spawn({
            let background = background.clone();
            async move { background.run(far(), async { panic!("a host bug") }).await }
        });
        assert!(caller.await.expect_err("the caller panicked").is_panic());
        // The threads are still there for the next call.
        assert_eq!(background.run(far(), async { 7 }).await, Some(7));
    }
}
