//! Every phase of a connection has a deadline: a client that completes the
//! TLS handshake and goes silent, sends its head slowly, idles on a
//! keep-alive connection (HTTP/1.1, or HTTP/2 answering PINGs), or never
//! reads its answers is disconnected at its configured time; a flood of
//! silent connections at `max_connections` does not lock normal clients
//! out; request heads are limited to the same size in both protocols.
//!
//! Each test asserts that the server closed the connection (end of stream
//! or a reset, seen by reading); the configured timeouts are short and the
//! test's own timeout only guards against a hang. The only time checks are
//! lower bounds (not cut before the configured time), which a slow machine
//! cannot break.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookbox_tests::{Proto, TenantSpec, TestServer, misbehave_wasm, sample_request};
use http_body_util::{BodyExt as _, Full};
use hyper::Method;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

/// Long enough that a deadline the test is not about never fires first.
const NEVER: &str = "60s";

/// Guards against a hang: far above every configured deadline.
const GUARD: Duration = Duration::from_secs(20);

fn tenant() -> TenantSpec {
    TenantSpec::new("acme", misbehave_wasm()).setting("mode", "echo")
}

/// Reads until the server closes the connection; returns what was read and
/// how long it took. Panics if it is still open after [`GUARD`].
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut read = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(GUARD, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {:?}; read {} bytes: {:?}",
                started.elapsed(),
                read.len(),
                String::from_utf8_lossy(&read[..read.len().min(200)])
            ),
            Ok(Ok(0) | Err(_)) => return (read, started.elapsed()),
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
        }
    }
}

fn at_least(waited: Duration, configured_ms: u64) {
    assert!(
        waited >= Duration::from_millis(configured_ms * 8 / 10),
        "cut before its {configured_ms}ms deadline: {waited:?}"
    );
}

#[tokio::test]
async fn a_silent_client_after_the_handshake_is_cut_whatever_it_negotiated() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .header_timeout("300ms")
        .idle_timeout(NEVER)
        .start()
        .await;
    let client = server.client();
    for alpn in [&[b"http/1.1".as_slice()][..], &[b"h2"], &[]] {
        let mut tls = client.connect_tls(alpn, None).await;
        let (read, waited) = until_closed(&mut tls).await;
        at_least(waited, 300);
        if alpn != [b"h2"] {
            assert!(read.is_empty(), "{alpn:?}: sent {read:?}");
        }
    }
    // A partial HTTP/2 preface is no better than silence.
    let mut tls = client.connect_tls(&[b"h2"], None).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tls.flush().await.unwrap();
    let (_, waited) = until_closed(&mut tls).await;
    at_least(waited, 300);
    // The server still serves.
    let reply = client.hook("acme", t.secret(), &sample_request()).await;
    assert_eq!(reply.status, 200);
}

/// The head's timer is not reset by bytes: a client trickling one header
/// line at a time is cut at `header_timeout`, unanswered.
#[tokio::test]
async fn a_trickled_head_is_cut_at_the_header_timeout() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t)
        .header_timeout("500ms")
        .idle_timeout(NEVER)
        .start()
        .await;
    let tls = server.client().connect_tls(&[b"http/1.1"], None).await;
    let (mut rx, mut tx) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        let mut line: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n";
        while tx.write_all(line).await.is_ok() && tx.flush().await.is_ok() {
            line = b"x-slow: y\r\n";
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (read, waited) = until_closed(&mut rx).await;
    trickle.abort();
    at_least(waited, 500);
    assert!(
        read.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&read)
    );
}

/// The same for the next request's head on a keep-alive connection: idle
/// time is its own budget, but once a byte arrives the head must follow.
#[tokio::test]
async fn a_stalled_second_head_is_cut_at_the_header_timeout() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t)
        .header_timeout("400ms")
        .idle_timeout(NEVER)
        .start()
        .await;
    let mut tls = server.client().connect_tls(&[b"http/1.1"], None).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // The whole first answer (a small JSON object), then half a head.
    let mut first = Vec::new();
    while !first.ends_with(b"}") {
        let mut buf = [0u8; 4096];
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        first.extend_from_slice(&buf[..n]);
    }
    assert!(first.starts_with(b"HTTP/1.1 200"));
    tls.write_all(b"GET /heal").await.unwrap();
    tls.flush().await.unwrap();
    let (read, waited) = until_closed(&mut tls).await;
    at_least(waited, 400);
    assert!(read.is_empty(), "{}", String::from_utf8_lossy(&read));
}

