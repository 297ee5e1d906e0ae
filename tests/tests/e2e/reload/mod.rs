//! Deploy-time reloads: plugins and tenants swapped while Okta keeps calling,
//! broken versions refused, and the triggers (admin endpoint, file watching),
//! and what a swap does to a tenant's concurrency share.

mod admin;
mod permits;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hookbox::reload::{Change, ReloadReport};
use hookbox_tests::{
    Proto, Reply, TenantSpec, TestServer, fixture_path, fresh_sample, login_conflict_wasm,
    misbehave_wasm, sample_request,
};

/// The login the reference plugin gives Okta's sample request.
const RESOLVED_LOGIN: &str = "sally2.admin2.272ed9@clouditude.net";

fn echo_tenant(id: &str) -> TenantSpec {
    TenantSpec::new(id, misbehave_wasm()).setting("mode", "echo")
}

/// The short digest of the plugin serving `tenant` right now.
fn serving(server: &TestServer, tenant: &str) -> String {
    server.tenant(tenant).plugin().short_digest().to_owned()
}

fn entry<'a>(report: &'a ReloadReport, id: &str) -> &'a hookbox::reload::TenantReport {
    report
        .tenant(id)
        .unwrap_or_else(|| panic!("no entry for '{id}' in {report:?}"))
}

fn plugin_of(reply: &Reply) -> String {
    reply.json()["debugContext"]["hookboxPlugin"]
        .as_str()
        .unwrap_or_else(|| panic!("no hookboxPlugin: {}", String::from_utf8_lossy(&reply.body)))
        .to_owned()
}

