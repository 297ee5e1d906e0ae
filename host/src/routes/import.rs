//! `POST /hooks/{tenant}/import`: Okta's import hook. The tenant's
//! credentials (header secret or OAuth bearer token, [`crate::auth`]) are
//! checked before the body is looked at; the body goes through the request
//! pipeline ([`crate::pipeline`]). Every request is logged once, in a span
//! with tenant, event id and plugin digest, with its status, outcome and
//! duration, but never a profile value or a secret.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use tracing::{Span, field};

use hookbox_oauth::Rejection;
use tokio::time::Instant;

use super::{Answer, Ctx, Endpoint, Params, body};
use crate::auth::{self, Refusal};
use crate::error::HttpError;
use crate::pipeline;
use crate::tenant::Tenant;

/// Its path pattern.
pub(super) const PATH: &str = "/hooks/{tenant}/import";

/// `POST /hooks/{tenant}/import`.
pub(super) struct Import;

impl Endpoint for Import {
    const NAME: &'static str = "import";
    const METHODS: &'static [Method] = &[Method::POST];
    const ALLOW: &'static str = "POST";
    /// The tenant, from one snapshot of the table kept for the whole request.
    type Caller = Arc<Tenant>;

    fn tenant_label(ctx: &Ctx, params: &Params) -> Option<String> {
        super::tenant_label(ctx, params)
    }

    fn span(_params: &Params) -> Span {
        tracing::info_span!(
            "hook",
            // Recorded once the table knows it: never the raw path text.
            tenant = field::Empty,
            event_id = field::Empty,
            plugin = field::Empty,
            auth = field::Empty,
        )
    }

    async fn authenticate(
        ctx: &Ctx,
        params: &Params,
        headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<Arc<Tenant>, HttpError> {
        let tenant = super::path_tenant(ctx, params)?;
        // A plugin for event hooks only answers no import hook: as if no tenant were here.
        if !tenant.plugin().exports().resolver {
            return Err(HttpError::UnknownTenant);
        }
        Span::current().record("plugin", tenant.plugin().short_digest());
        match auth::authenticate(tenant.auth(), tenant.oauth(), headers, deadline).await {
            Ok(how) => {
                Span::current().record("auth", how.method());
                Ok(tenant)
            }
            Err(refusal) => {
                // Which check failed, never the credential.
                tracing::info!(check = refusal.check(), "hook refused: {refusal}");
                Err(match refusal {
                    Refusal::Secret => HttpError::Unauthorized,
                    Refusal::OAuth(Rejection::KeysUnavailable) => HttpError::AuthUnavailable,
                    Refusal::OAuth(_) => HttpError::InvalidToken,
                })
            }
        }
    }

    async fn handle(
        ctx: &Ctx,
        tenant: Arc<Tenant>,
        req: Request<Incoming>,
    ) -> Result<Answer, HttpError> {
        let body = body::read_json(ctx.app.server(), req).await?;
        let scope = ctx.app.scope(&tenant);
        let handled = pipeline::handle(&tenant.binding(&scope), &body).await?;
        handled.trace(tenant.log_budget());
        // A replayed answer ran no plugin: nothing to add to the plugin's series.
        if !matches!(handled.verdict, pipeline::Verdict::Replayed) {
            ctx.app.metrics().plugin_call(tenant.id(), &handled.figures);
        }
        Ok(Answer::json(
            StatusCode::OK,
            handled.body,
            handled.verdict.name(),
        ))
    }

    fn answered(status: StatusCode, outcome: &'static str, elapsed: Duration) {
        tracing::info!(
            status = status.as_u16(),
            outcome,
            duration_us = elapsed.as_micros() as u64,
            "hook answered"
        );
    }
}
