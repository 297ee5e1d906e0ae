//! `GET /metrics`: every series of [`crate::metrics`] in the OpenMetrics
//! text format Prometheus scrapes. No auth, so it is served where it is
//! private: on `[server] ops_listen` when one is configured (and then the
//! main listener, which faces Okta and the internet, answers 404), on the
//! main listener otherwise.

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};

use super::{Answer, Ctx, Endpoint, Params};
use crate::error::HttpError;

/// Its path.
pub(super) const PATH: &str = "/metrics";

/// `GET /metrics`.
pub(super) struct Metrics;

impl Endpoint for Metrics {
    const NAME: &'static str = "metrics";
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD];
    const ALLOW: &'static str = "GET";
    type Caller = ();

    fn exists(ctx: &Ctx) -> bool {
        ctx.ops || ctx.app.server().ops_listen.is_none()
    }

    async fn authenticate(
        _: &Ctx,
        _: &Params,
        _: &HeaderMap,
        _: tokio::time::Instant,
    ) -> Result<(), HttpError> {
        Ok(())
    }

    async fn handle(ctx: &Ctx, _: (), _: Request<Incoming>) -> Result<Answer, HttpError> {
        let text = ctx.app.metrics().render(&ctx.app).await;
        Ok(Answer {
            status: StatusCode::OK,
            content_type: crate::metrics::CONTENT_TYPE,
            body: text.into(),
            outcome: "ok",
        })
    }
}
