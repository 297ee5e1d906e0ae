//! Every class of bad input gets its status and an Okta-style JSON error body;
//! the plugin never runs for any of them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookbox_tests::{Proto, Reply, TenantSpec, TestServer, misbehave_wasm, sample_request};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A tenant whose plugin traps: a 200 with a trap summary would mean it ran.
fn tenant() -> TenantSpec {
    TenantSpec::new("acme", misbehave_wasm()).setting("mode", "trap")
}

async fn send(server: &TestServer, req: Request<Full<Bytes>>) -> Reply {
    server.client().connect(Proto::H1).await.send(req).await
}

fn assert_error(reply: &Reply, status: u16, needle: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.headers["content-type"], "application/json");
    let summary = reply.error_summary().unwrap_or_default();
    assert!(
        summary.contains(needle),
        "expected '{needle}' in '{summary}'"
    );
}

#[tokio::test]
async fn malformed_and_invalid_bodies_are_400_naming_the_field() {
    let t = tenant();
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let mut wrong_type = sample_request();
    wrong_type["eventType"] = "com.okta.oauth2.tokens.transform".into();
    let mut missing = sample_request();
    missing["data"]["user"]
        .as_object_mut()
        .unwrap()
        .remove("profile");
    let mut bad_action = sample_request();
    bad_action["data"]["action"]["result"] = "MAYBE".into();
    let mut bad_conflicts = sample_request();
    bad_conflicts["data"]["context"]["conflicts"] = 7.into();
    let cases = [
        ("{\"eventId\":".to_owned(), "malformed JSON"),
        ("[\"a\", \"b\", \"c\", \"d\", {}]".to_owned(), "JSON object"),
        (wrong_type.to_string(), "eventType"),
        (missing.to_string(), "data.user: missing field `profile`"),
        (bad_action.to_string(), "data.action.result"),
        (bad_conflicts.to_string(), "data.context.conflicts"),
    ];
    for (body, needle) in cases {
        let reply = send(
            &server,
            client.hook_request("acme", Some(("authorization", t.secret())), body),
        )
        .await;
        assert_error(&reply, 400, needle);
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let t = tenant();
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let mut req = client.hook_request(
        "acme",
        Some(("authorization", t.secret())),
        sample_request().to_string(),
    );
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    assert_error(&send(&server, req).await, 415, "application/json");
    let mut req = client.hook_request(
        "acme",
        Some(("authorization", t.secret())),
        sample_request().to_string(),
    );
    req.headers_mut().remove(CONTENT_TYPE);
    assert_error(&send(&server, req).await, 415, "application/json");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .body_limit("4KiB")
        .start()
        .await;
    let client = server.client();
    let mut big = sample_request();
    big["data"]["appUser"]["profile"]["padding"] = "x".repeat(8 * 1024).into();
    let reply = send(
        &server,
        client.hook_request("acme", Some(("authorization", t.secret())), big.to_string()),
    )
    .await;
    assert_error(&reply, 413, "larger than 4096 bytes");
    // Within the limit the same tenant is served (and its plugin runs: trap mode).
    let reply = client.hook("acme", t.secret(), &sample_request()).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn unknown_tenant_and_routes_are_404_without_listing_tenants() {
    let t = tenant();
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let reply = client.hook("nobody", t.secret(), &sample_request()).await;
    assert_error(&reply, 404, "unknown tenant");
    assert!(!String::from_utf8_lossy(&reply.body).contains("acme"));
    for path in [
        "/",
        "/hooks/acme",
        "/hooks/acme/import/x",
        "/hooks//import",
        "/admin",
    ] {
        let reply = send(&server, client.request(Method::POST, path, Bytes::new())).await;
        assert_error(&reply, 404, "no such route");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let t = tenant();
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let reply = send(
        &server,
        client.request(Method::GET, "/hooks/acme/import", Bytes::new()),
    )
    .await;
    assert_error(&reply, 405, "POST");
    assert_eq!(reply.headers["allow"], "POST");
    let reply = send(
        &server,
        client.request(Method::POST, "/healthz", Bytes::new()),
    )
    .await;
    assert_error(&reply, 405, "GET");
    let reply = send(
        &server,
        client.request(Method::GET, "/healthz", Bytes::new()),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ok");
}

#[tokio::test]
async fn unauthenticated_requests_are_refused_before_the_body_is_judged() {
    let t = tenant();
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let mut req = client.hook_request("acme", None, "not json at all".into());
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    assert_error(&send(&server, req).await, 401, "credentials");
}

/// Okta gives a hook 3 s: a body that stops arriving must not hold the
/// connection past `request_timeout`. The answer is a 408 in Okta's error format.
#[tokio::test]
async fn a_stalled_body_is_408_after_the_request_timeout() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .request_timeout("300ms")
        .start()
        .await;
    let mut tls = server.client().connect_raw().await;
    let head = format!(
        "POST /hooks/acme/import HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"eventType\":",
        t.secret()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    // The server answers and closes; the test's own timeout only guards against a hang.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut answer)).await;
    let waited = started.elapsed();
    assert!(read.is_ok(), "no answer to a stalled body after {waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(answer.contains("\"errorSummary\""), "{answer}");
    assert!(
        waited >= Duration::from_millis(250),
        "answered before the timeout: {waited:?}"
    );
}

/// A client that connects and never starts TLS is dropped after
/// `handshake_timeout`: idle sockets cannot pile up until the connection cap.
#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let t = tenant();
    let server = TestServer::builder()
        .tenant(t.clone())
        .handshake_timeout("300ms")
        .start()
        .await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await;
    let waited = started.elapsed();
    // Closed by the server: end of stream (or a reset), never data.
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection still open or sent data after {waited:?}: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "closed before the timeout: {waited:?}"
    );
    // The server still serves after dropping it.
    let reply = server
        .client()
        .hook("acme", t.secret(), &sample_request())
        .await;
    assert_error(&reply, 200, "trap");
}
