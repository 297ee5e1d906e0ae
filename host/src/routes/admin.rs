//! `POST /admin/reload`: a reload, answered with its report. It exists only
//! when `[admin]` is configured (otherwise a 404 that does not reveal it),
//! and needs the admin secret.

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};

use super::{Answer, Ctx, Endpoint, Params};
use crate::error::{HttpError, error_body};
use crate::reload::ReloadReport;

/// The admin endpoint's path.
pub const ADMIN_RELOAD_PATH: &str = "/admin/reload";

/// `POST /admin/reload`.
pub(super) struct AdminReload;

impl Endpoint for AdminReload {
    const NAME: &'static str = "admin_reload";
    const METHODS: &'static [Method] = &[Method::POST];
    const ALLOW: &'static str = "POST";
    type Caller = ();

    fn exists(ctx: &Ctx) -> bool {
        ctx.app.admin().is_some()
    }

    async fn authenticate(
        ctx: &Ctx,
        _: &Params,
        headers: &HeaderMap,
        _: tokio::time::Instant,
    ) -> Result<(), HttpError> {
        // Swapped by a reload since `exists`: the endpoint is gone.
        let auth = ctx.app.admin().ok_or(HttpError::NotFound)?;
        if !auth.verify(headers) {
            tracing::warn!("admin reload refused: bad credentials");
            return Err(HttpError::Unauthorized);
        }
        Ok(())
    }

    /// 200 with the report, or 422 when the configuration file was invalid
    /// and nothing changed.
    async fn handle(ctx: &Ctx, _: (), _: Request<Incoming>) -> Result<Answer, HttpError> {
        tracing::info!("reload requested by the admin endpoint");
        let report = match &ctx.reloader {
            Some(reloader) => reloader.reload().await,
            None => ReloadReport::failed(
                "this server was started without a configuration file; nothing to reload".into(),
                std::time::Instant::now(),
            ),
        };
        let status = if report.applied {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Ok(match serde_json::to_vec(&report) {
            Ok(body) => Answer::json(status, body, "reload"),
            Err(e) => Answer::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                error_body(&format!("cannot encode the report: {e}")),
                "reload",
            ),
        })
    }
}
