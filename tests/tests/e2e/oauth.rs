//! OAuth 2.0 bearer tokens through the real host over real HTTPS, against a
//! real HTTPS issuer on loopback (`hookbox_oauth::testing::FakeIssuer`, keys
//! generated per issuer, its own test CA given to hookbox as a relative
//! `ca_file`).
//!
//! "The plugin never runs" is observed, not assumed: the tenants here run the
//! misbehave guest's `counter` mode on one reused instance, which answers how
//! many calls it has served. A refused request in between two accepted ones
//! would show as a skipped count.

use std::hash::{BuildHasher, RandomState};

use hookbox::reload::Change;
use hookbox_oauth::testing::{
    CLIENT_ID, FakeIssuer, SCOPE, alg_none_token, hs256_token, tamper_signature,
};
use hookbox_tests::{Client, Proto, Reply, Setup, TenantSpec, TestServer, misbehave_wasm};
use serde_json::{Value, json};

/// A tenant counting its plugin's calls on one warm instance, OAuth only.
fn counter(id: &str, issuer: &FakeIssuer) -> TenantSpec {
    TenantSpec::new(id, misbehave_wasm())
        .setting("mode", "counter")
        .instance_mode("reuse")
        .max_concurrency(1)
        .oauth(issuer)
        .no_secrets()
}

/// A new import request (its own `eventId`: a repeated one is Okta's retry,
/// answered from the store without calling the plugin).
fn request(event: &str) -> Value {
    let mut req = hookbox_tests::sample_request();
    req["eventId"] = json!(format!("{event}-{}", hookbox_tests::fresh_event_id()));
    req
}

async fn with_bearer(client: &Client, tenant: &str, token: &str) -> Reply {
    client
        .hook(tenant, &format!("Bearer {token}"), &request("ok"))
        .await
}

