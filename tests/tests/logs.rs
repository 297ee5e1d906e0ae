//! What reaches the server's log: each tenant's plugin log volume is capped
//! per window (drops counted and reported once), an unknown tenant is
//! logged as such and never as the path text, and a client's values are
//! bounded and cannot forge lines.
//!
//! A test binary of its own, not a module of `e2e`: the capture is a
//! thread-local subscriber, and `tracing`'s per-callsite interest and
//! maximum level are process-wide, so dozens of other tests logging from
//! threads without a subscriber made a capture come back empty now and then.

use hookbox_tests::{LogCapture, TenantSpec, TestServer, misbehave_wasm, sample_request};

/// Plugin lines of the flood mode are 1 KiB of `x`.
const FLOOD_LINE: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn flooding(id: &str) -> TenantSpec {
    TenantSpec::new(id, misbehave_wasm())
        .setting("mode", "log-flood")
        .log_volume("8KiB")
        .log_window("10m")
}

#[tokio::test]
async fn plugin_log_volume_is_capped_per_tenant_and_the_drop_reported_once() {
    let log = LogCapture::start();
    let (noisy, other) = (flooding("noisy"), flooding("other"));
    let server = TestServer::start(&[noisy.clone(), other.clone()]).await;
    let client = server.client();
    for _ in 0..3 {
        let reply = client
            .hook("noisy", noisy.secret(), &sample_request())
            .await;
        assert_eq!(
            reply.status, 200,
            "over its log budget, a plugin still answers"
        );
    }
    let reply = client
        .hook("other", other.secret(), &sample_request())
        .await;
    assert_eq!(reply.status, 200);

    let plugin_lines = |tenant: &str| {
        log.lines_with(&format!("tenant={tenant}"))
            .into_iter()
            .filter(|l| l.contains(FLOOD_LINE))
            .count()
    };
    // 8 KiB of 1 KiB lines (the whole flood is 10,000 lines, 64 kept per request).
    assert_eq!(plugin_lines("noisy"), 8, "{}", log.text());
    // The other tenant's budget is its own.
    assert_eq!(plugin_lines("other"), 8);
    let over = |tenant: &str| {
        log.lines_with(&format!("tenant={tenant}"))
            .into_iter()
            .filter(|l| l.contains("dropping its lines until the window ends"))
            .count()
    };
    assert_eq!(over("noisy"), 1, "reported once per window");
    assert_eq!(over("other"), 1);
    // Once over budget, not even the per-request cap's warning is written.
    let capped = log.lines_with("over the per-call cap");
    assert!(capped.is_empty(), "{capped:?}");
}

#[tokio::test]
async fn an_unknown_tenant_is_logged_as_such_and_client_values_are_bounded() {
    let log = LogCapture::start();
    let t = TenantSpec::new("acme", misbehave_wasm()).setting("mode", "echo");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();

    let reply = client
        .hook(
            "paste-your-secret-SEKRIT42-here",
            t.secret(),
            &sample_request(),
        )
        .await;
    assert_eq!(reply.status, 404);
    let text = log.text();
    assert!(!text.contains("SEKRIT42"), "{text}");
    assert_eq!(
        log.lines_with("tenant=(unknown)")
            .iter()
            .filter(|l| l.contains("status=404"))
            .count(),
        1,
        "{text}"
    );

    // An event id that tries to forge a line, and one that is long.
    for event_id in [
        "evt\n2099-01-01T00:00:00Z  INFO forged: FORGED-LINE".to_owned(),
        "E".repeat(10_000),
    ] {
        let mut req = sample_request();
        req["eventId"] = event_id.into();
        let reply = client.hook("acme", t.secret(), &req).await;
        assert_eq!(reply.status, 200);
    }
    let text = log.text();
    assert!(
        text.lines()
            .all(|l| !l.contains("FORGED-LINE") || l.contains("tenant=acme")),
        "a client value started a line of its own: {text}"
    );
    let longest_e_run = text
        .split(|c: char| c != 'E')
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_e_run <= 64,
        "an unbounded client value: {longest_e_run} bytes"
    );
    assert!(
        text.contains(&"E".repeat(64)),
        "the event id is still logged, cut"
    );
}

#[tokio::test]
async fn a_wrong_directory_token_is_denied_and_neither_token_nor_login_is_logged() {
    use hookbox_directory::testing::{FakeOkta, TOKEN};
    let log = LogCapture::start();
    let okta = FakeOkta::start().await.expect("the fake Okta starts");
    // Okta expects another token than the one the tenant has: 401.
    okta.set_token("00sOmE-oThEr-tOkEn");
    let t = TenantSpec::new("acme", hookbox_tests::login_conflict_wasm())
        .directory(&okta.url(), TOKEN, okta.ca_pem())
        .deadline("2s");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let mut req = sample_request();
    req["eventId"] = "directory-denied".into();
    req["data"]["appUser"]["profile"]["middleName"] = "Quentin".into();
    let reply = server.client().hook("acme", t.secret(), &req).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["debugContext"]["directory"], "denied", "{body}");
    assert_eq!(body["debugContext"]["rule"], "hashed-suffix", "{body}");
    assert_eq!(
        okta.request_count(),
        1,
        "one lookup, then the plugin stops asking"
    );
    let login = reply.new_login().expect("a login");

    let text = log.text();
    // Okta's refusal is logged, for the operator, by the directory and the plugin.
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("401") && l.contains("E0000011")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("tenant=acme") && l.contains("directory lookup failed (denied)")),
        "{text}"
    );
    for secret in [TOKEN, "00sOmE-oThEr-tOkEn"] {
        assert!(!text.contains(secret), "a token in the log: {text}");
    }
    // Neither the login looked up (Sally2 Quentin Admin2's name-only login)
    // nor the one answered.
    for needle in ["sally2.quentin.admin2", login.as_str()] {
        assert!(!text.contains(needle), "{needle} in the log: {text}");
    }
    server.stop().await.expect("the server stops");
}

#[tokio::test]
async fn a_tenant_turning_heavy_is_logged_once_naming_it() {
    let log = LogCapture::start();
    // 100 ms of spinning: about 20 ticks, each giving a slot back past the mark.
    let t = TenantSpec::new("spinner", misbehave_wasm())
        .setting("mode", "loop")
        .deadline("100ms");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let reply = server
        .client()
        .hook("spinner", t.secret(), &sample_request())
        .await;
    assert_eq!(reply.status, 200);
    assert!(server.cpu().is_heavy("spinner"));
    let lines = log.lines_with("background priority");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("tenant=spinner"), "{lines:?}");
}
