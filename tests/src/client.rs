//! An HTTPS client (HTTP/1.1 and HTTP/2) that trusts only the test CA, and
//! the answers it sees.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An answer as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.errorSummary`, if the body has one.
    pub fn error_summary(&self) -> Option<String> {
        self.json()["error"]["errorSummary"]
            .as_str()
            .map(str::to_owned)
    }

    /// The new `login` of the first `com.okta.user.profile.update` command.
    pub fn new_login(&self) -> Option<String> {
        let v = self.json();
        v["commands"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "com.okta.user.profile.update")
            .and_then(|c| c["value"]["login"].as_str().map(str::to_owned))
    }
}

/// An HTTPS client that trusts only the test CA.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

/// One open connection (keep-alive: several requests may use it).
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// The HTTP version a connection negotiates through ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

impl Client {
    pub fn new(addr: SocketAddr, ca: &CertificateDer<'static>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: Arc::new(config),
        }
    }

    /// A TLS connection (HTTP/1.1 by ALPN) to write raw bytes on: for what a
    /// well-behaved HTTP client never sends, such as a body that stalls.
    pub async fn connect_raw(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.tls(b"http/1.1").await
    }

    /// A TLS connection to the server offering only `alpn`.
    async fn tls(&self, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.connect_tls(&[alpn], None).await
    }

    /// A TLS connection offering these ALPN protocols (none: no ALPN at
    /// all), its socket's receive buffer set to `recv_buffer` bytes if
    /// given (a client that reads slowly, or not at all, fills it fast).
    pub async fn connect_tls(
        &self,
        alpn: &[&[u8]],
        recv_buffer: Option<u32>,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let tcp = socket.connect(self.addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// Opens a TLS connection offering only `proto` in ALPN.
    pub async fn connect(&self, proto: Proto) -> Conn {
        let tls = self
            .tls(match proto {
                Proto::H1 => b"http/1.1",
                Proto::H2 => b"h2",
            })
            .await;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        match proto {
            Proto::H1 => {
                assert_eq!(
                    negotiated.as_deref(),
                    Some(&b"http/1.1"[..]),
                    "server must accept http/1.1"
                );
                let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                Conn::H1(send)
            }
            Proto::H2 => {
                assert_eq!(
                    negotiated.as_deref(),
                    Some(&b"h2"[..]),
                    "server must accept h2"
                );
                let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                Conn::H2(send)
            }
        }
    }

    /// POSTs `body` to the tenant's hook with `Authorization: secret` over a new HTTP/1.1 connection.
    pub async fn hook(&self, tenant: &str, secret: &str, body: &Value) -> Reply {
        let mut conn = self.connect(Proto::H1).await;
        conn.send(self.hook_request(tenant, Some(("authorization", secret)), body.to_string()))
            .await
    }

    /// [`Client::hook`] for a server that may die on the way (a test that
    /// kills it): every failure (refused, reset, cut mid-answer) is an
    /// `Err` rather than a panic. `Ok` only for an answer read to its end.
    pub async fn try_hook(
        &self,
        tenant: &str,
        secret: &str,
        body: &Value,
    ) -> Result<Reply, String> {
        let req = self.hook_request(tenant, Some(("authorization", secret)), body.to_string());
        self.try_send(req).await
    }

    /// [`Client::events`] as [`Client::try_hook`] is to [`Client::hook`].
    pub async fn try_events(
        &self,
        tenant: &str,
        secret: &str,
        body: &Value,
    ) -> Result<Reply, String> {
        let mut req = self.hook_request(tenant, Some(("authorization", secret)), body.to_string());
        *req.uri_mut() = format!(
            "https://127.0.0.1:{}/hooks/{tenant}/events",
            self.addr.port()
        )
        .parse()
        .unwrap();
        self.try_send(req).await
    }

    /// `req` on a new HTTP/1.1 connection, every failure an `Err`.
    async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let response = send
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// POSTs an event hook delivery to the tenant's `/hooks/{tenant}/events`
    /// with `Authorization: secret`.
    pub async fn events(&self, tenant: &str, secret: &str, body: &Value) -> Reply {
        self.events_raw(tenant, secret, body.to_string()).await
    }

    /// [`Client::events`] with a body as given (e.g. malformed).
    pub async fn events_raw(&self, tenant: &str, secret: &str, body: String) -> Reply {
        let mut req = self.hook_request(tenant, Some(("authorization", secret)), body);
        *req.uri_mut() = format!(
            "https://127.0.0.1:{}/hooks/{tenant}/events",
            self.addr.port()
        )
        .parse()
        .unwrap();
        self.connect(Proto::H1).await.send(req).await
    }

    /// Okta's one-time verification `GET /hooks/{tenant}/events`, with the
    /// challenge header if given and `Authorization: secret`.
    pub async fn verify_events(
        &self,
        tenant: &str,
        secret: &str,
        challenge: Option<&str>,
    ) -> Reply {
        let mut req = self.request(
            Method::GET,
            &format!("/hooks/{tenant}/events"),
            Bytes::new(),
        );
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(secret).unwrap());
        if let Some(c) = challenge {
            req.headers_mut().insert(
                "x-okta-verification-challenge",
                HeaderValue::from_str(c).unwrap(),
            );
        }
        self.connect(Proto::H1).await.send(req).await
    }

    /// A hook request with JSON content type and, if given, one auth header.
    pub fn hook_request(
        &self,
        tenant: &str,
        auth: Option<(&str, &str)>,
        body: String,
    ) -> Request<Full<Bytes>> {
        let mut req = self.request(
            Method::POST,
            &format!("/hooks/{tenant}/import"),
            Bytes::from(body),
        );
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some((name, value)) = auth {
            req.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        req
    }

    /// A bare request (absolute URI, so it suits both HTTP versions).
    pub fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{}{path}", self.addr.port()))
            .header(
                hyper::header::HOST,
                format!("127.0.0.1:{}", self.addr.port()),
            )
            .body(Full::new(body))
            .unwrap()
    }
}

impl Conn {
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Reply {
        let response = match self {
            Conn::H1(s) => s.send_request(req).await.unwrap(),
            Conn::H2(s) => {
                // HTTP/2 carries the authority in :authority; a Host header as well is redundant.
                req.headers_mut().remove(hyper::header::HOST);
                s.send_request(req).await.unwrap()
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}
