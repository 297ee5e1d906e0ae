//! `GET|POST /hooks/{tenant}/events`: Okta's event hook for a tenant.
//!
//! - `GET` is Okta's one-time verification: the header
//!   `x-okta-verification-challenge` is echoed as `{"verification": "…"}`.
//! - `POST` is a delivery: decoded, its subscribed events durably queued
//!   ([`crate::events::accept`]) before the 200, which has no body. A full
//!   queue or an unavailable store is a 503 with `Retry-After` (Okta
//!   retries once); a malformed delivery a 400 naming the field.
//!
//! Both need the tenant's header secret (event hooks have no OAuth). A tenant
//! without an event handler (its plugin exports none, or `events.enabled =
//! false`) answers 404 here, before any credential is looked at, exactly as
//! an unknown tenant does. Every request is logged once with its status,
//! outcome and counts, never an event's content.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use tracing::{Span, field};

use super::{Answer, Ctx, Endpoint, Params, body};
use crate::error::HttpError;
use crate::events::{self, NotQueued, delivery};
use crate::tenant::Tenant;

/// Its path pattern.
pub(super) const PATH: &str = "/hooks/{tenant}/events";

/// The verification request's header.
pub const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";

/// Longest challenge echoed (Okta's are about 40 characters).
const MAX_CHALLENGE: usize = 1024;

/// `GET|POST /hooks/{tenant}/events`.
pub(super) struct Events;

impl Endpoint for Events {
    const NAME: &'static str = "events";
    const METHODS: &'static [Method] = &[Method::GET, Method::POST];
    const ALLOW: &'static str = "GET, POST";
    /// The tenant, from one snapshot of the table kept for the whole request.
    type Caller = Arc<Tenant>;

    fn tenant_label(ctx: &Ctx, params: &Params) -> Option<String> {
        super::tenant_label(ctx, params)
    }

    fn span(_params: &Params) -> Span {
        tracing::info_span!(
            "event_hook",
            // Recorded once the table knows it: never the raw path text.
            tenant = field::Empty,
            event_id = field::Empty,
            plugin = field::Empty,
        )
    }

    async fn authenticate(
        ctx: &Ctx,
        params: &Params,
        headers: &HeaderMap,
        _: tokio::time::Instant,
    ) -> Result<Arc<Tenant>, HttpError> {
        let tenant = super::path_tenant(ctx, params)?;
        if !tenant.handles_events() {
            return Err(HttpError::UnknownTenant);
        }
        Span::current().record("plugin", tenant.plugin().short_digest());
        // The header secret only, never a bearer token: Okta's event hooks
        // have no OAuth. An OAuth-only tenant has no way in here.
        match &tenant.auth().secret {
            Some(secret) if secret.verify(headers) => Ok(tenant),
            _ => Err(HttpError::Unauthorized),
        }
    }

    async fn handle(
        ctx: &Ctx,
        tenant: Arc<Tenant>,
        req: Request<Incoming>,
    ) -> Result<Answer, HttpError> {
        if req.method() == Method::GET {
            return verify(req.headers());
        }
        let body = body::read_json(ctx.app.server(), req).await?;
        let delivery = delivery::decode(&body).map_err(|e| HttpError::BadRequest(e.to_string()))?;
        Span::current().record(
            "event_id",
            crate::log::client_text(&delivery.event_id, crate::log::MAX_CLIENT_TEXT).as_ref(),
        );
        let config = &tenant.config().events;
        match events::accept(ctx.app.store(), tenant.id(), config, &delivery).await {
            Ok(accepted) => {
                if accepted.queued > 0 {
                    ctx.app.events_queued();
                }
                tracing::info!(
                    events = delivery.events.len(),
                    queued = accepted.queued,
                    duplicates = accepted.duplicates,
                    dropped = accepted.dropped,
                    "delivery acknowledged"
                );
                Ok(Answer::empty(StatusCode::OK, "acknowledged"))
            }
            Err(NotQueued::Full { queued }) => {
                tracing::warn!(
                    queued,
                    max_queued = config.max_queued,
                    "delivery refused: the event queue is full"
                );
                Err(HttpError::QueueFull)
            }
            Err(NotQueued::Store(e)) => {
                tracing::warn!(kind = e.kind(), error = %e, "delivery refused: the event store is unavailable");
                Err(HttpError::StoreUnavailable)
            }
        }
    }

    fn answered(status: StatusCode, outcome: &'static str, elapsed: Duration) {
        tracing::info!(
            status = status.as_u16(),
            outcome,
            duration_us = elapsed.as_micros() as u64,
            "event hook answered"
        );
    }
}

/// Okta's one-time verification: the challenge back, as JSON.
fn verify(headers: &HeaderMap) -> Result<Answer, HttpError> {
    let challenge = headers
        .get(CHALLENGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_CHALLENGE)
        .ok_or_else(|| {
            HttpError::BadRequest(format!(
                "{CHALLENGE_HEADER}: a verification request needs this header (1-{MAX_CHALLENGE} visible characters)"
            ))
        })?;
    let body = serde_json::json!({ "verification": challenge }).to_string();
    tracing::info!("event hook verified");
    Ok(Answer::json(StatusCode::OK, body, "verified"))
}
