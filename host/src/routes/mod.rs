//! Routing: the one table of every endpoint, and the one pattern every
//! request goes through.
//!
//! The table ([`Router`]) maps a path (a [`matchit`] pattern) to an
//! [`Endpoint`], each in its own module. For every request, in this order:
//! 1. a path the table does not know is a 404;
//! 2. an endpoint that does not exist right now ([`Endpoint::exists`], e.g.
//!    `/admin/reload` without `[admin]`) is the same 404, saying nothing more;
//! 3. a method the endpoint does not answer is a 405 with `Allow`;
//! 4. the caller is authenticated ([`Endpoint::authenticate`]; a 401, 404,
//!    or 503 when an OAuth issuer's keys are unavailable) before anything of
//!    the request but its headers is looked at, within the request's
//!    deadline (`server.request_timeout` from the request's start);
//! 5. the endpoint handles the request.
//!
//! Steps 4 and 5 run in the endpoint's span, and the endpoint is told how
//! its request ended ([`Endpoint::answered`]), for its own log line. Errors
//! are [`HttpError`]s, rendered in one place. Every request, whatever its
//! end, is counted once in the metrics by the endpoint's [`Endpoint::NAME`]
//! (a path of no endpoint as `unmatched`), with its tenant for a tenant's
//! endpoint ([`Endpoint::tenant_label`]).
//!
//! Two tables: [`Router::main`] on `[server] listen` (everything), and
//! [`Router::ops`] on `[server] ops_listen` (only `/healthz`, `/readyz`,
//! `/metrics`: never a tenant's or the admin's endpoint on plain HTTP).

mod admin;
mod body;
mod events;
mod healthz;
mod import;
mod metrics;
mod readyz;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tracing::{Instrument as _, Span};

use crate::App;
use crate::error::HttpError;
use crate::reload::Reloader;
use crate::tenant::Tenant;

pub use admin::ADMIN_RELOAD_PATH;

/// What every endpoint may reach: the app, the reloader when the server was
/// started from a configuration file, the routing table itself, and which
/// listener the request came in on.
pub(crate) struct Ctx {
    pub(crate) app: Arc<App>,
    pub(crate) reloader: Option<Arc<Reloader>>,
    pub(crate) router: Router,
    /// The request came in on `[server] ops_listen`.
    pub(crate) ops: bool,
}

/// Which endpoint a path leads to.
#[derive(Debug, Clone, Copy)]
enum Route {
    Import,
    Events,
    Healthz,
    Readyz,
    Metrics,
    AdminReload,
}

/// The `route` label of a path no endpoint serves.
const UNMATCHED: &str = "unmatched";

/// The routing table, built once at start.
pub(crate) struct Router(matchit::Router<Route>);

impl Router {
    /// Every endpoint hookbox serves, for the main (HTTPS) listener.
    pub(crate) fn main() -> Result<Router, matchit::InsertError> {
        let mut table = matchit::Router::new();
        table.insert(import::PATH, Route::Import)?;
        table.insert(events::PATH, Route::Events)?;
        table.insert(healthz::PATH, Route::Healthz)?;
        table.insert(readyz::PATH, Route::Readyz)?;
        table.insert(metrics::PATH, Route::Metrics)?;
        table.insert(ADMIN_RELOAD_PATH, Route::AdminReload)?;
        Ok(Router(table))
    }

    /// The operations endpoints only, for `[server] ops_listen` (plain HTTP).
    pub(crate) fn ops() -> Result<Router, matchit::InsertError> {
        let mut table = matchit::Router::new();
        table.insert(healthz::PATH, Route::Healthz)?;
        table.insert(readyz::PATH, Route::Readyz)?;
        table.insert(metrics::PATH, Route::Metrics)?;
        Ok(Router(table))
    }

    /// Answers one request; see the module docs for the order of the checks.
    pub(crate) async fn route(&self, ctx: &Ctx, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Ok(found) = self.0.at(req.uri().path()) else {
            let e = HttpError::NotFound;
            ctx.app.metrics().request(
                None,
                UNMATCHED,
                e.status().as_u16(),
                e.kind(),
                Duration::ZERO,
            );
            return e.into_response();
        };
        let params = Params(
            found
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        match *found.value {
            Route::Import => dispatch::<import::Import>(ctx, params, req).await,
            Route::Events => dispatch::<events::Events>(ctx, params, req).await,
            Route::Healthz => dispatch::<healthz::Healthz>(ctx, params, req).await,
            Route::Readyz => dispatch::<readyz::Readyz>(ctx, params, req).await,
            Route::Metrics => dispatch::<metrics::Metrics>(ctx, params, req).await,
            Route::AdminReload => dispatch::<admin::AdminReload>(ctx, params, req).await,
        }
    }
}

/// The path parameters a request matched, by name.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The value of parameter `name` (`""` when the pattern has none: a
    /// matched parameter is never empty).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The metrics label of the path's `{tenant}`: a configured id, or
/// `(unknown)`; never the path text (label values stay bounded).
pub(super) fn tenant_label(ctx: &Ctx, params: &Params) -> Option<String> {
    let id = params.get("tenant");
    Some(match ctx.app.tenants().get(id) {
        Some(_) => id.to_owned(),
        None => crate::metrics::UNKNOWN_TENANT.to_owned(),
    })
}

/// The path's `{tenant}` in the current table (one snapshot for the whole
/// request), recorded on the request's span: its id, or `(unknown)`, never
/// the raw path text. Parentheses cannot appear in a tenant id, so the
/// marker is never mistaken for one.
pub(super) fn path_tenant(ctx: &Ctx, params: &Params) -> Result<Arc<Tenant>, HttpError> {
    let Some(tenant) = ctx.app.tenant(params.get("tenant")) else {
        Span::current().record(
            "tenant",
            tracing::field::display(crate::metrics::UNKNOWN_TENANT),
        );
        return Err(HttpError::UnknownTenant);
    };
    // Displayed, as the id was before it was looked up: `tenant=acme`.
    Span::current().record("tenant", tracing::field::display(tenant.id()));
    Ok(tenant)
}

/// A successful answer: status, content type, body, and a short outcome
/// name for the endpoint's log line.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
    pub(crate) outcome: &'static str,
}

