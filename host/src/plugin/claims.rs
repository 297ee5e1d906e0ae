//! The `claims` and `directory` host interfaces of WIT 0.2.0: what a plugin
//! reaches of the claim store ([`hookbox_store::Store`]) and of the tenant's
//! Okta directory.
//!
//! Invariants:
//! - **Scope**: every call is made in the tenant's own key space
//!   ([`StoreScope`]: the tenant id comes from the host, never from the
//!   guest), so a plugin can never read or claim another tenant's keys.
//! - **Validation before the store**: an empty key or owner, or one longer
//!   than 512 bytes, is `invalid` with a fixed text; nothing is stored.
//! - **Bounded**: each call is bounded by what is left of the plugin's
//!   deadline, minus a reserve ([`reserve`]) so that a plugin told `timeout`
//!   still has time to fall back and answer; past it the guest gets
//!   `timeout` (the write may still land: allowed, and documented in the
//!   WIT). A request makes at most [`MAX_STORE_CALLS`] store calls; beyond,
//!   each call answers `unavailable("store call cap reached …")` at once, so
//!   a flooding plugin costs the store a bounded amount of work per request.
//! - **No secrets or personal data in errors**: the texts the guest gets are
//!   fixed per kind of failure; the store's own error is logged by the host
//!   (its kind, never a key or an owner).
//! - **Directory**: `directory.find-user` answers `not-configured` at once,
//!   with no I/O, for a tenant without a `directory` table (and for smoke
//!   requests and `hookbox run`, whose scopes have none). Otherwise it is the
//!   tenant's [`Directory::find_user_in`] with the plugin call's
//!   [`RequestBudget`] (reset by `State::begin`: `max_lookups_per_request`
//!   lookups per call, cache hits included) and the plugin's deadline minus
//!   twice the reserve of a store call, so a plugin told `timed-out` still
//!   has time for its claims and its answer. Its errors map one to one onto the WIT's
//!   `directory-error`. Neither the login nor the token is ever logged (the
//!   crate's own log lines name neither; the host logs only the error kind).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookbox_directory::{Directory, RequestBudget};
use hookbox_store::{ClaimOutcome, MAX_CLAIM_KEY, MAX_CLAIM_OWNER, Store, StoreError};

use super::bindings::v0_2::hookbox::okta_import::claims::{self, ClaimResult};
use super::bindings::v0_2::hookbox::okta_import::directory::{self, DirectoryError};
use super::state::State;
use crate::metrics::StoreMetrics;

/// Store calls one request may make (claims, lookups, releases together).
/// The reference plugin makes 3 for a conflict on an empty store; 64 leaves
/// room for 18 candidates and their owner record, and bounds a flood.
pub const MAX_STORE_CALLS: u32 = 64;

/// The most a store call keeps back from the deadline for the plugin's own
/// fallback, and the least.
const MAX_RESERVE: Duration = Duration::from_millis(50);
const MIN_RESERVE: Duration = Duration::from_millis(5);

/// What is kept back of a plugin's deadline for the plugin itself after a
/// store call timed out: a fifth of it, between 5 and 50 ms.
pub(crate) fn reserve(deadline: Duration) -> Duration {
    (deadline / 5).clamp(MIN_RESERVE, MAX_RESERVE)
}

/// One tenant's view of the claim store: the store and the tenant id every
/// key is scoped by, and the tenant's Okta directory if it has one. Built by
/// the host per request (or per reused instance, always for one tenant); the
/// guest never chooses the tenant.
#[derive(Clone)]
pub struct StoreScope {
    tenant: Arc<str>,
    store: Store,
    /// Where its calls are recorded (`App::scope`'s scopes); `None`: not recorded.
    metrics: Option<StoreMetrics>,
    /// What `directory.find-user` asks; `None`: `not-configured`.
    directory: Option<Arc<Directory>>,
}

impl StoreScope {
    /// `tenant`'s space of `store`.
    pub fn new(tenant: &str, store: &Store) -> StoreScope {
        StoreScope {
            tenant: Arc::from(tenant),
            store: store.clone(),
            metrics: None,
            directory: None,
        }
    }

