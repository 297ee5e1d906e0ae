//! The request pipeline: one authenticated request body through a tenant's
//! binding to Okta's answer. One function, [`handle`], for every caller: the
//! server's import endpoint, a reload's smoke requests and `hookbox run`.
//!
//! decode → validate → take a concurrency permit → invoke the backend →
//! encode. Invariants:
//! - a body that does not decode never reaches the plugin ([`Refused::BadRequest`]);
//! - overload is decided here and returned as a value ([`Refused::Overloaded`]):
//!   the tenant's permits are all taken, or every instance slot of the
//!   engine is; either way the plugin did not run and Okta should retry;
//! - anything the plugin does (answer, decline, trap, limit, an answer that
//!   breaks Okta's rules) is an answer: a body for a 200, its [`Verdict`], and
//!   what it cost ([`Figures`]);
//! - the permit is held until the answer is encoded;
//! - nothing is logged here except the event id on the current span: the
//!   caller decides what to log ([`Handled::trace`] for the server's log).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use tracing::Span;

use crate::error::HttpError;
use crate::hook::decode::{self, DecodeError};
use crate::hook::encode;
use crate::log::{Admit, LogBudget};
use crate::plugin::hookbox::okta_import::host::Level;
use crate::plugin::{Binding, Failure, Outcome, Overloaded, PluginLog, Runtime};

/// Why a request did not reach the plugin.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The body is not a valid import request; names the field path.
    #[error("{0}")]
    BadRequest(DecodeError),
    /// Beyond the tenant's concurrency share, or no free instance slot.
    #[error("no free permit or instance slot")]
    Overloaded,
}

impl From<Overloaded> for Refused {
    fn from(_: Overloaded) -> Refused {
        Refused::Overloaded
    }
}

impl From<Refused> for HttpError {
    fn from(refused: Refused) -> HttpError {
        match refused {
            Refused::BadRequest(e) => HttpError::BadRequest(e.to_string()),
            Refused::Overloaded => HttpError::Overloaded,
        }
    }
}

/// How the plugin's part ended, once encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Okta gets commands (possibly none).
    Answered {
        /// How many.
        commands: usize,
    },
    /// The plugin declined, with this summary for Okta.
    Declined(String),
    /// The plugin failed, or its answer broke Okta's rules: Okta gets the
    /// failure's fixed summary.
    Failed(Failure),
}

impl Verdict {
    /// A short machine-readable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Answered { commands: 0 } => "no_commands",
            Verdict::Answered { .. } => "commands",
            Verdict::Declined(_) => "plugin_error",
            Verdict::Failed(f) => f.kind(),
        }
    }
}

/// What one invocation cost.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Instantiation (unless warm) and call.
    pub elapsed: Duration,
    /// Fuel consumed, when the engine meters fuel.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the plugin grew to, in bytes.
    pub peak_memory: usize,
}

/// A request the plugin answered (in whatever way).
#[derive(Debug)]
pub struct Handled {
    /// Okta's answer, for a 200.
    pub body: Vec<u8>,
    /// How the plugin's part ended.
    pub verdict: Verdict,
    /// What it cost.
    pub figures: Figures,
    /// What the plugin logged.
    pub log: PluginLog,
}

