//! Faults of the machine: a data directory hookbox cannot use, and a full
//! disk. Each is a clear error naming what failed, never a panic, and a
//! full disk costs only the claims that could not be written: the server
//! keeps answering (with the plugin's documented fallback), claims work
//! again as soon as there is room (no restart), and every claim it granted
//! is still there after a restart.
//!
//! A full disk is a file-size limit on the server process (`RLIMIT_FSIZE`,
//! see [`spawn_server_with_file_limit`]): writes past it fail with `EFBIG`
//! as they would with `ENOSPC`, and nothing else changes.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use hookbox_tests::{
    Client, Reply, StoreSpec, TenantSpec, TestServer, fresh_event_id, login_conflict_wasm,
    sample_request,
};
use serde_json::{Value, json};

use crate::claims::login_and_claim;
use crate::process::{hookbox_command, spawn_server, spawn_server_with_file_limit};

fn tenant() -> TenantSpec {
    TenantSpec::new("acme", login_conflict_wasm())
        .deadline("2s")
        .max_concurrency(64)
}

/// An import of user `n`, whose login `jane.doe@example.com` is taken.
fn request(n: usize) -> Value {
    let mut req = sample_request();
    req["eventId"] = json!(fresh_event_id());
    req["data"]["appUser"]["profile"] = json!({
        "firstName": "Jane",
        "lastName": "Doe",
        "externalId": format!("u{n}"),
        "email": format!("u{n}@example.org"),
    });
    req["data"]["user"]["profile"] = json!({
        "firstName": "Jane",
        "lastName": "Doe",
        "login": "jane.doe@example.com",
        "email": format!("u{n}@example.org"),
    });
    req
}

#[test]
fn an_unusable_data_directory_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // The store's directory is a regular file: no user, root included, can
    // create the database there.
    let blocker = dir.path().join("data");
    std::fs::write(&blocker, "not a directory").unwrap();
    let store = blocker.join("store.redb");
    let (config, _pki) = TestServer::builder()
        .tenant(tenant())
        .store(StoreSpec::Embedded(store.clone()))
        .write_files(dir.path());
    let out = hookbox_command(&[
        "serve",
        "--config",
        &config.display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not start: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("store I/O error") && stderr.contains(&blocker.display().to_string()),
        "the error names the store and the path: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_new_claims_only_and_loses_none_it_granted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (config, pki) = TestServer::builder()
        .tenant(tenant())
        .store(StoreSpec::Embedded(path.clone()))
        .write_files(dir.path());

    // Run 1 creates the store; its size is where the disk will be full.
    let (mut child, addr) = spawn_server(&config);
    let client = Client::new(addr, &pki.ca_der);
    let (_, claim) = login_and_claim(&client.hook("acme", "secret-acme", &request(0)).await);
    assert_eq!(claim, "claimed");
    child.kill().unwrap();
    child.wait().unwrap();
    let full = std::fs::metadata(&path).unwrap().len();

    // Run 2 may not grow the file: imports until the store is out of room.
    let (mut child, addr, stderr) = spawn_server_with_file_limit(&config, full);
    let client = Client::new(addr, &pki.ca_der);
    let mut granted: Vec<(Value, String)> = Vec::new();
    let mut refused = 0;
    let mut n = 1;
    while refused == 0 && n < 5_000 {
        let batch: Vec<(Value, Reply)> = futures::stream::iter(n..n + 100)
            .map(|i| {
                let client = client.clone();
                async move {
                    let req = request(i);
                    let reply = client.hook("acme", "secret-acme", &req).await;
                    (req, reply)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        n += 100;
        for (req, reply) in batch {
            // Every import is answered, the store full or not.
            let (login, claim) = login_and_claim(&reply);
            match claim.as_str() {
                "claimed" => granted.push((req, login)),
                "unavailable" => refused += 1,
                other => panic!("claim: {other}"),
            }
        }
    }
    assert!(refused > 0, "{n} imports and the store never filled up");
    assert!(!granted.is_empty(), "the store filled up before any claim");
    assert!(child.try_wait().unwrap().is_none(), "the server died");
    let log = stderr.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("File too large"),
        "the log says why the store failed: {log}"
    );

    // Room again (the limit lifted from the running process): the next
    // write reopens the database and claims work, no restart needed.
    let lifted = std::process::Command::new("prlimit")
        .args(["--pid", &child.id().to_string(), "--fsize=unlimited:"])
        .status()
        .unwrap();
    assert!(lifted.success());
    let mut claimed_again = false;
    for i in n..n + 10 {
        let req = request(i);
        let (login, claim) = login_and_claim(&client.hook("acme", "secret-acme", &req).await);
        if claim == "claimed" {
            granted.push((req, login));
            claimed_again = true;
            break;
        }
    }
    assert!(claimed_again, "claims still fail with room on the disk");
    child.kill().unwrap();
    child.wait().unwrap();

    // Run 3, room again: every login granted while the disk filled is its user's.
    let server = TestServer::builder()
        .tenant(tenant())
        .store(StoreSpec::Embedded(path))
        .start()
        .await;
    let client = server.client();
    let mut logins = BTreeSet::new();
    for (req, login) in &granted {
        let (again, _) = login_and_claim(&client.hook("acme", "secret-acme", req).await);
        assert_eq!(&again, login, "a granted login was lost");
        assert!(logins.insert(again), "{login} given twice");
    }
    server.stop().await.unwrap();
}
