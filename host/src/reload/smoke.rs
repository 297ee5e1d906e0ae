//! Smoke requests: a tenant's `smoke` file must be answered without error by
//! a plugin version before it goes live, at a reload ([`smoke`]) and at
//! start ([`smoke_at_start`]). Run through the request pipeline like a real
//! request, on a throwaway binding (a fresh instance, permits of its own, a
//! scratch claim store), so a smoke request never takes a live tenant's
//! permit, leaves a warm instance behind, claims a login in the tenant's
//! real store or stores an answer for its event id there.

use tokio::sync::Semaphore;

use super::plan::RejectReason;
use crate::App;
use crate::config::{ConfigError, TenantConfig};
use crate::pipeline::{self, Refused, Verdict};
use crate::plugin::{Backend, Binding, InstanceMode, Limits, Plugin, StoreScope};

/// A tenant failed its smoke request at start: the server does not start
/// (exit code [`ConfigError::EXIT_CODE`], like any refused configuration).
#[derive(Debug, thiserror::Error)]
#[error("tenant {tenant}: {reason}")]
pub struct SmokeError {
    /// The tenant's id.
    pub tenant: String,
    /// Why.
    pub reason: RejectReason,
}

impl SmokeError {
    /// The process's exit code for it.
    pub const EXIT_CODE: u8 = ConfigError::EXIT_CODE;
}

/// Runs a smoke request (`body`) through `plugin` with the tenant's settings
/// and limits; `Err` says why the plugin must not go live.
pub(super) async fn smoke(
    plugin: &Plugin,
    config: &TenantConfig,
    body: &[u8],
) -> Result<(), RejectReason> {
    let limits = Limits {
        instance_mode: InstanceMode::Fresh,
        ..config.limits.clone()
    };
    let backend = Backend::default();
    let permits = Semaphore::new(limits.max_concurrency as usize);
    let scratch = hookbox_store::Store::scratch()
        .await
        .map_err(RejectReason::SmokeStore)?;
    let scope = StoreScope::new(&config.id, &scratch);
    let binding = Binding {
        plugin,
        settings: &config.settings,
        limits: &limits,
        backend: &backend,
        permits: &permits,
        scope: &scope,
    };
    match pipeline::handle(&binding, body).await {
        Err(Refused::BadRequest(e)) => Err(RejectReason::SmokeInvalid(e)),
        Err(Refused::Overloaded) => Err(RejectReason::SmokeOverloaded),
        Ok(handled) => match handled.verdict {
            Verdict::Answered { .. } | Verdict::Replayed => Ok(()),
            Verdict::Declined(summary) => Err(RejectReason::SmokeDeclined(summary)),
            Verdict::Failed(failure) => Err(RejectReason::SmokeFailed(failure)),
        },
    }
}

/// Start-up's counterpart of a reload's check: every tenant with a `smoke`
/// request must answer it before the server binds, so a version that a
/// reload would refuse is never served because it happened to be there at
/// start.
pub async fn smoke_at_start(app: &App) -> Result<(), SmokeError> {
    for tenant in app.tenants().iter() {
        let Some(path) = &tenant.config().smoke else {
            continue;
        };
        let refuse = |reason| SmokeError {
            tenant: tenant.id().to_owned(),
            reason,
        };
        let body = std::fs::read(path).map_err(|error| {
            refuse(RejectReason::SmokeUnreadable {
                path: path.clone(),
                error,
            })
        })?;
        smoke(tenant.plugin(), tenant.config(), &body)
            .await
            .map_err(refuse)?;
    }
    Ok(())
}
