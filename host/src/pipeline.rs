//! The request pipeline: one authenticated request body through a tenant's
//! binding to Okta's answer. One function, [`handle`], for every caller: the
//! server's import endpoint, a reload's smoke requests and `hookbox run`.
//!
//! decode → validate → recall → take a concurrency permit → invoke the
//! backend → encode → remember. Invariants:
//! - a body that does not decode never reaches the plugin ([`Refused::BadRequest`]);
//! - **idempotent answers**: the answer to `(tenant, eventId)` is kept in the
//!   claim store for `[store] answer_ttl` (default 10 minutes). A request
//!   whose `eventId` has a live answer stored for the same body (SHA-256 of
//!   the bytes) gets those bytes back, byte for byte, without running the
//!   plugin, even if the plugin was swapped since ([`Verdict::Replayed`]).
//!   The same `eventId` with a different body is not a retry: it runs
//!   normally, its answer is not stored (the first one stays), and it is
//!   flagged ([`Handled::event_id_reused`]) for a warning. Only answers
//!   ([`Verdict::Answered`], with or without commands) are stored: a
//!   decline or a failure may be transient, so a retry runs the plugin
//!   again. When a racing request stored its answer first, this request
//!   answers with the stored bytes, so every request of one event answers
//!   the same. Store errors here never fail a request (it runs, or answers,
//!   without idempotency, and says so in [`Handled::store_errors`]); each of
//!   the two store calls is bounded by [`store_budget`];
//! - overload is decided here and returned as a value ([`Refused::Overloaded`]):
//!   the tenant's permits are all taken, or every instance slot of the
//!   engine is; either way the plugin did not run and Okta should retry;
//! - anything the plugin does (answer, decline, trap, limit, an answer that
//!   breaks Okta's rules) is an answer: a body for a 200, its [`Verdict`], and
//!   what it cost ([`Figures`]);
//! - the permit is held until the answer is encoded;
//! - nothing is logged here except the event id on the current span: the
//!   caller decides what to log ([`Handled::trace`] for the server's log).

use std::time::{Duration, Instant};

use hookbox_store::Remembered;
use sha2::{Digest, Sha256};
use tracing::Span;

use crate::error::HttpError;
use crate::hook::decode::{self, DecodeError};
use crate::hook::encode;
use crate::log::LogBudget;
use crate::plugin::{Binding, Failure, Outcome, Overloaded, PluginLog};

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
    /// A retry (same `eventId`, same body): the stored answer was sent again,
    /// and the plugin did not run.
    Replayed,
}

impl Verdict {
    /// A short machine-readable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Answered { commands: 0 } => "no_commands",
            Verdict::Answered { .. } => "commands",
            Verdict::Declined(_) => "plugin_error",
            Verdict::Failed(f) => f.kind(),
            Verdict::Replayed => "replay",
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
    /// Claim-store calls the plugin made, and calls the per-request cap refused.
    pub store_calls: (u32, u32),
}

impl Figures {
    const NONE: Figures = Figures {
        elapsed: Duration::ZERO,
        fuel_consumed: None,
        peak_memory: 0,
        store_calls: (0, 0),
    };
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
    /// The `eventId` already had an answer, for another body: this one ran
    /// and was not stored.
    pub event_id_reused: bool,
    /// The body is the answer a racing request of the same event stored
    /// first, not the one this request's plugin run produced.
    pub raced: bool,
    /// Idempotency store calls that failed (`recall`, `remember`): the
    /// operation, the error's kind and its text (for the log: it names the
    /// cause, such as a full disk, and never a profile value); the request
    /// was answered regardless.
    pub store_errors: Vec<(&'static str, &'static str, String)>,
}

/// How long each idempotency store call (`recall`, `remember`) may take: a
/// quarter of the plugin's deadline, at most 250 ms, so a slow or stopped
/// store adds at most half a deadline to a request (and never more than
/// 500 ms) and the answer still reaches Okta within its 3 s.
pub fn store_budget(deadline: Duration) -> Duration {
    (deadline / 4).min(Duration::from_millis(250))
}

