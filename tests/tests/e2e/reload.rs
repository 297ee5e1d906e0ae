//! Deploy-time reloads: plugins and tenants swapped while Okta keeps calling,
//! broken versions refused, and the triggers (admin endpoint, file watching).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookbox::reload::{Change, ReloadReport};
use hookbox_tests::{
    Client, Proto, Reply, TenantSpec, TestServer, fixture_path, fresh_sample, login_conflict_wasm,
    misbehave_wasm, sample_request,
};
use hyper::Method;
use serde_json::Value;

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
                // Each a new event: a repeated eventId would be answered from the store.
                let req = client.hook_request(
                    "acme",
                    Some(("authorization", "secret-acme")),
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

async fn admin_post(server: &TestServer, secret: Option<&str>) -> Reply {
    let client = server.client();
    let mut conn = client.connect(Proto::H1).await;
    let mut req = client.request(Method::POST, "/admin/reload", Bytes::new());
    if let Some(s) = secret {
        req.headers_mut()
            .insert("authorization", s.parse().unwrap());
    }
    conn.send(req).await
}

#[tokio::test]
async fn admin_endpoint_is_hidden_unless_configured_and_needs_its_secret() {
    let server = TestServer::start(&[echo_tenant("acme")]).await;
    let reply = admin_post(&server, Some("anything")).await;
    assert_eq!(reply.status, 404);
    assert!(!String::from_utf8_lossy(&reply.body).contains("admin"));
    server.stop().await.unwrap();

    let server = TestServer::builder()
        .tenant(echo_tenant("acme"))
        .admin_secret("admin-secret")
        .start()
        .await;
    assert_eq!(admin_post(&server, Some("secret-acme")).await.status, 401);
    assert_eq!(admin_post(&server, None).await.status, 401);

    server.rewrite_tenants(&[
        echo_tenant("acme"),
        TenantSpec::new("beta", login_conflict_wasm()),
    ]);
    let reply = admin_post(&server, Some("admin-secret")).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let report: Value = reply.json();
    assert_eq!(report["applied"], true, "{report}");
    let changes: Vec<(String, String)> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("acme".into(), "unchanged".into()),
            ("beta".into(), "added".into())
        ]
    );
    let reply = server
        .client()
        .hook("beta", "secret-beta", &fresh_sample())
        .await;
    assert_eq!(reply.status, 200);

    let client = server.client();
    let mut conn = client.connect(Proto::H1).await;
    let mut get = client.request(Method::GET, "/admin/reload", Bytes::new());
    get.headers_mut()
        .insert("authorization", "admin-secret".parse().unwrap());
    assert_eq!(conn.send(get).await.status, 405);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watched_plugin_file_replaced_on_disk_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("acme.wasm");
    std::fs::copy(misbehave_wasm(), &plugin).unwrap();
    let tenant = TenantSpec::new("acme", plugin.clone()).setting("mode", "echo");
    let server = TestServer::builder().tenant(tenant).watch().start().await;
    let client = server.client();
    let old = serving(&server, "acme");
    // The server is serving, so its watcher is in place.
    let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
    assert_eq!(plugin_of(&reply), old);

    // A deploy: the new file written beside the old one, then renamed over it.
    let tmp = dir.path().join(".acme.wasm.new");
    std::fs::copy(login_conflict_wasm(), &tmp).unwrap();
    std::fs::rename(&tmp, &plugin).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
        assert_eq!(reply.status, 200);
        if plugin_of(&reply) != old {
            assert_eq!(reply.new_login().as_deref(), Some(RESOLVED_LOGIN));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new plugin did not go live within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await.unwrap();
}

/// Polls `tenant` with `secret` until the server accepts it (401 meanwhile),
/// for at most 10 s; the accepted answer must be the reference plugin's.
async fn until_accepted(client: &Client, tenant: &str, secret: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.hook(tenant, secret, &fresh_sample()).await;
        if reply.status == 200 {
            assert_eq!(reply.new_login().as_deref(), Some(RESOLVED_LOGIN));
            return;
        }
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(
            Instant::now() < deadline,
            "secret {secret} was not accepted within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rotating a secret on disk (written beside the old file, renamed over it)
/// goes live with `server.watch` like a new plugin does, and the old secret
/// stops working.
#[tokio::test]
async fn watched_secret_file_rotated_on_disk_goes_live() {
    let tenant = TenantSpec::new("acme", login_conflict_wasm());
    let server = TestServer::builder().tenant(tenant).watch().start().await;
    let client = server.client();
    let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
    assert_eq!(reply.status, 200);

    // The file the harness wrote for the tenant's first secret.
    let file = server.dir().join("acme-secret-0");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "secret-acme\n");
    let tmp = server.dir().join(".acme-secret-0.new");
    std::fs::write(&tmp, "rotated-acme\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();

    until_accepted(&client, "acme", "rotated-acme").await;
    let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
    assert_eq!(reply.status, 401, "the old secret must stop working");
    server.stop().await.unwrap();
}

/// A Kubernetes Secret volume: the secret file is a link through `..data`,
/// and an update swaps `..data` to a new directory, so no event names the
/// file itself. The swap alone must reload.
#[tokio::test]
async fn watched_secret_in_a_kubernetes_volume_goes_live_when_data_is_swapped() {
    use std::os::unix::fs::symlink;
    let tenant = TenantSpec::new("acme", login_conflict_wasm());
    let server = TestServer::builder().tenant(tenant).watch().start().await;
    let client = server.client();
    // The server is serving, so its watcher is in place.
    let reply = client.hook("acme", "secret-acme", &fresh_sample()).await;
    assert_eq!(reply.status, 200);
    let dir = server.dir();
    // Kubelet's layout: `..<timestamp>/` holds the files, `..data` links to
    // it, and each file is a link through `..data`.
    let version = |name: &str, secret: &str| {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("acme-secret-0"), format!("{secret}\n")).unwrap();
    };
    version("..v1", "k8s-one");
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/acme-secret-0", dir.join(".acme-secret-0.link")).unwrap();
    // This rename names the watched file: it reloads, and `k8s-one` goes live.
    std::fs::rename(dir.join(".acme-secret-0.link"), dir.join("acme-secret-0")).unwrap();
    until_accepted(&client, "acme", "k8s-one").await;

    // The update: only `..v2`, `..data_tmp` and `..data` see events.
    version("..v2", "k8s-two");
    symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    until_accepted(&client, "acme", "k8s-two").await;
    let reply = client.hook("acme", "k8s-one", &fresh_sample()).await;
    assert_eq!(reply.status, 401, "the old secret must stop working");
    server.stop().await.unwrap();
}

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