/// Runs one authenticated request body through `binding`; see the module docs.
pub async fn handle(
    runtime: &Runtime,
    binding: &Binding<'_>,
    body: &[u8],
) -> Result<Handled, Refused> {
    let request = decode::decode(body).map_err(Refused::BadRequest)?;
    Span::current().record(
        "event_id",
        crate::log::client_text(&request.event_id, crate::log::MAX_CLIENT_TEXT).as_ref(),
    );

    // Held until the answer is encoded; beyond the tenant's share, Okta's one retry is the remedy.
    let _permit = binding
        .permits
        .try_acquire()
        .map_err(|_| Refused::Overloaded)?;
    let invocation = binding.invoke(runtime, &request).await?;

    let (body, failure) = encode::respond(&invocation.result, binding.plugin.short_digest());
    let verdict = match (failure, invocation.result) {
        (Some(failure), _) | (None, Err(failure)) => Verdict::Failed(failure),
        (None, Ok(Outcome::Response(r))) => Verdict::Answered {
            commands: r.commands.len(),
        },
        (None, Ok(Outcome::Declined(summary))) => Verdict::Declined(summary),
    };
    Ok(Handled {
        body,
        verdict,
        figures: Figures {
            elapsed: invocation.elapsed,
            fuel_consumed: invocation.fuel_consumed,
            peak_memory: invocation.peak_memory,
        },
        log: invocation.log,
    })
}

impl Handled {
    /// Logs what the plugin logged (inside the request's span, so its lines
    /// carry the tenant and event id) within the tenant's `budget`, its
    /// failure if any, and its figures. Never a profile value: the plugin's
    /// own lines are its responsibility.
    pub fn trace(&self, budget: &LogBudget) {
        if let Some(dropped) = budget.roll(Instant::now()) {
            tracing::warn!(
                target: "hookbox::plugin",
                dropped_lines = dropped.lines,
                dropped_bytes = dropped.bytes,
                window_s = budget.window().as_secs_f64(),
                "plugin log over its volume: lines were dropped in the last window"
            );
        }
        let mut admit = |bytes: usize| match budget.admit(bytes) {
            Admit::Log => true,
            Admit::DropFirst => {
                tracing::warn!(
                    target: "hookbox::plugin",
                    log_volume = budget.volume(),
                    window_s = budget.window().as_secs_f64(),
                    "plugin log over its volume: dropping its lines until the window ends"
                );
                false
            }
            Admit::Drop => false,
        };
        for line in &self.log.lines {
            let m = inert(&line.message);
            // Only lines the filter lets through count against the budget.
            let enabled = match line.level {
                Level::Trace => tracing::enabled!(target: "hookbox::plugin", tracing::Level::TRACE),
                Level::Debug => tracing::enabled!(target: "hookbox::plugin", tracing::Level::DEBUG),
                Level::Info => tracing::enabled!(target: "hookbox::plugin", tracing::Level::INFO),
                Level::Warn => tracing::enabled!(target: "hookbox::plugin", tracing::Level::WARN),
                Level::Error => tracing::enabled!(target: "hookbox::plugin", tracing::Level::ERROR),
            };
            if !enabled || !admit(m.len()) {
                continue;
            }
            match line.level {
                Level::Trace => tracing::trace!(target: "hookbox::plugin", "{m}"),
                Level::Debug => tracing::debug!(target: "hookbox::plugin", "{m}"),
                Level::Info => tracing::info!(target: "hookbox::plugin", "{m}"),
                Level::Warn => tracing::warn!(target: "hookbox::plugin", "{m}"),
                Level::Error => tracing::error!(target: "hookbox::plugin", "{m}"),
            }
        }
        if self.log.dropped > 0 && admit(0) {
            tracing::warn!(target: "hookbox::plugin", dropped = self.log.dropped, "plugin log lines over the per-request cap were dropped");
        }
        if let Verdict::Failed(failure) = &self.verdict {
            tracing::warn!(
                failure = failure.kind(),
                detail = failure.detail(),
                "plugin failed"
            );
        }
        tracing::debug!(
            plugin_us = self.figures.elapsed.as_micros() as u64,
            peak_memory = self.figures.peak_memory,
            fuel = self.figures.fuel_consumed,
            "plugin ran"
        );
    }
}

/// A plugin's line with its control characters (newlines included) shown
/// as `?`: one plugin line is one log line, whatever the plugin wrote.
fn inert(message: &str) -> Cow<'_, str> {
    if message.chars().any(char::is_control) {
        Cow::Owned(
            message
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(message)
    }
}