/// Sends `bytes` on a new HTTP/1.1 connection to a server whose only
/// deadline is a 300 ms `idle_timeout`, and reads until the server closes it
/// (not before that deadline); returns what was read.
async fn read_until_idle_cut(bytes: &[u8]) -> String {
    let server = TestServer::builder()
        .tenant(tenant())
        .header_timeout(NEVER)
        .idle_timeout("300ms")
        .start()
        .await;
    let mut tls = server.client().connect_tls(&[b"http/1.1"], None).await;
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let (read, waited) = until_closed(&mut tls).await;
    at_least(waited, 300);
    String::from_utf8_lossy(&read).into_owned()
}

/// Half a head pipelined in the same write as a whole request reaches the
/// server before the first answer, so no read comes after it to start the
/// head's timer: the connection is idle as far as the deadlines know, and is
/// held exactly as long as an idle one (`idle_timeout`), never longer. It
/// gives a client nothing that silence after an answer does not.
#[tokio::test]
async fn a_pipelined_partial_head_is_held_no_longer_than_an_idle_connection() {
    let read =
        read_until_idle_cut(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\nGET /heal").await;
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    assert_eq!(read.matches("HTTP/1.1").count(), 1, "{read}");
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let read = read_until_idle_cut(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await;
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
}

/// Sends Okta's sample to `t` over a new HTTP/2 connection made by `h2`
/// (given a timer here); returns the answer's head (status 200 checked,
/// body unread), the connection's task and its sender, which keeps the
/// client's side open while held (dropped, the client closes once idle).
async fn h2_sample(
    server: &TestServer,
    t: &TenantSpec,
    mut h2: hyper::client::conn::http2::Builder<TokioExecutor>,
) -> (
    hyper::Response<hyper::body::Incoming>,
    tokio::task::JoinHandle<hyper::Result<()>>,
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
) {
    let tls = server.client().connect_tls(&[b"h2"], None).await;
    let (mut send, conn) = h2
        .timer(TokioTimer::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = server.client().hook_request(
        "acme",
        Some(("authorization", t.secret())),
        sample_request().to_string(),
    );
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(hyper::header::HOST);
    let reply = send
        .send_request(hyper::Request::from_parts(parts, body))
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    (reply, conn, send)
}

/// A client that answers PINGs (every HTTP/2 stack does, and this one sends
/// its own every 50 ms) still loses an idle connection at `idle_timeout`:
/// the server says GOAWAY and the connection ends.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_although_it_answers_pings() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .header_timeout(NEVER)
        .idle_timeout("400ms")
        .start()
        .await;
    let mut h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    h2.keep_alive_interval(Duration::from_millis(50))
        .keep_alive_while_idle(true);
    let (reply, conn, _send) = h2_sample(&server, &t, h2).await;
    reply.into_body().collect().await.unwrap();
    let idle_since = Instant::now();
    let ended = tokio::time::timeout(GUARD, conn).await;
    assert!(
        ended.is_ok(),
        "HTTP/2 connection still open after {GUARD:?}"
    );
    at_least(idle_since.elapsed(), 400);
}

/// An HTTP/2 client that never opens its stream window (initial window 0,
/// no WINDOW_UPDATE): the answer's headers go out, its body never can, so
/// the stream never ends and no socket write ever stalls. Once the service
/// has answered, the connection counts as idle: GOAWAY at `idle_timeout`,
/// and cut `write_timeout` later, since the goodbye cannot finish either.
#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_is_cut() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .header_timeout(NEVER)
        .idle_timeout("300ms")
        .write_timeout("300ms")
        .start()
        .await;
    let mut h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    h2.initial_stream_window_size(0);
    let (reply, conn, _send) = h2_sample(&server, &t, h2).await;
    let answered = Instant::now();
    // The body cannot arrive; reading it ends only when the server closes.
    let body = tokio::time::timeout(GUARD, reply.into_body().collect()).await;
    let body = body.expect("the connection was cut, not left open");
    assert!(body.is_err(), "the body arrived: the window was opened");
    at_least(answered.elapsed(), 300 + 300);
    assert!(tokio::time::timeout(GUARD, conn).await.is_ok());
    // The server still serves.
    let reply = server
        .client()
        .hook("acme", t.secret(), &sample_request())
        .await;
    assert_eq!(reply.status, 200);
}

/// A client that pipelines requests and never reads the answers: once the
/// answers fill the socket buffers, the server's write stalls and the
/// connection is cut at `write_timeout` (the client's writes then fail).
#[tokio::test]
async fn a_client_that_never_reads_is_cut_at_the_write_timeout() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .write_timeout("300ms")
        .header_timeout(NEVER)
        .idle_timeout(NEVER)
        .start()
        .await;
    let tls = server
        .client()
        .connect_tls(&[b"http/1.1"], Some(4096))
        .await;
    let (mut rx, mut tx) = tokio::io::split(tls);
    let requests = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(100);
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        loop {
            if let Err(e) = tx.write_all(&requests).await {
                return (sent, e);
            }
            sent += 100;
        }
    });
    let ended = tokio::time::timeout(Duration::from_secs(60), writer).await;
    let (sent, error) = ended
        .expect("the server never cut a client that does not read")
        .unwrap();
    assert!(sent > 0, "{error}");
    // Reading now finds the end (after whatever answers were still buffered).
    until_closed(&mut rx).await;
    // Others are served meanwhile and after.
    let reply = server
        .client()
        .hook("acme", t.secret(), &sample_request())
        .await;
    assert_eq!(reply.status, 200);
}

