//! Memory the instance pool keeps after a burst goes back: once the pool
//! has kept more than `engine.idle_resident_limit` in unused slots for
//! `engine.idle_resident_grace`, the tenants move to a new engine and the
//! old one, with its pool, is freed when its requests are done. No request
//! fails or changes on the way. Nothing is timed: the test waits for the
//! old engine to be freed and for the pool to keep nothing, with a generous
//! deadline for a loaded machine. A recycled tenant keeps what it had
//! fetched and cached (OAuth keys, directory lookups).

use std::time::{Duration, Instant};

use futures::future::join_all;
use hookbox_directory::testing::{FakeOkta, TOKEN};
use hookbox_oauth::testing::FakeIssuer;
use hookbox_tests::{TenantSpec, TestServer, fresh_sample, login_conflict_wasm, misbehave_wasm};
use serde_json::json;

/// What the reference plugin answers for the sample request's conflict.
const NEW_LOGIN: &str = "sally2.admin2.272ed9@clouditude.net";

/// How long the machine may take; the grace period below is 200 ms.
const PATIENCE: Duration = Duration::from_secs(60);

/// `n` requests at once, each a fresh event (so each runs the plugin),
/// each answered as the plugin answers.
async fn burst(server: &TestServer, tenant: &TenantSpec, n: usize) {
    let client = server.client();
    let bodies: Vec<_> = (0..n).map(|_| fresh_sample()).collect();
    let replies = join_all(
        bodies
            .iter()
            .map(|body| client.hook(tenant.id(), tenant.secret(), body)),
    )
    .await;
    for reply in replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.new_login().as_deref(), Some(NEW_LOGIN), "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_kept_past_the_grace_goes_back_with_the_old_engine_and_no_request_fails() {
    let tenant = TenantSpec::new("good", login_conflict_wasm()).max_concurrency(64);
    let server = TestServer::builder()
        .tenant(tenant.clone())
        .idle_resident("1B", "200ms")
        .start()
        .await;
    let first = server.runtime();
    burst(&server, &tenant, 16).await;
    if !first.keeps_resident() {
        // No PAGEMAP_SCAN here: the pool gives every page back at once
        // (plugin::engine), so there is nothing to recycle.
        assert_eq!(first.unused_resident(), 0);
        return;
    }
    let gone = first.weak();
    drop(first);

    // Requests keep coming while the pool keeps memory past its grace: the
    // tenants move, the old engine is freed once its requests are done, and
    // every request meanwhile is answered as before.
    let deadline = Instant::now() + PATIENCE;
    let mut bursts = 0;
    while !gone.is_freed() {
        assert!(
            Instant::now() < deadline,
            "the first engine is still alive after {bursts} bursts"
        );
        burst(&server, &tenant, 4).await;
        bursts += 1;
    }

    // Idle now: the engine that served the last requests keeps some of
    // their pages, so it is recycled too, and the one after it has served
    // nothing and keeps nothing.
    let deadline = Instant::now() + PATIENCE;
    while server.runtime().unused_resident() > 0 {
        assert!(
            Instant::now() < deadline,
            "the pool still keeps {} bytes",
            server.runtime().unused_resident()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the tenant is served on the engine it is on now.
    burst(&server, &tenant, 4).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_limit_off_the_engine_is_never_replaced() {
    let tenant = TenantSpec::new("good", login_conflict_wasm());
    let server = TestServer::builder()
        .tenant(tenant.clone())
        .idle_resident("off", "10ms")
        .start()
        .await;
    let first = server.runtime();
    burst(&server, &tenant, 8).await;
    // Long enough for many grace periods; the engine must still be the first.
    for _ in 0..20 {
        burst(&server, &tenant, 2).await;
        assert!(server.runtime().same(&first));
    }
    if first.keeps_resident() {
        assert!(first.unused_resident() > 0);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_burst_of_memory_bombs_leaves_in_the_pool_goes_back_once_idle() {
    let bomb = TenantSpec::new("bomb", misbehave_wasm())
        .setting("mode", "memory-bomb")
        .memory("8MiB")
        .max_concurrency(16);
    let good = TenantSpec::new("good", login_conflict_wasm());
    let server = TestServer::builder()
        .tenant(bomb.clone())
        .tenant(good.clone())
        .idle_resident("1MiB", "200ms")
        .start()
        .await;
    let first = server.runtime();
    let gone = first.weak();
    let keeps = first.keeps_resident();
    drop(first);

    // Sixteen bombs at once, each stopped at its memory limit, named.
    let client = server.client();
    let bodies: Vec<_> = (0..16).map(|_| fresh_sample()).collect();
    let replies = join_all(
        bodies
            .iter()
            .map(|body| client.hook(bomb.id(), bomb.secret(), body)),
    )
    .await;
    for reply in replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.error_summary().as_deref(),
            Some("hookbox: the plugin exceeded its memory limit"),
            "{reply:?}"
        );
    }
    if !keeps {
        // No PAGEMAP_SCAN: every page went back as each bomb's instance ended.
        assert_eq!(server.runtime().unused_resident(), 0);
    } else {
        // Idle from here: the pool keeps up to 1 MiB of each bomb's slot
        // (more than the limit) until the grace ends, then the tenants move
        // and the old engine, with everything it kept, is freed.
        let deadline = Instant::now() + PATIENCE;
        while !gone.is_freed() || server.runtime().unused_resident() > 0 {
            assert!(
                Instant::now() < deadline,
                "freed: {}, kept now: {} bytes",
                gone.is_freed(),
                server.runtime().unused_resident()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The next request of another tenant, and of the bomb's, are served.
    burst(&server, &good, 2).await;
    let reply = client.hook(bomb.id(), bomb.secret(), &fresh_sample()).await;
    assert_eq!(
        reply.error_summary().as_deref(),
        Some("hookbox: the plugin exceeded its memory limit")
    );
    server.stop().await.unwrap();
}

/// A recycle moves each tenant as it is (`Tenant::rebound`): its OAuth
/// verifier keeps the keys it fetched and its directory the lookups it
/// cached, so the same user imported again on the new engine gets the same
/// login with no new call at either fake. A tenant rebuilt instead would
/// fetch the keys again, and look the login up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycled_tenant_keeps_its_oauth_keys_and_its_directory_cache() {
    let issuer = FakeIssuer::start().await.unwrap();
    let okta = FakeOkta::start().await.unwrap();
    let tenant = TenantSpec::new("acme", login_conflict_wasm())
        .oauth(&issuer)
        .no_secrets()
        .directory(&okta.url(), TOKEN, okta.ca_pem())
        .directory_key("free_ttl", "\"10m\"")
        .deadline("2s");
    let server = TestServer::builder()
        .tenant(tenant.clone())
        .idle_resident("off", "1s")
        .start()
        .await;
    let client = server.client();
    let bearer = format!(
        "Bearer {}",
        issuer.mint(&issuer.claims(), &issuer.current_kid())
    );
    let answer = |reply: &hookbox_tests::Reply| {
        assert_eq!(reply.status, 200, "{reply:?}");
        let directory = reply.json()["debugContext"]["directory"].clone();
        (reply.new_login().expect("a login"), directory)
    };

    // The same user each time, as a new import (a fresh eventId).
    let before = answer(&client.hook(tenant.id(), &bearer, &fresh_sample()).await);
    assert_eq!(before.1, json!("checked"), "the plugin looked the login up");
    let (fetches, lookups) = (issuer.fetch_count(), okta.request_count());
    assert!(lookups > 0);

    let first = server.runtime();
    server.recycle().await;
    assert!(
        !server.runtime().same(&first),
        "the tenant is on a new engine"
    );
    drop(first);

    let after = answer(&client.hook(tenant.id(), &bearer, &fresh_sample()).await);
    assert_eq!(after, before, "the same user, the same login, checked");
    assert_eq!(
        issuer.fetch_count(),
        fetches,
        "the keys were not fetched again"
    );
    assert_eq!(
        okta.request_count(),
        lookups,
        "the cached lookup was not repeated"
    );
    server.stop().await.unwrap();
}
