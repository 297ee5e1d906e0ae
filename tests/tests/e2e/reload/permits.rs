//! A swap and a tenant's concurrency share: requests still running on the
//! old version count against the new one's limit.

use hookbox::reload::Change;
use hookbox_tests::{TenantSpec, TestServer, fresh_sample, misbehave_wasm};

/// A swap must not give a tenant a second helping of its concurrency share:
/// requests still running on the old version hold permits the new one honours.
#[tokio::test]
async fn a_swap_keeps_the_tenants_concurrency_share() {
    let looping = |probe: &str| {
        TenantSpec::new("slow", misbehave_wasm())
            .setting("mode", "loop")
            .setting("probe", probe)
            .deadline("1500ms")
            .max_concurrency(1)
    };
    let server = TestServer::start(&[looping("v1")]).await;
    let client = server.client();
    let held = server.hold_permit("slow", "secret-slow").await;
    // A new version of the tenant (changed settings), same limit.
    server.rewrite_tenants(&[looping("v2")]);
    let report = server.reload().await;
    assert_eq!(report.tenants[0].change, Change::Updated, "{report:?}");
    let reply = client.hook("slow", "secret-slow", &fresh_sample()).await;
    assert_eq!(
        reply.status,
        503,
        "the old version's request still holds the share: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let first = held.await.unwrap();
    assert_eq!(
        first.error_summary().as_deref(),
        Some("hookbox: the plugin exceeded its deadline")
    );

    // Nothing in flight: a higher limit is all free.
    let wider = looping("v3").deadline("100ms").max_concurrency(2);
    server.rewrite_tenants(&[wider]);
    assert_eq!(server.reload().await.tenants[0].change, Change::Updated);
    assert_eq!(server.tenant("slow").free_permits(), 2);
}

/// A changed `max_concurrency` resizes the count the old version's requests
/// hold: raised, only the difference is free; lowered, new requests wait for
/// the old ones to bring the tenant under the new limit.
#[tokio::test]
async fn a_changed_limit_counts_the_requests_still_running_on_the_old_version() {
    let looping = |probe: &str, max: u32| {
        TenantSpec::new("slow", misbehave_wasm())
            .setting("mode", "loop")
            .setting("probe", probe)
            .deadline("1500ms")
            .max_concurrency(max)
    };
    let server = TestServer::start(&[looping("v1", 1)]).await;
    let client = server.client();

    // Raised from 1 to 3 while one request runs on v1: two are free, not three.
    let first = server.hold_permit("slow", "secret-slow").await;
    server.rewrite_tenants(&[looping("v2", 3)]);
    assert_eq!(server.reload().await.tenants[0].change, Change::Updated);
    assert_eq!(server.tenant("slow").free_permits(), 2);
    let second = server.hold_permit("slow", "secret-slow").await;
    // hold_permit waits for the last free permit: two are held now, one was
    // free before `second`, so start one more to fill the limit of 3.
    let third = server.hold_permit("slow", "secret-slow").await;
    assert_eq!(server.tenant("slow").free_permits(), 0);

    // Lowered from 3 to 1 with three running: every new request is refused
    // until two have finished and the third has too (1 running = the limit).
    server.rewrite_tenants(&[looping("v3", 1)]);
    assert_eq!(server.reload().await.tenants[0].change, Change::Updated);
    let reply = client.hook("slow", "secret-slow", &fresh_sample()).await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    for held in [first, second, third] {
        let reply = held.await.unwrap();
        assert_eq!(
            reply.error_summary().as_deref(),
            Some("hookbox: the plugin exceeded its deadline")
        );
    }
    // All three done: exactly the new limit is free (the two permits owed
    // were taken from the releases, not from the new version's share).
    assert_eq!(server.tenant("slow").free_permits(), 1);
    server.stop().await.unwrap();
}