/// `max_connections` silent TLS clients (their head would not be due for a
/// minute) do not lock a normal client out: at the cap, the connection idle
/// the longest is closed to make room.
#[tokio::test]
async fn a_flood_of_silent_connections_does_not_lock_out_a_normal_client() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .max_connections(4)
        .header_timeout(NEVER)
        .idle_timeout(NEVER)
        .start()
        .await;
    let client = server.client();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(client.connect_tls(&[b"http/1.1"], None).await);
    }
    let reply = tokio::time::timeout(GUARD, client.hook("acme", t.secret(), &sample_request()))
        .await
        .expect("a normal client was locked out by silent connections");
    assert_eq!(reply.status, 200);
    // The oldest silent connection made room.
    let (read, _) = until_closed(&mut silent[0]).await;
    assert!(read.is_empty());
    // Again, and on HTTP/2.
    let mut conn = client.connect(Proto::H2).await;
    let reply = conn
        .send(client.request(Method::GET, "/healthz", Bytes::new()))
        .await;
    assert_eq!(reply.status, 200);
}

/// Request heads are limited to `max_header_size` in both protocols
/// (431 in HTTP/1.1; in HTTP/2 the stream is refused), and the limit is
/// configurable.
#[tokio::test]
async fn request_heads_are_limited_alike_in_both_protocols() {
    let t = tenant();
    let big = "x".repeat(20 * 1024);
    let small = "x".repeat(8 * 1024);
    for (limit, allowed) in [(None, false), (Some("32KiB"), true)] {
        let mut setup = TestServer::builder().tenant(t.clone());
        if let Some(limit) = limit {
            setup = setup.max_header_size(limit);
        }
        let server = setup.start().await;
        let client = server.client();
        for proto in [Proto::H1, Proto::H2] {
            for (value, ok) in [(&small, true), (&big, allowed)] {
                let mut req = client.request(Method::GET, "/healthz", Bytes::new());
                req.headers_mut().insert("x-big", value.parse().unwrap());
                let status = send_status(client.connect(proto).await, req).await;
                if ok {
                    assert_eq!(status, Some(200), "{proto:?} {limit:?} {}", value.len());
                } else {
                    assert!(
                        matches!(status, None | Some(431)),
                        "{proto:?} {limit:?}: {status:?}"
                    );
                }
            }
        }
    }
}

/// The status of `req`'s answer, `None` if the request failed as a whole.
async fn send_status(
    conn: hookbox_tests::Conn,
    mut req: hyper::Request<Full<Bytes>>,
) -> Option<u16> {
    let response = match conn {
        hookbox_tests::Conn::H1(mut s) => s.send_request(req).await,
        hookbox_tests::Conn::H2(mut s) => {
            req.headers_mut().remove(hyper::header::HOST);
            s.send_request(req).await
        }
    };
    response.ok().map(|r| r.status().as_u16())
}

/// A drain gives requests in flight `shutdown_grace` to finish; a
/// connection still busy past it is closed (its plugin call dropped), not
/// left to run on after `serve` returned.
#[tokio::test]
async fn a_connection_still_busy_when_the_shutdown_grace_ends_is_closed() {
    let slow = TenantSpec::new("slow", misbehave_wasm())
        .setting("mode", "loop")
        .deadline("2500ms");
    let server = TestServer::builder()
        .tenant(slow.clone())
        .shutdown_grace("200ms")
        .start()
        .await;
    let free = server.tenant("slow").free_permits();
    let held = {
        let (client, secret) = (server.client(), slow.secret().to_owned());
        tokio::spawn(async move {
            client
                .try_hook("slow", &secret, &hookbox_tests::fresh_sample())
                .await
        })
    };
    // In flight once it holds a permit (observed, not slept for).
    while server.tenant("slow").free_permits() >= free {
        tokio::task::yield_now().await;
    }
    server.stop().await.expect("the server stops cleanly");
    // Left to run on, the plugin would have been answered at its deadline
    // (a 200 naming it); closed at the grace, the request has no answer.
    let reply = tokio::time::timeout(GUARD, held)
        .await
        .expect("the request ended")
        .expect("the client task");
    assert!(reply.is_err(), "answered after the grace: {reply:?}");
}