/// The plugin's call count of an accepted request.
fn calls(reply: &Reply) -> i64 {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    body["commands"][0]["value"]["calls"]
        .as_i64()
        .unwrap_or_else(|| panic!("no call count in {body}"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}");
    assert_eq!(
        reply.error_summary().as_deref(),
        Some("missing or invalid credentials"),
        "{what}: Okta's error body, saying nothing about the check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_runs_the_plugin_and_every_bad_one_is_refused_before_it() {
    let issuer = FakeIssuer::start().await.unwrap();
    let server = TestServer::start(&[counter("acme", &issuer)
        .oauth_key("client_id", CLIENT_ID)
        .oauth_key("scope", SCOPE)])
    .await;
    let client = server.client();
    let kid = issuer.current_kid();
    let valid = issuer.claims();
    assert_eq!(
        calls(&with_bearer(&client, "acme", &issuer.mint(&valid, &kid)).await),
        1
    );

    let with = |patch: Value| {
        let mut claims = valid.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let other = FakeIssuer::start().await.unwrap();
    let bad: Vec<(&str, String)> = vec![
        (
            "expired",
            issuer.mint(
                &with(json!({"exp": now() - 3600, "nbf": now() - 7200})),
                &kid,
            ),
        ),
        (
            "not yet valid",
            issuer.mint(
                &with(json!({"nbf": now() + 3600, "exp": now() + 7200})),
                &kid,
            ),
        ),
        (
            "wrong audience",
            issuer.mint(&with(json!({"aud": "api://other"})), &kid),
        ),
        (
            "wrong issuer",
            issuer.mint(&with(json!({"iss": other.issuer()})), &kid),
        ),
        (
            "wrong cid",
            issuer.mint(&with(json!({"cid": "0oa-someone-else"})), &kid),
        ),
        (
            "missing scope",
            issuer.mint(&with(json!({"scp": ["other.scope"]})), &kid),
        ),
        (
            "tampered signature",
            tamper_signature(&issuer.mint(&valid, &kid)),
        ),
        ("alg none", alg_none_token(&valid, &kid)),
        (
            "HS256 signed with the public key",
            hs256_token(&valid, &kid, issuer.public_key_pem(&kid).as_bytes()),
        ),
        (
            "another issuer's key",
            other.mint(&with(json!({"iss": issuer.issuer()})), &other.current_kid()),
        ),
    ];
    for (what, token) in &bad {
        let reply = with_bearer(&client, "acme", token).await;
        assert_refused(&reply, what);
        assert_eq!(
            reply.headers["www-authenticate"], "Bearer error=\"invalid_token\"",
            "{what}"
        );
    }
    // Not a bearer token at all: an OAuth-only tenant has no secret to compare it with.
    assert_refused(
        &client.hook("acme", "secret-acme", &request("ok")).await,
        "a secret",
    );

    // Refused before the body is read: a body that would be a 415 is never looked at.
    let mut conn = client.connect(Proto::H1).await;
    let mut req = client.hook_request(
        "acme",
        Some(("authorization", &format!("Bearer {}", bad[0].1))),
        "not json".into(),
    );
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_refused(&conn.send(req).await, "expired, with a non-JSON body");

    // The plugin's second call: none of the refused requests reached it.
    assert_eq!(
        calls(&with_bearer(&client, "acme", &issuer.mint(&valid, &kid)).await),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_after_one_refresh() {
    let issuer = FakeIssuer::start().await.unwrap();
    let server = TestServer::start(&[counter("acme", &issuer)]).await;
    let client = server.client();
    assert_eq!(issuer.fetch_count(), 1, "keys fetched once at start");

    let new_kid = issuer.rotate();
    let token = issuer.mint(&issuer.claims(), &new_kid);
    assert_eq!(calls(&with_bearer(&client, "acme", &token).await), 1);
    assert_eq!(issuer.fetch_count(), 2, "one refresh for the new kid");
    assert_eq!(calls(&with_bearer(&client, "acme", &token).await), 2);
    assert_eq!(issuer.fetch_count(), 2, "the new key is cached");
    let verifier = server.tenant("acme").oauth().cloned().unwrap();
    assert_eq!(verifier.fetch_count(), 2);
    assert!(verifier.health().is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_kids_cost_the_issuer_at_most_the_configured_fetches() {
    let issuer = FakeIssuer::start().await.unwrap();
    // One unknown-kid refresh per hour: the run may cost the start-up fetch and one more.
    let server =
        TestServer::start(&[counter("acme", &issuer).oauth_key("min_refresh_interval", "1h")])
            .await;
    let client = server.client();
    let kid = issuer.current_kid();
    let claims = issuer.claims();
    let seed = RandomState::new();
    let tokens: Vec<String> = (0..1000u64)
        .map(|i| issuer.mint_as(&claims, &kid, &format!("forged-{:016x}", seed.hash_one(i))))
        .collect();
    let mut tasks = Vec::new();
    for chunk in tokens.chunks(125) {
        let (client, chunk) = (client.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect(Proto::H1).await;
            let mut statuses = Vec::new();
            for token in chunk {
                let req = client.hook_request(
                    "acme",
                    Some(("authorization", &format!("Bearer {token}"))),
                    request("ok").to_string(),
                );
                statuses.push(conn.send(req).await.status);
            }
            statuses
        }));
    }
    let mut refused = 0;
    for task in tasks {
        for status in task.await.unwrap() {
            assert_eq!(status, 401);
            refused += 1;
        }
    }
    assert_eq!(refused, 1000);
    assert!(
        issuer.fetch_count() <= 2,
        "{} JWKS fetches for 1,000 forged kids",
        issuer.fetch_count()
    );
    // The plugin never ran, and a valid token still does.
    let valid = issuer.mint(&claims, &kid);
    assert_eq!(calls(&with_bearer(&client, "acme", &valid).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_unavailable_is_a_503_within_the_deadline_and_known_keys_still_verify() {
    for stall in [false, true] {
        let issuer = FakeIssuer::start().await.unwrap();
        let server = TestServer::builder()
            .request_timeout("1s")
            .tenant(counter("acme", &issuer).oauth_key("fetch_timeout", "300ms"))
            .start()
            .await;
        let client = server.client();
        let old_kid = issuer.current_kid();
        let new_kid = issuer.rotate();
        if stall {
            issuer.set_stall(true);
        } else {
            issuer.set_down(true);
        }
        let token = issuer.mint(&issuer.claims(), &new_kid);
        // A hang would be the failure; the generous bound only keeps the test from hanging.
        let reply = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            with_bearer(&client, "acme", &token),
        )
        .await
        .expect("answered, not hung");
        assert_eq!(reply.status, 503, "stall={stall}");
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(reply.error_summary().unwrap().contains("unavailable"));
        let health = server.tenant("acme").oauth().unwrap().health();
        assert!(
            !health.last_fetch_ok,
            "stall={stall}: health reports the failed fetch"
        );
        // The cached key still verifies, so the process stays ready: one
        // tenant's issuer outage must not take every tenant off every replica.
        let status = server.readiness().await;
        assert!(status.ready, "stall={stall}: {status:?}");

        // A token whose key is cached does not need the issuer.
        let cached = issuer.mint(&issuer.claims(), &old_kid);
        assert_eq!(
            calls(&with_bearer(&client, "acme", &cached).await),
            1,
            "stall={stall}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_the_issuer_takes_effect_and_a_failing_one_keeps_the_old() {
    let a = FakeIssuer::start().await.unwrap();
    let b = FakeIssuer::start().await.unwrap();
    let server = TestServer::start(&[counter("acme", &a)]).await;
    let client = server.client();
    let from_a = a.mint(&a.claims(), &a.current_kid());
    let from_b = b.mint(&b.claims(), &b.current_kid());
    assert_eq!(calls(&with_bearer(&client, "acme", &from_a).await), 1);
    assert_refused(
        &with_bearer(&client, "acme", &from_b).await,
        "b before the reload",
    );

    // Unchanged settings: the verifier is kept, keys and all (no new fetch).
    let fetched = a.fetch_count();
    let report = server.reload().await;
    assert_eq!(report.tenant("acme").unwrap().change, Change::Unchanged);
    assert_eq!(a.fetch_count(), fetched);

    server.rewrite_tenants(&[counter("acme", &b)]);
    let report = server.reload().await;
    assert_eq!(
        report.tenant("acme").unwrap().change,
        Change::Updated,
        "{report:?}"
    );
    // A new tenant version: a fresh instance, so the count starts again.
    assert_eq!(calls(&with_bearer(&client, "acme", &from_b).await), 1);
    assert_refused(
        &with_bearer(&client, "acme", &from_a).await,
        "a after the reload",
    );

    // An issuer that cannot be reached: the reload keeps the running version.
    let down = FakeIssuer::start().await.unwrap();
    down.set_down(true);
    server.rewrite_tenants(&[counter("acme", &down)]);
    let report = server.reload().await;
    let acme = report.tenant("acme").unwrap();
    assert_eq!(acme.change, Change::Rejected, "{report:?}");
    assert!(
        acme.reason.as_deref().unwrap().contains("auth.oauth"),
        "{report:?}"
    );
    assert_eq!(calls(&with_bearer(&client, "acme", &from_b).await), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrating_tenant_accepts_its_secret_and_bearer_tokens() {
    let issuer = FakeIssuer::start().await.unwrap();
    let tenant = TenantSpec::new("acme", misbehave_wasm())
        .setting("mode", "counter")
        .instance_mode("reuse")
        .max_concurrency(1)
        .oauth(&issuer);
    let server = TestServer::start(std::slice::from_ref(&tenant)).await;
    let client = server.client();
    let token = issuer.mint(&issuer.claims(), &issuer.current_kid());
    assert_eq!(
        calls(&client.hook("acme", tenant.secret(), &request("ok")).await),
        1
    );
    assert_eq!(calls(&with_bearer(&client, "acme", &token).await), 2);
    assert_refused(
        &client.hook("acme", "wrong", &request("ok")).await,
        "wrong secret",
    );
    let expired = {
        let mut c = issuer.claims();
        c["exp"] = json!(now() - 3600);
        issuer.mint(&c, &issuer.current_kid())
    };
    assert_refused(
        &with_bearer(&client, "acme", &expired).await,
        "expired token",
    );
    assert_eq!(
        calls(&client.hook("acme", tenant.secret(), &request("ok")).await),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_at_start_refuses_to_start_naming_tenant_and_step() {
    let issuer = FakeIssuer::start().await.unwrap();
    issuer.set_down(true);
    let setup = Setup::default().tenant(counter("acme", &issuer));
    let error = TestServer::start_error(&setup).await.expect("refused");
    assert!(error.contains("tenant 'acme'"), "{error}");
    assert!(error.contains("auth.oauth"), "{error}");
    assert!(error.contains("metadata"), "{error}");

    // The same issuer, up: it starts.
    issuer.set_down(false);
    assert_eq!(TestServer::start_error(&setup).await, None);
}