impl Answer {
    /// A JSON answer.
    pub(crate) fn json(
        status: StatusCode,
        body: impl Into<Bytes>,
        outcome: &'static str,
    ) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: body.into(),
            outcome,
        }
    }

    /// An answer without a body (and so without a content type).
    pub(crate) fn empty(status: StatusCode, outcome: &'static str) -> Answer {
        Answer {
            status,
            content_type: "",
            body: Bytes::new(),
            outcome,
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        if !self.content_type.is_empty() {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        response
    }
}

/// One endpoint of the table.
pub(crate) trait Endpoint {
    /// Its `route` label in the metrics.
    const NAME: &'static str;
    /// The methods it answers.
    const METHODS: &'static [Method];
    /// The `Allow` header of its 405.
    const ALLOW: &'static str;
    /// Who called, once authenticated (a tenant, the admin, anyone).
    type Caller: Send;

    /// Whether the endpoint exists right now.
    fn exists(_ctx: &Ctx) -> bool {
        true
    }

    /// The `tenant` label of its requests: `None` for an endpoint of no
    /// tenant; for a tenant's endpoint, the id if configured, otherwise
    /// [`crate::metrics::UNKNOWN_TENANT`] (never text from the URL).
    fn tenant_label(_ctx: &Ctx, _params: &Params) -> Option<String> {
        None
    }

    /// The span authentication and handling run in.
    fn span(_params: &Params) -> Span {
        Span::none()
    }

    /// Who is calling; `Err` ends the request before its body is read. Waits
    /// (for an OAuth issuer's keys) at most until `deadline`.
    fn authenticate(
        ctx: &Ctx,
        params: &Params,
        headers: &HeaderMap,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Self::Caller, HttpError>> + Send;

    /// Answers an authenticated request.
    fn handle(
        ctx: &Ctx,
        caller: Self::Caller,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Answer, HttpError>> + Send;

    /// How the request ended (inside its span), for the endpoint's own log line.
    fn answered(_status: StatusCode, _outcome: &'static str, _elapsed: Duration) {}
}

/// The pattern every request goes through; see the module docs.
async fn dispatch<E: Endpoint>(
    ctx: &Ctx,
    params: Params,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let refused = |e: HttpError| {
        // Before the endpoint's checks: counted without a tenant, as the route's.
        ctx.app.metrics().request(
            None,
            E::NAME,
            e.status().as_u16(),
            e.kind(),
            start.elapsed(),
        );
        e.into_response()
    };
    if !E::exists(ctx) {
        return refused(HttpError::NotFound);
    }
    if !E::METHODS.contains(req.method()) {
        return refused(HttpError::MethodNotAllowed { allow: E::ALLOW });
    }
    let span = E::span(&params);
    let tenant = E::tenant_label(ctx, &params);
    async move {
        let deadline = tokio::time::Instant::now() + ctx.app.server().request_timeout;
        let result = match E::authenticate(ctx, &params, req.headers(), deadline).await {
            Ok(caller) => E::handle(ctx, caller, req).await,
            Err(e) => Err(e),
        };
        let (status, outcome, response) = match result {
            Ok(answer) => (answer.status, answer.outcome, answer.into_response()),
            Err(e) => (e.status(), e.kind(), e.into_response()),
        };
        let elapsed = start.elapsed();
        E::answered(status, outcome, elapsed);
        ctx.app.metrics().request(
            tenant.as_deref(),
            E::NAME,
            status.as_u16(),
            outcome,
            elapsed,
        );
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_routes_every_endpoint_and_nothing_else() {
        let router = Router::main().expect("the table is consistent");
        let route = |path: &str| router.0.at(path).ok().map(|m| *m.value);
        assert!(matches!(route("/hooks/acme/import"), Some(Route::Import)));
        assert!(matches!(route("/hooks/acme/events"), Some(Route::Events)));
        assert!(matches!(route("/healthz"), Some(Route::Healthz)));
        assert!(matches!(route("/admin/reload"), Some(Route::AdminReload)));
        assert!(matches!(route("/readyz"), Some(Route::Readyz)));
        assert!(matches!(route("/metrics"), Some(Route::Metrics)));
        for unknown in [
            "/",
            "/hooks//import",
            "/hooks/a/b/import",
            "/hooks//events",
            "/hooks/acme/events/",
            "/hooks/acme",
            "/healthz/",
            "/admin",
        ] {
            assert!(route(unknown).is_none(), "{unknown}");
        }
        let found = router.0.at("/hooks/acme/import").expect("routed");
        assert_eq!(found.params.get("tenant"), Some("acme"));
    }

    #[test]
    fn the_ops_table_serves_probes_and_metrics_only() {
        let router = Router::ops().expect("the table is consistent");
        let route = |path: &str| router.0.at(path).ok().map(|m| *m.value);
        assert!(matches!(route("/healthz"), Some(Route::Healthz)));
        assert!(matches!(route("/readyz"), Some(Route::Readyz)));
        assert!(matches!(route("/metrics"), Some(Route::Metrics)));
        assert!(route("/hooks/acme/import").is_none());
        assert!(route("/admin/reload").is_none());
    }
}
