//! The drain on SIGTERM or SIGINT (Ctrl-C), in three phases:
//!
//! 1. **At the first signal**, `/readyz` fails at once (on both listeners)
//!    and `hookbox_draining` turns 1, but both listeners keep accepting and
//!    serving as before, for `[server] shutdown_delay`: the time load
//!    balancers, kube-proxy and Services take to stop sending new traffic.
//! 2. **Then** the listeners stop accepting ([`Drain::stopped`] resolves),
//!    and requests in flight get `[server] shutdown_grace` to finish
//!    (`crate::server`); keep-alive connections close after their current
//!    request.
//! 3. **Then** the process exits 0, whether or not every connection closed.
//!
//! A **second** signal during any phase exits at once with 128 + the
//! signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a
//! process killed by that signal: requests in flight are cut, and the
//! nonzero status says so to whoever is watching. Acknowledged event-hook
//! work lives in the claim store's durable queue, never only in memory, so
//! even this exit drops none of it.
//!
//! A signal that arrives while plugins are still loading drains the same
//! way (the ops listener serves `/readyz` = 503 meanwhile); the main
//! listener is then never opened.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::App;

/// Exit status after a second signal: 128 + the signal's number.
pub const fn exit_code_after(signal: Signal) -> u8 {
    match signal {
        Signal::Interrupt => 128 + 2,
        Signal::Terminate => 128 + 15,
    }
}

/// The signals that drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (Kubernetes, systemd, `docker stop`).
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// The drain of one process; see the module docs.
pub struct Drain {
    stop: watch::Receiver<bool>,
}

impl Drain {
    /// Listens for SIGTERM and SIGINT from now on and drains `app` when one
    /// comes, waiting `delay` before the listeners stop. Must be called
    /// inside a tokio runtime.
    pub fn on_signals(app: Arc<App>, delay: Duration) -> std::io::Result<Drain> {
        let mut signals = Signals::new()?;
        let (tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            let first = signals.next().await;
            tracing::info!(
                signal = first.name(),
                delay_ms = delay.as_millis() as u64,
                "draining: /readyz fails from now on; still serving until shutdown_delay is over"
            );
            app.readiness().drain();
            app.metrics().draining();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                second = signals.next() => exit_now(second),
            }
            let _ = tx.send(true);
            exit_now(signals.next().await);
        });
        Ok(Drain { stop })
    }

    /// Resolves once the listeners must stop accepting (never, without a signal).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            // An error means the drain task is gone (the runtime is shutting down): stop too.
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    /// Whether the listeners have been told to stop.
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

fn exit_now(signal: Signal) -> ! {
    tracing::warn!(
        signal = signal.name(),
        "second signal: exiting now, requests in flight are cut"
    );
    std::process::exit(i32::from(exit_code_after(signal)));
}

/// SIGTERM and SIGINT as one stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Interrupt,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}