/// Runs one authenticated request body through `binding`; see the module docs.
pub async fn handle(binding: &Binding<'_>, body: &[u8]) -> Result<Handled, Refused> {
    let request = decode::decode(body).map_err(Refused::BadRequest)?;
    Span::current().record(
        "event_id",
        crate::log::client_text(&request.event_id, crate::log::MAX_CLIENT_TEXT).as_ref(),
    );
    let scope = &binding.scope;
    let (store, tenant) = (scope.store(), scope.tenant());
    let budget = store_budget(binding.limits.deadline);
    let digest: [u8; 32] = Sha256::digest(body).into();
    let mut store_errors = Vec::new();

    // A retry is answered before taking a permit: it costs no plugin run.
    let mut event_id_reused = false;
    match scope
        .call("recall", budget, store.recall(tenant, &request.event_id))
        .await
    {
        Ok(Some(stored)) if stored.request_digest == digest => {
            return Ok(Handled::replay(stored.body, store_errors));
        }
        Ok(Some(_)) => event_id_reused = true,
        Ok(None) => {}
        Err(e) => store_errors.push(("recall", e.kind(), e.to_string())),
    }

    // Held until the answer is encoded; beyond the tenant's share, Okta's one retry is the remedy.
    let _permit = binding
        .permits
        .try_acquire()
        .map_err(|_| Refused::Overloaded)?;
    let invocation = binding.invoke(&request).await?;

    let (mut body, failure) = encode::respond(&invocation.result, binding.plugin.short_digest());
    let verdict = match (failure, invocation.result) {
        (Some(failure), _) | (None, Err(failure)) => Verdict::Failed(failure),
        (None, Ok(Outcome::Response(r))) => Verdict::Answered {
            commands: r.commands.len(),
        },
        (None, Ok(Outcome::Declined(summary))) => Verdict::Declined(summary),
    };

    let mut raced = false;
    if matches!(verdict, Verdict::Answered { .. }) && !event_id_reused {
        let started = Instant::now();
        let remembered = store.remember(tenant, &request.event_id, digest, body.clone());
        match scope.call("remember", budget, remembered).await {
            Ok(Remembered::Stored) => {}
            // A racing request of the same event stored first: answer as it did.
            Ok(Remembered::Existing(stored)) if stored.request_digest == digest => {
                raced = stored.body != body;
                body = stored.body;
            }
            // Stored meanwhile for another body: keep ours, store nothing.
            Ok(Remembered::Existing(_)) => event_id_reused = true,
            Err(e) => store_errors.push(("remember", e.kind(), e.to_string())),
        }
        tracing::trace!(
            remember_us = started.elapsed().as_micros() as u64,
            "answer kept"
        );
    }
    Ok(Handled {
        body,
        verdict,
        figures: Figures {
            elapsed: invocation.elapsed,
            fuel_consumed: invocation.fuel_consumed,
            peak_memory: invocation.peak_memory,
            store_calls: invocation.store_calls,
        },
        log: invocation.log,
        event_id_reused,
        raced,
        store_errors,
    })
}

impl Handled {
    fn replay(body: Vec<u8>, store_errors: Vec<(&'static str, &'static str, String)>) -> Handled {
        Handled {
            body,
            verdict: Verdict::Replayed,
            figures: Figures::NONE,
            log: PluginLog::default(),
            event_id_reused: false,
            raced: false,
            store_errors,
        }
    }

    /// Logs what the plugin logged (inside the request's span, so its lines
    /// carry the tenant and event id) within the tenant's `budget`, its
    /// failure if any, and its figures. Never a profile value: the plugin's
    /// own lines are its responsibility.
    pub fn trace(&self, budget: &LogBudget) {
        crate::log::plugin_lines(budget, &self.log);
        if self.verdict == Verdict::Replayed {
            tracing::info!(
                "replayed the stored answer (a retry: same eventId, same body); the plugin did not run"
            );
            return;
        }
        for (op, kind, error) in &self.store_errors {
            tracing::warn!(
                op,
                kind,
                error,
                "idempotency store call failed; answered without it"
            );
        }
        if self.event_id_reused {
            tracing::warn!(
                "this eventId was already answered for a different body: answered anew, not stored"
            );
        }
        if self.figures.store_calls.1 > 0 {
            tracing::warn!(
                refused = self.figures.store_calls.1,
                cap = crate::plugin::MAX_STORE_CALLS,
                "the plugin went past the per-request cap on claim-store calls"
            );
        }
        if self.raced {
            tracing::info!("a racing request of the same event answered first: sent its answer");
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
            store_calls = self.figures.store_calls.0,
            "plugin ran"
        );
    }
}
