//! A small HTTPS client for calls hookbox makes to identity providers (the issuer's metadata and
//! JWKS here; the Okta Users API for the directory lookup).
//!
//! Invariants:
//! - HTTPS only: the connector refuses `http://` URLs, whatever the caller passes.
//! - The TLS stack is the server's: rustls 0.23 with the `ring` provider (no aws-lc), trusting the
//!   bundled web PKI roots (`webpki-roots`) plus, optionally, extra CAs from a PEM file.
//! - Every call is bounded: one timeout covers connecting, the TLS handshake, the response head
//!   and the body; a body is read up to [`MAX_BODY`] bytes and refused beyond.
//! - Redirects are not followed (an issuer that redirects its JWKS is misconfigured, and
//!   following would let a redirect move trust to another host).
//!
//! The client is cheap to clone (connections are pooled and shared between clones).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Largest response body read, in bytes (a JWKS is a few kilobytes).
pub const MAX_BODY: usize = 1024 * 1024;

/// The client could not be built (its trust roots).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read.
    #[error("reading CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM holds no certificate, or one rustls refuses.
    #[error("CA file {path}: {reason}")]
    CaPem {
        /// The file (or `<pem>` for in-memory PEM).
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration (should not happen with the ring provider).
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// One GET failed. The message never includes request headers (they may carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse or is not `https`.
    #[error("invalid URL '{0}' (https:// required)")]
    InvalidUrl(String),
    /// No complete response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("request failed: {0}")]
    Transport(String),
    /// The server answered with a non-success status (only from [`HttpsClient::get_json`]).
    #[error("HTTP status {0}")]
    Status(StatusCode),
    /// The body exceeded [`MAX_BODY`] or could not be read.
    #[error("reading the body: {0}")]
    Body(String),
    /// The body is not JSON (only from [`HttpsClient::get_json`]).
    #[error("the body is not JSON: {0}")]
    Json(String),
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Bytes,
}

/// The HTTPS client; see the module documentation.
#[derive(Clone)]
pub struct HttpsClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// A client trusting the web PKI roots plus the CAs in `ca_file`, if given.
    pub fn new(ca_file: Option<&Path>) -> Result<HttpsClient, ClientError> {
        let pem = match ca_file {
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read(path).map_err(|source| ClientError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?,
            )),
            None => None,
        };
        HttpsClient::build(pem.as_ref().map(|(p, b)| (p.as_str(), b.as_slice())))
    }

    /// A client trusting the web PKI roots plus the CAs in `ca_pem` (PEM text).
    pub fn with_extra_ca_pem(ca_pem: &[u8]) -> Result<HttpsClient, ClientError> {
        HttpsClient::build(Some(("<pem>", ca_pem)))
    }

    fn build(extra: Option<(&str, &[u8])>) -> Result<HttpsClient, ClientError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some((path, pem)) = extra {
            let bad = |reason: String| ClientError::CaPem {
                path: path.to_owned(),
                reason,
            };
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("no certificate in the file".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpsClient { client })
    }

    /// `GET url` with `headers`, reading the whole response within `timeout`, whatever its
    /// status (the caller decides what a 404 or a 429 means).
    pub async fn get(
        &self,
        url: &str,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<HttpResponse, FetchError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| FetchError::InvalidUrl(url.to_owned()))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(FetchError::InvalidUrl(url.to_owned()));
        }
        let mut request = Request::get(uri)
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::InvalidUrl(format!("{url}: {e}")))?;
        request.headers_mut().extend(headers.clone());
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Transport(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| FetchError::Body(error_chain(&*e)))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }

    /// `GET url` expecting a 2xx JSON answer: the parsed body and the response headers.
    pub async fn get_json(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<(serde_json::Value, HeaderMap), FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let response = self.get(url, &headers, timeout).await?;
        if !response.status.is_success() {
            return Err(FetchError::Status(response.status));
        }
        let value =
            serde_json::from_slice(&response.body).map_err(|e| FetchError::Json(e.to_string()))?;
        Ok((value, response.headers))
    }
}

/// An error and its sources on one line (hyper's top-level errors say little on their own: the
/// certificate problem is several sources down).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
