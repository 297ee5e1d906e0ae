//! Instance modes (`limits.instance_mode`): `fresh` never lets anything
//! survive a request; `reuse` keeps a tenant's warm instance for up to
//! `reuse_max_requests` requests, drops it after any failure, and never lends
//! it to another tenant. The misbehave guest's `counter` mode reports how many
//! calls its instance has served (a static), which makes reuse observable.

use hookbox_tests::{Client, TenantSpec, TestServer, misbehave_wasm, sample_request};
use serde_json::json;

fn counter_tenant(id: &str) -> TenantSpec {
    TenantSpec::new(id, misbehave_wasm()).setting("mode", "counter")
}

/// Sends one request with `event` as its event id: the instance's call count
/// for a normal answer, the error summary for an error answer.
async fn call(client: &Client, tenant: &str, event: &str) -> Result<i64, String> {
    let mut req = sample_request();
    // Unique per call: a repeated eventId would be answered from the store.
    req["eventId"] = json!(format!("{event}-{}", hookbox_tests::fresh_event_id()));
    let reply = client.hook(tenant, &format!("secret-{tenant}"), &req).await;
    assert_eq!(reply.status, 200, "{tenant} {event}");
    if let Some(summary) = reply.error_summary() {
        return Err(summary);
    }
    let body = reply.json();
    Ok(body["commands"][0]["value"]["calls"]
        .as_i64()
        .unwrap_or_else(|| panic!("{tenant} {event}: no call count in {body}")))
}

async fn counts(client: &Client, tenant: &str, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(call(client, tenant, &format!("ok-{i}")).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_never_reuses_and_reuse_does() {
    let server = TestServer::start(&[
        counter_tenant("default"),
        counter_tenant("fresh").instance_mode("fresh"),
        counter_tenant("reuse").instance_mode("reuse"),
    ])
    .await;
    let client = server.client();
    assert_eq!(counts(&client, "default", 5).await, [1, 1, 1, 1, 1]);
    assert_eq!(counts(&client, "fresh", 5).await, [1, 1, 1, 1, 1]);
    assert_eq!(counts(&client, "reuse", 5).await, [1, 2, 3, 4, 5]);
    assert_eq!(server.tenant("fresh").idle_instances(), 0);
    assert_eq!(server.tenant("reuse").idle_instances(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_is_dropped_after_its_quota() {
    let server = TestServer::start(&[counter_tenant("three")
        .instance_mode("reuse")
        .reuse_max_requests(3)])
    .await;
    let client = server.client();
    assert_eq!(counts(&client, "three", 8).await, [1, 2, 3, 1, 2, 3, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_failed_is_never_reused() {
    // The deadline leaves the memory bomb room to reach its limit first on
    // a loaded machine (at 100 ms it was once cut by the deadline instead).
    let server = TestServer::start(&[counter_tenant("warm")
        .instance_mode("reuse")
        .deadline("1s")
        .memory("16MiB")])
    .await;
    let client = server.client();
    let c = &client;
    assert_eq!(counts(c, "warm", 2).await, [1, 2]);
    // Each failure drops the instance: the next request starts from a new one.
    for (event, summary) in [
        ("trap-1", "hookbox: the plugin failed (trap)"),
        ("loop-1", "hookbox: the plugin exceeded its deadline"),
        ("bomb-1", "hookbox: the plugin exceeded its memory limit"),
    ] {
        assert_eq!(
            call(c, "warm", event).await,
            Err(summary.to_owned()),
            "{event}"
        );
        assert_eq!(call(c, "warm", "ok-a").await, Ok(1), "after {event}");
        assert_eq!(call(c, "warm", "ok-b").await, Ok(2), "after {event}");
    }
    // A decline is an answer, not a failure: the instance stays.
    assert_eq!(
        call(c, "warm", "error-1").await,
        Err("misbehave: asked to fail after 3 calls".to_owned())
    );
    assert_eq!(call(c, "warm", "ok-c").await, Ok(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_share_instances() {
    // Same plugin file: one compiled plugin, two tenants' pools.
    let server = TestServer::start(&[
        counter_tenant("alpha").instance_mode("reuse"),
        counter_tenant("beta").instance_mode("reuse"),
    ])
    .await;
    let client = server.client();
    for expected in 1..=4 {
        assert_eq!(call(&client, "alpha", "ok").await, Ok(expected), "alpha");
        assert_eq!(call(&client, "beta", "ok").await, Ok(expected), "beta");
    }
    // A failure in one tenant's instance leaves the other's warm instance alone.
    assert!(call(&client, "alpha", "trap").await.is_err());
    assert_eq!(call(&client, "beta", "ok").await, Ok(5));
    assert_eq!(call(&client, "alpha", "ok").await, Ok(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_replaces_the_tenant_drops_its_warm_instances() {
    let before = counter_tenant("acme").instance_mode("reuse");
    let server = TestServer::start(std::slice::from_ref(&before)).await;
    let client = server.client();
    assert_eq!(counts(&client, "acme", 3).await, [1, 2, 3]);

    // Unchanged: the tenant (and its warm instance) is kept.
    server.rewrite_tenants(&[before]);
    server.reload().await;
    assert_eq!(call(&client, "acme", "ok").await, Ok(4));

    // Changed limits: a new tenant, a new pool.
    let after = counter_tenant("acme")
        .instance_mode("reuse")
        .reuse_max_requests(50);
    server.rewrite_tenants(std::slice::from_ref(&after));
    server.reload().await;
    assert_eq!(counts(&client, "acme", 2).await, [1, 2]);

    // Changed settings only: new instances too. The WIT promises plugins that
    // settings are fixed for an instance's lifetime (they may keep them).
    server.rewrite_tenants(&[after.setting("unused", "v2")]);
    server.reload().await;
    assert_eq!(counts(&client, "acme", 2).await, [1, 2]);
}
