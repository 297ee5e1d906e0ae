//! The import hook itself: decode → invoke the tenant's plugin → encode.
//!
//! Wire types (Okta's JSON) live in [`decode`] and [`encode`]; the plugin
//! sees only the WIT types. Every way this can end is answered in Okta's
//! format and logged once, with tenant, event id, plugin digest, outcome
//! and duration, but never a profile value or a secret.

pub mod decode;
pub mod encode;

use tracing::Span;

use crate::error::HttpError;
use crate::plugin::hookbox::okta_import::host::Level;
use crate::plugin::{Failure, Invocation, Outcome, Runtime};
use crate::tenant::Tenant;

/// How a hook call that reached the plugin ended, for the log.
pub struct Answer {
    pub body: Vec<u8>,
    pub outcome: &'static str,
}

/// Runs one authenticated request body through the tenant's plugin.
/// `Err` is for requests that must not reach the plugin (bad input, overload).
pub async fn handle(runtime: &Runtime, tenant: &Tenant, body: &[u8]) -> Result<Answer, HttpError> {
    let request = decode::decode(body).map_err(|e| HttpError::BadRequest(e.0))?;
    Span::current().record("event_id", request.event_id.as_str());

    // Held until the answer is encoded; beyond the tenant's share, Okta's one retry is the remedy.
    let _permit = tenant
        .concurrency
        .try_acquire()
        .map_err(|_| HttpError::Overloaded)?;
    let invocation = runtime.invoke_tenant(&tenant.instances, &request).await;
    if invocation.pool_exhausted {
        return Err(HttpError::Overloaded);
    }
    emit_plugin_log(&invocation);

    let digest = tenant.plugin.short_digest();
    let (body, failure) = encode::respond(&invocation.result, digest);
    let outcome = match &failure {
        Some(f) => log_failure(f),
        None => outcome_name(&invocation.result),
    };
    tracing::debug!(
        plugin_us = invocation.elapsed.as_micros() as u64,
        peak_memory = invocation.peak_memory,
        fuel = invocation.fuel_consumed,
        "plugin ran"
    );
    Ok(Answer { body, outcome })
}

fn outcome_name(result: &Result<Outcome, Failure>) -> &'static str {
    match result {
        Ok(Outcome::Response(r)) if r.commands.is_empty() => "no_commands",
        Ok(Outcome::Response(_)) => "commands",
        Ok(Outcome::Declined(_)) => "plugin_error",
        Err(f) => f.kind(),
    }
}

fn log_failure(failure: &Failure) -> &'static str {
    tracing::warn!(
        failure = failure.kind(),
        detail = failure.detail(),
        "plugin failed"
    );
    failure.kind()
}

/// Plugin log lines go into the host's log inside the request's span, so
/// they carry the tenant and event id.
fn emit_plugin_log(invocation: &Invocation) {
    for line in &invocation.log.lines {
        let m = line.message.as_str();
        match line.level {
            Level::Trace => tracing::trace!(target: "hookbox::plugin", "{m}"),
            Level::Debug => tracing::debug!(target: "hookbox::plugin", "{m}"),
            Level::Info => tracing::info!(target: "hookbox::plugin", "{m}"),
            Level::Warn => tracing::warn!(target: "hookbox::plugin", "{m}"),
            Level::Error => tracing::error!(target: "hookbox::plugin", "{m}"),
        }
    }
    if invocation.log.dropped > 0 {
        tracing::warn!(target: "hookbox::plugin", dropped = invocation.log.dropped, "plugin log lines over the cap were dropped");
    }
}
