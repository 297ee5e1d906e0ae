//! Where plugin calls run: [`Executor`], a tokio runtime of its own, apart
//! from the threads that serve connections.
//!
//! Why a second runtime: wasm is CPU-bound and runs a whole epoch tick
//! (`EPOCH_TICK`, 5 ms) between checks. On the connection threads, every
//! task queued behind a tick of a spinning plugin (another tenant's TLS
//! records, headers, answers) waited for it; here, the connection threads
//! only decode, authenticate and encode, and hand each plugin call over. The
//! operating system then shares the cores between the two kinds of thread,
//! and the connection threads never wait for a tick.
//!
//! Invariants:
//! - **Every wasm instruction of a request or an event runs here**, on one of
//!   `engine.cpu_slots` threads named `hookbox-wasm`: one per CPU slot of the
//!   fair scheduler ([`super::fair`]), which decides whose call runs when;
//!   more threads would find no slot, fewer would leave slots unused.
//! - **Cancellation carries over**: dropping the future of [`Executor::run`]
//!   (a client gone, a request past its server-side deadline) aborts the
//!   call on this runtime at its next await or epoch yield, and drops its
//!   store and instance there, exactly as if it had run in place.
//! - **A panic stays a panic**: a call that panics here (a hookbox bug, never
//!   a plugin's doing: guest faults are traps) panics the caller's task, as
//!   it would have in place.
//! - **Dropped without blocking**: the runtime is shut down in the
//!   background when the last handle goes, so a [`super::Runtime`] may be
//!   dropped inside async code (tests, `hookbox run`).

use std::future::Future;

use tokio_util::task::AbortOnDropHandle;

/// The runtime plugin calls run on; see the module docs.
pub(super) struct Executor {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Executor {
    /// `threads` worker threads (at least 1), named `hookbox-wasm`.
    pub(super) fn new(threads: u32) -> std::io::Result<Executor> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1) as usize)
            .thread_name("hookbox-wasm")
            // Time for deadlines and slot waits; I/O for host calls that
            // reach the network (the claim store, the directory).
            .enable_all()
            .build()?;
        Ok(Executor {
            runtime: Some(runtime),
        })
    }

    /// Runs `call` on this runtime and waits for its output; dropping the
    /// returned future aborts the call.
    pub(super) async fn run<F>(&self, call: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            // Unreachable: `runtime` is taken only in `drop`.
            return call.await;
        };
        match AbortOnDropHandle::new(runtime.spawn(call)).await {
            Ok(output) => output,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled: only this future's drop aborts the task, and
                // the runtime shuts down only when dropped, after this returns.
                Err(e) => panic!("plugin call cancelled under its caller: {e}"),
            },
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Blocking shutdown would panic inside async code; calls still
            // running are dropped at their next await.
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn calls_run_on_the_plugin_threads_not_the_callers() {
        let executor = Executor::new(2).expect("threads start");
        let caller = std::thread::current().id();
        let (id, name) = executor
            .run(async {
                let t = std::thread::current();
                (t.id(), t.name().map(str::to_owned))
            })
            .await;
        assert_ne!(id, caller);
        assert_eq!(name.as_deref(), Some("hookbox-wasm"));
        // Dropped here, inside async code: must not panic.
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
    async fn dropping_the_caller_drops_the_call_on_the_plugin_thread() {
        let executor = Arc::new(Executor::new(1).expect("threads start"));
        let (started_tx, started) = oneshot::channel();
        let (dropped_tx, dropped) = oneshot::channel();
        let caller = tokio::spawn({
            let executor = executor.clone();
            async move {
                executor
                    .run(async move {
                        let _state = Dropped(Some(dropped_tx));
                        let _ = started_tx.send(());
                        std::future::pending::<()>().await;
                    })
                    .await
            }
        });
        started.await.expect("the call started");
        caller.abort();
        // Without the abort the call would be pending forever.
        tokio::time::timeout(Duration::from_secs(30), dropped)
            .await
            .expect("the call was dropped")
            .expect("its state was dropped, not leaked");
    }

    #[tokio::test]
    async fn a_panic_on_the_plugin_thread_is_the_callers_panic() {
        let executor = Arc::new(Executor::new(1).expect("threads start"));
        let caller = tokio::spawn({
            let executor = executor.clone();
            async move { executor.run(async { panic!("a host bug") }).await }
        });
        let e = caller.await.expect_err("the caller panicked");
        assert!(e.is_panic());
        // The plugin threads are still there for the next call.
        assert_eq!(executor.run(async { 7 }).await, 7);
    }
}
