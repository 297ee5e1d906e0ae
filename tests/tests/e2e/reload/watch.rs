//! `server.watch`: plugin and secret files replaced on disk go live, the
//! Kubernetes `..data` swap included.

use std::time::{Duration, Instant};

use hookbox_tests::{
    Client, TenantSpec, TestServer, fresh_sample, login_conflict_wasm, misbehave_wasm,
};

use super::{RESOLVED_LOGIN, plugin_of, serving};

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