    /// The same scope, answering `directory.find-user` from `directory`
    /// (`None`: `not-configured`).
    pub fn with_directory(mut self, directory: Option<Arc<Directory>>) -> StoreScope {
        self.directory = directory;
        self
    }

    /// The tenant's directory, if it has one.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    /// The same scope, recording every call made through [`StoreScope::call`]
    /// into `metrics`.
    pub fn with_metrics(mut self, metrics: StoreMetrics) -> StoreScope {
        self.metrics = Some(metrics);
        self
    }

    /// Runs the store call `op` (`claim`, `owner_of`, `release`, `recall`,
    /// `remember`), bounded by `budget` (past it: [`StoreError::Timeout`]),
    /// and records it if this scope records.
    pub async fn call<T>(
        &self,
        op: &'static str,
        budget: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = tokio::time::timeout(budget, call)
            .await
            .unwrap_or(Err(StoreError::Timeout(budget)));
        if let Some(metrics) = &self.metrics {
            let error = result.as_ref().err().map(StoreError::kind);
            metrics.call(self.store.backend_name(), op, started.elapsed(), error);
        }
        result
    }

    /// The tenant id keys are scoped by.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The tenant id, shared (the CPU scheduler's key).
    pub(crate) fn tenant_id(&self) -> &Arc<str> {
        &self.tenant
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Per-request accounting of store calls, reset by `State::begin`.
#[derive(Debug, Default)]
pub(crate) struct StoreCalls {
    /// Calls that reached (or were bounded for) the store.
    pub(crate) made: u32,
    /// Calls refused because the cap was reached.
    pub(crate) refused: u32,
}

type StoreErr = claims::StoreError;

fn check(what: &str, value: &str, max: usize) -> Result<(), StoreErr> {
    if value.is_empty() {
        return Err(StoreErr::Invalid(format!("empty {what}")));
    }
    if value.len() > max {
        return Err(StoreErr::Invalid(format!("{what} longer than {max} bytes")));
    }
    Ok(())
}

impl State {
    /// Runs one store call for the guest: counts it against the cap, bounds
    /// it by the deadline, maps errors to the WIT's `store-error`.
    async fn store_call<T, F>(&mut self, op: &'static str, call: F) -> Result<T, StoreErr>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        if self.calls.made >= MAX_STORE_CALLS {
            self.calls.refused += 1;
            return Err(StoreErr::Unavailable(format!(
                "store call cap reached: at most {MAX_STORE_CALLS} store calls per request"
            )));
        }
        self.calls.made += 1;
        let budget = self
            .deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.reserve);
        // Waiting on the store is not CPU: the slot goes to another call
        // meanwhile, and this one queues for a slot again before the guest
        // resumes (see `fair`).
        if let Some(cpu) = &self.cpu {
            cpu.release();
        }
        let result = self.scope.call(op, budget, call).await;
        if let Some(cpu) = &self.cpu {
            cpu.resume().await;
        }
        result.map_err(|e| self.store_error(op, &e))
    }

    /// The guest's view of a store error: a fixed text per kind, never the
    /// store's own text (which may name a URL); that is logged by the host.
    fn store_error(&self, op: &'static str, e: &StoreError) -> StoreErr {
        tracing::warn!(
            target: "hookbox::store",
            op,
            kind = e.kind(),
            error = %e,
            backend = self.scope.store().backend_name(),
            "claim store call failed"
        );
        let backend = self.scope.store().backend_name();
        match e {
            StoreError::Timeout(_) => StoreErr::Timeout,
            StoreError::Invalid(_) => StoreErr::Invalid("refused by the store".to_owned()),
            StoreError::Unavailable(_) => {
                StoreErr::Unavailable(format!("the {backend} claim store is unavailable"))
            }
            StoreError::Io { .. } => {
                StoreErr::Unavailable(format!("the {backend} claim store had an I/O error"))
            }
            StoreError::Corrupt(_) => {
                StoreErr::Unavailable(format!("the {backend} claim store holds damaged data"))
            }
            _ => StoreErr::Unavailable(format!("the {backend} claim store failed")),
        }
    }
}

