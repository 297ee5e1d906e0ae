//! `GET /readyz`: whether this process should get traffic (see
//! [`crate::readiness`]): 200 `{"ready":true}`, or 503 with the reasons. No
//! auth, no body read; served on the main and the ops listener.

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};

use super::{Answer, Ctx, Endpoint, Params};
use crate::error::HttpError;

/// Its path.
pub(super) const PATH: &str = "/readyz";

/// `GET /readyz` (and `HEAD`).
pub(super) struct Readyz;

impl Endpoint for Readyz {
    const NAME: &'static str = "readyz";
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD];
    const ALLOW: &'static str = "GET";
    type Caller = ();

    async fn authenticate(
        _: &Ctx,
        _: &Params,
        _: &HeaderMap,
        _: tokio::time::Instant,
    ) -> Result<(), HttpError> {
        Ok(())
    }

    async fn handle(ctx: &Ctx, _: (), _: Request<Incoming>) -> Result<Answer, HttpError> {
        let status = ctx.app.readiness().status().await;
        let (code, outcome) = if status.ready {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        };
        let body = serde_json::to_vec(&status).unwrap_or_default();
        Ok(Answer::json(code, body, outcome))
    }
}
