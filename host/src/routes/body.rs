//! Reading a request's JSON body within the server's limits: the declared
//! and actual size (`server.body_limit`) and the time it may take to arrive
//! (`server.request_timeout`).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use crate::config::ServerConfig;
use crate::error::HttpError;

/// The body of `req`, refused as [`HttpError::UnsupportedMediaType`] unless it
/// is declared JSON, and as too large or too slow past the server's limits.
pub(super) async fn read_json(
    server: &ServerConfig,
    req: Request<Incoming>,
) -> Result<Bytes, HttpError> {
    if !is_json(req.headers().get(CONTENT_TYPE)) {
        return Err(HttpError::UnsupportedMediaType);
    }
    let limit = server.body_limit;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
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
    match tokio::time::timeout(server.request_timeout, limited.collect()).await {
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

/// `application/json`, with or without parameters (`; charset=UTF-8`).
fn is_json(value: Option<&HeaderValue>) -> bool {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = v.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

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
