//! Errors that end a request before a plugin answers, each knowing its HTTP
//! status, rendered in one place as Okta's error body
//! `{"error": {"errorSummary": "..."}}`.
//!
//! Failures of the plugin itself are not here: Okta must receive those as a
//! 200 with an error body (see [`crate::hook::encode`]).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("no such route; hooks are served at POST /hooks/{{tenant}}/import")]
    NotFound,
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    /// Deliberately says nothing about which tenants exist.
    #[error("unknown tenant")]
    UnknownTenant,
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// A bearer token was refused; which check failed is logged, not said.
    #[error("missing or invalid credentials")]
    InvalidToken,
    /// The tenant's OAuth issuer's keys could not be had in time: the token
    /// may be valid, so Okta should retry (it does, once, on a 5xx).
    #[error("the authorization server's keys are unavailable; retry shortly")]
    AuthUnavailable,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("could not read the request body")]
    BodyRead,
    /// Names the offending field path, e.g. `data.appUser.profile: missing field`.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Okta retries a 503 once; `Retry-After` says when.
    #[error("too many concurrent requests; retry shortly")]
    Overloaded,
    /// An event hook delivery would take the tenant's queue past its bound:
    /// nothing was queued (a 503, which Okta retries once).
    #[error("the event queue is full; retry later")]
    QueueFull,
    /// An event hook delivery could not be durably queued: nothing was
    /// acknowledged (a 503, which Okta retries once).
    #[error("events cannot be stored right now; retry later")]
    StoreUnavailable,
}

impl HttpError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound | HttpError::UnknownTenant => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthorized | HttpError::InvalidToken => StatusCode::UNAUTHORIZED,
            HttpError::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            HttpError::BodyRead | HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Overloaded | HttpError::QueueFull | HttpError::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// A short machine-readable name for logs and metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            HttpError::NotFound => "not_found",
            HttpError::MethodNotAllowed { .. } => "method_not_allowed",
            HttpError::UnknownTenant => "unknown_tenant",
            HttpError::Unauthorized | HttpError::InvalidToken => "unauthorized",
            HttpError::AuthUnavailable => "auth_unavailable",
            HttpError::UnsupportedMediaType => "unsupported_media_type",
            HttpError::PayloadTooLarge { .. } => "payload_too_large",
            HttpError::BodyTimeout => "body_timeout",
            HttpError::BodyRead => "body_read",
            HttpError::BadRequest(_) => "bad_request",
            HttpError::Overloaded => "overloaded",
            HttpError::QueueFull => "queue_full",
            HttpError::StoreUnavailable => "store_unavailable",
        }
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = json_response(self.status(), error_body(&self.to_string()));
        match self {
            HttpError::MethodNotAllowed { allow } => {
                response
                    .headers_mut()
                    .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
            }
            HttpError::Overloaded | HttpError::AuthUnavailable => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The queue drains at the handler's pace: give it a little longer.
            HttpError::QueueFull | HttpError::StoreUnavailable => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            HttpError::Unauthorized => {
                // Okta's header auth is not an HTTP auth scheme; the header only tells a
                // human with curl what is expected.
                response.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Okta-Hook-Secret"),
                );
            }
            HttpError::InvalidToken => {
                // RFC 6750 §3: the scheme and the error code, never the reason.
                response.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}

// The `Retry-After: 1` of `AuthUnavailable` is the verifier's own advice.
const _: () = assert!(hookbox_oauth::verify::RETRY_AFTER.as_secs() == 1);

/// Okta's error body: `{"error":{"errorSummary": summary}}`.
pub(crate) fn error_body(summary: &str) -> Bytes {
    let body = serde_json::json!({ "error": { "errorSummary": summary } });
    Bytes::from(body.to_string())
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