impl claims::Host for State {
    async fn claim(&mut self, key: String, owner: String) -> Result<ClaimResult, StoreErr> {
        check("key", &key, MAX_CLAIM_KEY)?;
        check("owner", &owner, MAX_CLAIM_OWNER)?;
        let scope = self.scope.clone();
        let outcome = self
            .store_call("claim", scope.store().claim(scope.tenant(), &key, &owner))
            .await?;
        Ok(match outcome {
            ClaimOutcome::Claimed => ClaimResult::Claimed,
            ClaimOutcome::AlreadyYours => ClaimResult::AlreadyYours,
            ClaimOutcome::Taken => ClaimResult::Taken,
        })
    }

    async fn owner_of(&mut self, key: String) -> Result<Option<String>, StoreErr> {
        check("key", &key, MAX_CLAIM_KEY)?;
        let scope = self.scope.clone();
        self.store_call("owner_of", scope.store().owner_of(scope.tenant(), &key))
            .await
    }

    async fn release(&mut self, key: String, owner: String) -> Result<bool, StoreErr> {
        check("key", &key, MAX_CLAIM_KEY)?;
        check("owner", &owner, MAX_CLAIM_OWNER)?;
        let scope = self.scope.clone();
        self.store_call(
            "release",
            scope.store().release(scope.tenant(), &key, &owner),
        )
        .await
    }
}

impl directory::Host for State {
    async fn find_user(&mut self, login: String) -> Result<Option<String>, DirectoryError> {
        find_user(self, &login).await
    }
}

/// The directory lookup: see the module docs.
async fn find_user(state: &mut State, login: &str) -> Result<Option<String>, DirectoryError> {
    let Some(directory) = state.scope.directory().cloned() else {
        return Err(DirectoryError::NotConfigured);
    };
    // Twice the reserve: one for the claim-store calls the plugin makes
    // after a lookup that timed out, one for its answer.
    let deadline = state
        .deadline
        .checked_sub(state.reserve * 2)
        .unwrap_or(state.deadline);
    let budget = state
        .lookups
        .get_or_insert_with(|| directory.request_budget());
    // Waiting on Okta is not CPU: as for store calls, the slot goes to another
    // call meanwhile (a slow directory must not serialize a tenant's calls).
    if let Some(cpu) = &state.cpu {
        cpu.release();
    }
    let result = directory.find_user_in(login, deadline, budget).await;
    if let Some(cpu) = &state.cpu {
        cpu.resume().await;
    }
    result.map_err(|e| {
        // The kind only: never the login (nor the token, which no error holds).
        tracing::debug!(
            target: "hookbox::directory",
            tenant = state.scope.tenant(),
            kind = e.kind(),
            "directory lookup failed"
        );
        wit_error(e)
    })
}

/// The crate's error as the WIT's `directory-error`, one to one.
fn wit_error(e: hookbox_directory::DirectoryError) -> DirectoryError {
    use hookbox_directory::DirectoryError as E;
    match e {
        E::NotConfigured => DirectoryError::NotConfigured,
        E::Unavailable(text) => DirectoryError::Unavailable(text),
        E::RateLimited => DirectoryError::RateLimited,
        E::TimedOut => DirectoryError::TimedOut,
        E::Denied => DirectoryError::Denied,
    }
}

/// The per-call lookup cap, for `State`: `None` until the call's first lookup.
pub(crate) type Lookups = Option<RequestBudget>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_errors_map_one_to_one() {
        use hookbox_directory::DirectoryError as E;
        for (from, kind) in [
            (E::NotConfigured, "not-configured"),
            (
                E::Unavailable("Okta answered HTTP 503".into()),
                "unavailable",
            ),
            (E::RateLimited, "rate-limited"),
            (E::TimedOut, "timed-out"),
            (E::Denied, "denied"),
        ] {
            let wit = wit_error(from.clone());
            let wit_kind = match &wit {
                DirectoryError::NotConfigured => "not-configured",
                DirectoryError::Unavailable(text) => {
                    assert_eq!(text, "Okta answered HTTP 503");
                    "unavailable"
                }
                DirectoryError::RateLimited => "rate-limited",
                DirectoryError::TimedOut => "timed-out",
                DirectoryError::Denied => "denied",
            };
            assert_eq!((from.kind(), wit_kind), (kind, kind));
        }
    }
}
