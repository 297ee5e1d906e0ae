//! `GET /healthz`: the process is up and serving (no auth, no body read).

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};

use super::{Answer, Ctx, Endpoint, Params};
use crate::error::HttpError;

/// Its path.
pub(super) const PATH: &str = "/healthz";

/// `GET /healthz` (and `HEAD`).
pub(super) struct Healthz;

impl Endpoint for Healthz {
    const NAME: &'static str = "healthz";
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

    async fn handle(_: &Ctx, _: (), _: Request<Incoming>) -> Result<Answer, HttpError> {
        Ok(Answer::json(
            StatusCode::OK,
            Bytes::from_static(br#"{"status":"ok"}"#),
            "ok",
        ))
    }
}