/// Which version produced `reply`, checked against the body's shape: the echo
/// plugin (old) or the reference plugin (new); a mix of the two panics.
fn version(reply: &Reply, old: &str, new: &str) -> &'static str {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    let plugin = plugin_of(reply);
    let from_reference = body["debugContext"]["resolver"] == "login-conflict";
    if plugin == old {
        assert!(
            !from_reference,
            "old digest with the new plugin's body: {body}"
        );
        assert!(
            body["debugContext"]["eventId"]
                .as_str()
                .is_some_and(|id| id.starts_with("test-")),
            "the echo of a fresh eventId: {body}"
        );
        "old"
    } else if plugin == new {
        assert!(
            from_reference,
            "new digest with the old plugin's body: {body}"
        );
        assert_eq!(reply.new_login().as_deref(), Some(RESOLVED_LOGIN));
        "new"
    } else {
        panic!("answer from neither version ({old} / {new}): {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_under_load_fails_nothing_and_never_mixes_versions() {
    let server = TestServer::start(&[echo_tenant("acme")]).await;
    let old = serving(&server, "acme");
    const TASKS: usize = 4;
    const PER_TASK: usize = 50;

    let swapped = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let client = server.client();
        let (swapped, answered, started) = (swapped.clone(), answered.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect(Proto::H1).await;
            let mut replies = Vec::new();
            let mut after_swap = 0;
            // At least PER_TASK requests, and at least 10 sent after the swap completed.
            while replies.len() < PER_TASK || after_swap < 10 {
                let sent_after_swap = swapped.load(Ordering::SeqCst);
                let req = client.hook_request(
                    "acme",
                    Some(("authorization", "secret-acme")),
                    // Each a new event: a repeated eventId would be answered from the store.
                    fresh_sample().to_string(),
                );
                let reply = conn.send(req).await;
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == 20 {
                    started.notify_one();
                }
                after_swap += usize::from(sent_after_swap);
                replies.push((sent_after_swap, reply));
            }
            replies
        }));
    }

    // Swap once the stream is flowing.
    started.notified().await;
    server.rewrite_tenants(&[TenantSpec::new("acme", login_conflict_wasm())]);
    let report = server.reload().await;
    swapped.store(true, Ordering::SeqCst);
    let acme = entry(&report, "acme");
    assert_eq!(acme.change, Change::Updated, "{report:?}");
    let new = acme.plugin.as_ref().unwrap()[..12].to_owned();
    assert_ne!(old, new);

    let mut counts = [0usize; 2];
    for t in tasks {
        for (sent_after_swap, reply) in t.await.unwrap() {
            let v = version(&reply, &old, &new);
            if sent_after_swap {
                assert_eq!(
                    v, "new",
                    "a request sent after the swap got the old version"
                );
            }
            counts[usize::from(v == "new")] += 1;
        }
    }
    assert!(
        counts[0] >= 20 && counts[1] >= 40,
        "old/new answers: {counts:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn broken_plugins_are_rejected_and_the_old_version_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_path = dir.path().join("acme.wasm");
    std::fs::copy(misbehave_wasm(), &plugin_path).unwrap();
    let tenant = TenantSpec::new("acme", plugin_path.clone()).setting("mode", "echo");
    let server = TestServer::start(&[tenant]).await;
    let old = serving(&server, "acme");
    let client = server.client();

    // Empty component (version 0x0d, layer 1): valid, but exports nothing of the world.
    let wrong_world: &[u8] = b"\0asm\x0d\0\x01\0";
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "garbage",
            b"this is not wasm",
            "not a valid WebAssembly component",
        ),
        (
            "core module",
            b"\0asm\x01\0\0\0",
            "not a valid WebAssembly component",
        ),
        ("wrong world", wrong_world, "does not export"),
    ];
    for (what, bytes, why) in cases {
        std::fs::write(&plugin_path, bytes).unwrap();
        let report = server.reload().await;
        assert!(report.applied, "{what}: {report:?}");
        let acme = entry(&report, "acme");
        assert_eq!(acme.change, Change::Rejected, "{what}: {report:?}");
        assert!(
            acme.reason.as_deref().unwrap_or("").contains(why),
            "{what}: reason should say '{why}': {report:?}"
        );
        let rejected = acme.rejected_plugin.as_deref().unwrap();
        assert_eq!(rejected.len(), 64);
        assert!(!rejected.starts_with(&old), "{what}");
        assert_eq!(acme.plugin.as_deref().map(|p| &p[..12]), Some(old.as_str()));

        let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
        assert_eq!(reply.status, 200, "{what}");
        assert_eq!(
            plugin_of(&reply),
            old,
            "{what}: the old version must keep serving"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_failing_its_smoke_request_never_goes_live() {
    let smoke = fixture_path("fixtures/sample-request.json");
    let server = TestServer::start(&[echo_tenant("acme").smoke(smoke.clone())]).await;
    let old = serving(&server, "acme");

    // Same file, but a setting that makes it trap: the new version fails its smoke request.
    let trapping = TenantSpec::new("acme", misbehave_wasm())
        .setting("mode", "trap")
        .smoke(smoke.clone());
    // A new tenant whose smoke request fails is not added.
    let declining = TenantSpec::new("newbie", misbehave_wasm())
        .setting("mode", "error")
        .smoke(smoke.clone());
    server.rewrite_tenants(&[trapping, declining]);
    let report = server.reload().await;
    let acme = entry(&report, "acme");
    assert_eq!(acme.change, Change::Rejected, "{report:?}");
    assert!(
        acme.reason.as_deref().unwrap().contains("trap"),
        "{report:?}"
    );
    let newbie = entry(&report, "newbie");
    assert_eq!(newbie.change, Change::Rejected, "{report:?}");
    assert!(newbie.plugin.is_none(), "{report:?}");

    let client = server.client();
    let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(plugin_of(&reply), old);
    assert!(
        reply.error_summary().is_none(),
        "still the echo version: {:?}",
        reply.json()
    );
    let reply = client
        .hook("newbie", "secret-newbie", &fresh_sample())
        .await;
    assert_eq!(reply.status, 404);

    // A version that passes its smoke request goes live.
    server.rewrite_tenants(&[TenantSpec::new("acme", login_conflict_wasm()).smoke(smoke)]);
    let report = server.reload().await;
    assert_eq!(entry(&report, "acme").change, Change::Updated, "{report:?}");
    let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
    assert_eq!(reply.new_login().as_deref(), Some(RESOLVED_LOGIN));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn config_reload_adds_removes_and_rekeys_tenants() {
    let server = TestServer::start(&[echo_tenant("alpha"), echo_tenant("beta")]).await;
    let client = server.client();
    let request = sample_request();
    assert_eq!(
        client.hook("alpha", "secret-alpha", &request).await.status,
        200
    );

    let gamma = TenantSpec::new("gamma", login_conflict_wasm());
    let beta_rekeyed = echo_tenant("beta").secrets(&["rotated"]);
    server.rewrite_tenants(&[beta_rekeyed, gamma]);
    let report = server.reload().await;
    assert!(
        report.applied && report.needs_restart.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        entry(&report, "alpha").change,
        Change::Removed,
        "{report:?}"
    );
    assert_eq!(entry(&report, "beta").change, Change::Updated, "{report:?}");
    assert_eq!(entry(&report, "gamma").change, Change::Added, "{report:?}");

    assert_eq!(
        client.hook("alpha", "secret-alpha", &request).await.status,
        404
    );
    assert_eq!(
        client.hook("beta", "secret-beta", &request).await.status,
        401
    );
    assert_eq!(client.hook("beta", "rotated", &request).await.status, 200);
    let reply = client.hook("gamma", "secret-gamma", &request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.new_login().as_deref(), Some(RESOLVED_LOGIN));

    // Nothing changed: everything unchanged, nothing recompiled or rebuilt.
    let report = server.reload().await;
    assert!(
        report.tenants.iter().all(|t| t.change == Change::Unchanged),
        "{report:?}"
    );

    // An invalid file changes nothing.
    std::fs::write(server.config_path(), "[[tenants]]\nid = 1").unwrap();
    let report = server.reload().await;
    assert!(!report.applied && report.error.is_some(), "{report:?}");
    assert_eq!(
        client.hook("gamma", "secret-gamma", &request).await.status,
        200
    );

    // Engine settings are reported, not applied.
    server.rewrite(
        &server
            .setup()
            .only_tenants(&[echo_tenant("beta")])
            .max_connections(7),
    );
    let report = server.reload().await;
    assert_eq!(
        report.needs_restart,
        vec!["server".to_owned()],
        "{report:?}"
    );
    server.stop().await.unwrap();
}
