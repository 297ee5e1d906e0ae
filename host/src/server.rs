//! Accepting connections, HTTP (1.1 keep-alive and 2 over TLS), routing.
//!
//! The accept loop never awaits per-connection work: the TLS handshake (with
//! a timeout) and HTTP serving run in each connection's own task, so one
//! slow or hostile client cannot stall the others. On shutdown the loop stops
//! accepting, and connections finish the requests they have in flight.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, field};

use crate::App;
use crate::error::{HttpError, json_response};
use crate::hook;

/// How long connections get to finish in-flight requests after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(app.server.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(app.server.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p?,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(app.server.handshake_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(route(&app, req).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down; draining connections"
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
    Ok(())
}

/// `POST /hooks/{tenant}/import`, `GET /healthz` and (when configured) `POST /admin/reload`;
/// everything else is a JSON 404/405.
async fn route(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/healthz" {
        return match *req.method() {
            Method::GET | Method::HEAD => {
                json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
            }
            _ => HttpError::MethodNotAllowed { allow: "GET" }.into_response(),
        };
    }
    if path == crate::reload::ADMIN_RELOAD_PATH {
        return crate::reload::admin_reload(app, req).await;
    }
    let tenant = match path
        .strip_prefix("/hooks/")
        .and_then(|rest| rest.strip_suffix("/import"))
    {
        Some(t) if !t.is_empty() && !t.contains('/') => t.to_owned(),
        _ => return HttpError::NotFound.into_response(),
    };
    if req.method() != Method::POST {
        return HttpError::MethodNotAllowed { allow: "POST" }.into_response();
    }
    let span = tracing::info_span!(
        "hook",
        tenant = %tenant,
        event_id = field::Empty,
        plugin = field::Empty,
    );
    async move {
        let start = Instant::now();
        let (status, outcome, response) = match import(app, &tenant, req).await {
            Ok(answer) => (
                StatusCode::OK,
                answer.outcome,
                json_response(StatusCode::OK, answer.body.into()),
            ),
            Err(e) => (e.status(), e.kind(), e.into_response()),
        };
        tracing::info!(
            status = status.as_u16(),
            outcome,
            duration_us = start.elapsed().as_micros() as u64,
            "hook answered"
        );
        response
    }
    .instrument(span)
    .await
}

async fn import(
    app: &App,
    tenant_id: &str,
    req: Request<Incoming>,
) -> Result<hook::Answer, HttpError> {
    // One snapshot of the routing table for the whole request.
    let tenants = app.tenants.load_full();
    let tenant = tenants.get(tenant_id).ok_or(HttpError::UnknownTenant)?;
    tracing::Span::current().record("plugin", tenant.plugin.short_digest());

    // Authenticate before looking at the body: an unauthenticated caller gets nothing parsed.
    if !tenant.auth.verify(req.headers()) {
        return Err(HttpError::Unauthorized);
    }
    if !is_json(req.headers().get(CONTENT_TYPE)) {
        return Err(HttpError::UnsupportedMediaType);
    }
    let body = read_body(app, req).await?;
    hook::handle(&app.runtime, tenant, &body).await
}

/// `application/json`, with or without parameters (`; charset=UTF-8`).
fn is_json(value: Option<&hyper::header::HeaderValue>) -> bool {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = v.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, HttpError> {
    let limit = app.server.body_limit;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refuse early when the declared size is already too big: no need to read it.
    if declared.is_some_and(|n| n > limit) {
        return Err(HttpError::PayloadTooLarge { limit });
    }
    let limited = Limited::new(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    );
    match tokio::time::timeout(app.server.request_timeout, limited.collect()).await {
        Err(_) => Err(HttpError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(HttpError::PayloadTooLarge { limit })
        }
        Ok(Err(_)) => Err(HttpError::BodyRead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn json_content_types() {
        let ok = [
            "application/json",
            "application/json; charset=UTF-8",
            "Application/JSON",
        ];
        for v in ok {
            assert!(is_json(Some(&HeaderValue::from_static(v))), "{v}");
        }
        for v in [
            "text/plain",
            "application/jsonp",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_json(Some(&HeaderValue::from_static(v))), "{v}");
        }
        assert!(!is_json(None));
    }
}
