//! Okta event hooks through the real host: verification, deliveries
//! acknowledged only once queued, each subscribed event handled exactly once
//! (also on a redelivery, on two servers sharing one Redis, and after the
//! server was killed between the acknowledgement and the handler), none
//! lost when it is killed under load, slow
//! handlers off the request path, malformed deliveries, dead events and their
//! replay by the operator command.
//!
//! The `events-only` guest counts its handlings in the claim store (it claims
//! `seen:<uuid>:<n>` with the first free `n`), so "exactly once" is read from
//! the store: `seen:<uuid>:1` and no `seen:<uuid>:2`.
//!
//! Background work is waited for by polling its state in the store (with a
//! generous deadline), never by sleeping for a guessed time.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hookbox_store::Store;
use hookbox_store::testing::RedisServer;
use hookbox_tests::{
    Client, StoreSpec, TenantSpec, TestServer, delivery, events_only_wasm, fresh_sample,
    misbehave_wasm,
};
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::process::{hookbox_output, spawn_server};

const SYNC: &str = "application.provision.user.sync";

/// The uuids of `delivery`'s events of type `event_type`, in order.
fn uuids_of(delivery: &Value, event_type: &str) -> Vec<String> {
    delivery["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == event_type)
        .map(|e| e["uuid"].as_str().unwrap().to_owned())
        .collect()
}

/// Every uuid's handling count, from the `events-only` guest's claims.
async fn handled(store: &Store, tenant: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for claim in store.list(tenant, None, 1000).await.unwrap() {
        let rest = claim.key.strip_prefix("seen:").expect("only seen: keys");
        let (uuid, _n) = rest.rsplit_once(':').unwrap();
        *counts.entry(uuid.to_owned()).or_default() += 1;
    }
    counts
}

/// Polls `check` until it holds, for at most 60 s (a noisy machine).
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A one-sync-event delivery with a fresh uuid: queued after whatever came
/// before it, so once it is handled, everything queued earlier was too.
fn marker(n: u32) -> (Value, String) {
    let mut d = delivery("delivery-sync.json");
    let uuid = format!("marker-{}-{n}", std::process::id());
    d["eventId"] = json!(format!("delivery-{uuid}"));
    d["data"]["events"][0]["uuid"] = json!(uuid);
    (d, uuid)
}

#[tokio::test]
async fn verification_handshake_and_who_has_an_event_hook() {
    let events = TenantSpec::new("events", events_only_wasm());
    let off = TenantSpec::new("off", misbehave_wasm()).events_disabled();
    let server = TestServer::start(&[events.clone(), off.clone()]).await;
    let client = server.client();

    let challenge = "X5Jk2hIgm7rqyQ5NMlPQRfHNZr9Vn3wNKhFnEbo7";
    let reply = client
        .verify_events("events", events.secret(), Some(challenge))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({ "verification": challenge }));

    let reply = client.verify_events("events", events.secret(), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .error_summary()
            .unwrap()
            .contains("x-okta-verification-challenge")
    );

    let reply = client
        .verify_events("events", "wrong", Some(challenge))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = client
        .events("events", "wrong", &delivery("delivery-mixed.json"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.store().queued("events").await.unwrap(), 0);

    // Events turned off: 404, with or without the right secret, like an unknown tenant.
    for (tenant, secret) in [("off", off.secret()), ("nobody", "x")] {
        let reply = client.verify_events(tenant, secret, Some(challenge)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{tenant}");
        let reply = client
            .events(tenant, secret, &delivery("delivery-mixed.json"))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{tenant}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn only_subscribed_types_reach_the_handler_each_exactly_once() {
    let sync_only = TenantSpec::new("sync-only", events_only_wasm());
    let sessions =
        TenantSpec::new("sessions", events_only_wasm()).event_types(&["user.session.start"]);
    let server = TestServer::start(&[sync_only.clone(), sessions.clone()]).await;
    let client = server.client();
    let body = delivery("delivery-mixed.json");
    let syncs = uuids_of(&body, SYNC);
    assert_eq!(syncs.len(), 3);

    let reply = client.events("sync-only", sync_only.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty(), "Okta expects an empty body");
    let reply = client.events("sessions", sessions.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);

    // Okta's retry of the same delivery, after the events were handled: acknowledged, not queued.
    wait_until("the first delivery is handled", || async {
        handled(server.store(), "sync-only").await.len() == 3
    })
    .await;
    let reply = client.events("sync-only", sync_only.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let (mark, mark_uuid) = marker(1);
    let reply = client.events("sync-only", sync_only.secret(), &mark).await;
    assert_eq!(reply.status, StatusCode::OK);
    wait_until("the marker is handled", || async {
        handled(server.store(), "sync-only")
            .await
            .contains_key(&mark_uuid)
    })
    .await;

    let mut expected: BTreeMap<String, usize> = syncs.iter().map(|u| (u.clone(), 1)).collect();
    expected.insert(mark_uuid, 1);
    assert_eq!(handled(server.store(), "sync-only").await, expected);
    assert_eq!(server.store().queued("sync-only").await.unwrap(), 0);

    let session = uuids_of(&body, "user.session.start");
    wait_until("the session event is handled", || async {
        handled(server.store(), "sessions").await.len() == 1
    })
    .await;
    assert_eq!(
        handled(server.store(), "sessions").await,
        session.iter().map(|u| (u.clone(), 1)).collect()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn two_servers_sharing_one_redis_handle_each_event_once() {
    let redis = RedisServer::start().unwrap();
    let tenant = TenantSpec::new("shared", events_only_wasm());
    let start = || {
        TestServer::builder()
            .tenant(tenant.clone())
            .store(StoreSpec::Redis(redis.url()))
            .start()
    };
    let (a, b) = (start().await, start().await);
    let body = delivery("delivery-mixed.json");
    // Okta's delivery and its retry reach different replicas at once.
    let (ca, cb) = (a.client(), b.client());
    let (ra, rb) = tokio::join!(
        ca.events("shared", tenant.secret(), &body),
        cb.events("shared", tenant.secret(), &body)
    );
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    let (mark, mark_uuid) = marker(2);
    assert_eq!(
        cb.events("shared", tenant.secret(), &mark).await.status,
        StatusCode::OK
    );
    wait_until("every event is handled", || async {
        let h = handled(a.store(), "shared").await;
        h.contains_key(&mark_uuid) && h.len() == 4
    })
    .await;
    wait_until("the queue is empty", || async {
        a.store().queued("shared").await.unwrap() == 0
    })
    .await;
    let mut expected: BTreeMap<String, usize> =
        uuids_of(&body, SYNC).into_iter().map(|u| (u, 1)).collect();
    expected.insert(mark_uuid, 1);
    assert_eq!(handled(b.store(), "shared").await, expected);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_handler_past_okta_budget_never_delays_the_acknowledgement() {
    // The handler spins until its 2.5 s deadline (Okta waits 3 s for the
    // whole delivery), once: then the event is dead, by "deadline".
    let slow = TenantSpec::new("slow", misbehave_wasm())
        .setting("mode", "loop")
        .deadline("2500ms")
        .max_attempts(1);
    let server = TestServer::start(std::slice::from_ref(&slow)).await;
    let body = delivery("delivery-sync.json");
    let reply = server.client().events("slow", slow.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Acknowledged while the handler has not finished: the event is still
    // queued (leased or waiting), not yet dead.
    let store = server.store();
    assert!(
        store.dead("slow", None, 10).await.unwrap().is_empty(),
        "the handler finished before the acknowledgement"
    );
    assert_eq!(store.queued("slow").await.unwrap(), 1);
    wait_until("the handler hits its deadline", || async {
        !store.dead("slow", None, 10).await.unwrap().is_empty()
    })
    .await;
    let dead = store.dead("slow", None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].uuid, uuids_of(&body, SYNC)[0]);
    assert_eq!(dead[0].attempts, 1);
    assert!(dead[0].reason.contains("deadline"), "{}", dead[0].reason);
    assert_eq!(store.queued("slow").await.unwrap(), 0);
    server.stop().await.unwrap();
}

/// A heavy tenant's event handler runs on the background threads too (the
/// same placement as its requests' calls), and still ends at its deadline.
#[tokio::test]
async fn a_heavy_tenants_handler_runs_in_the_background_and_still_ends_at_its_deadline() {
    let spinner = TenantSpec::new("spinner", misbehave_wasm())
        .setting("mode", "loop")
        .deadline("300ms")
        .max_attempts(1);
    let server = TestServer::start(std::slice::from_ref(&spinner)).await;
    let client = server.client();
    // One request spins past the heavy mark, in place: the tenant is heavy.
    let reply = client
        .hook("spinner", spinner.secret(), &fresh_sample())
        .await;
    assert_eq!(
        reply.error_summary().as_deref(),
        Some("hookbox: the plugin exceeded its deadline")
    );
    assert!(server.cpu().is_heavy("spinner"));
    assert_eq!(server.runtime().heavy_calls(), 0);

    let body = delivery("delivery-sync.json");
    let reply = client.events("spinner", spinner.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let store = server.store();
    wait_until("the handler hits its deadline", || async {
        !store.dead("spinner", None, 10).await.unwrap().is_empty()
    })
    .await;
    let dead = store.dead("spinner", None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].uuid, uuids_of(&body, SYNC)[0]);
    assert!(dead[0].reason.contains("deadline"), "{}", dead[0].reason);
    // The handler was the one call placed in the background.
    assert_eq!(server.runtime().heavy_calls(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_deliveries_are_refused_naming_the_field() {
    let tenant = TenantSpec::new("strict", events_only_wasm());
    let server = TestServer::start(std::slice::from_ref(&tenant)).await;
    let client = server.client();
    let good = delivery("delivery-mixed.json");
    let mut cases: Vec<(String, &str)> = Vec::new();
    let mut v = good.clone();
    v["data"]["events"][2]["uuid"] = json!(42);
    cases.push((v.to_string(), "data.events[2].uuid"));
    let mut v = good.clone();
    v["data"]["events"][0]["target"][1]["type"] = json!({"x": 1});
    cases.push((v.to_string(), "data.events[0].target[1].type"));
    let mut v = good.clone();
    v["data"]["events"] = json!({"not": "a list"});
    cases.push((v.to_string(), "data.events"));
    let mut v = good.clone();
    v["eventType"] = json!("com.okta.import.transform");
    cases.push((v.to_string(), "eventType"));
    let mut v = good.clone();
    v["data"]["events"][4]
        .as_object_mut()
        .unwrap()
        .remove("eventType");
    cases.push((v.to_string(), "data.events[4]: missing field `eventType`"));
    cases.push(("{\"eventType\": ".into(), "malformed JSON"));
    for (body, field) in cases {
        let reply = client.events_raw("strict", tenant.secret(), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
        let summary = reply.error_summary().unwrap();
        assert!(summary.contains(field), "'{field}' not in '{summary}'");
    }
    // Nothing of a refused delivery was queued, not even its valid events.
    assert_eq!(server.store().queued("strict").await.unwrap(), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_refuses_the_whole_delivery_with_503() {
    // A handler stuck on the first event keeps the queue from draining.
    let tenant = TenantSpec::new("small", misbehave_wasm())
        .setting("mode", "loop")
        .max_queued(2);
    let server = TestServer::start(std::slice::from_ref(&tenant)).await;
    let client = server.client();
    let reply = client
        .events("small", tenant.secret(), &delivery("delivery-mixed.json"))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(server.store().queued("small").await.unwrap(), 0);
    let reply = client
        .events("small", tenant.secret(), &delivery("delivery-sync.json"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "one event fits");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn killed_after_acknowledging_the_event_is_handled_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.redb");
    // Run 1: the handler never succeeds (it spins to its deadline), so the
    // event is acknowledged and never handled before the kill.
    let stuck = TenantSpec::new("crash", misbehave_wasm())
        .setting("mode", "loop")
        .deadline("2500ms");
    let setup = TestServer::builder()
        .tenant(stuck.clone())
        .store(StoreSpec::Embedded(store_path.clone()));
    let (config, pki) = setup.write_files(dir.path());
    let (mut child, addr) = spawn_server(&config);
    let client = Client::new(addr, &pki.ca_der);
    let body = delivery("delivery-mixed.json");
    let reply = client.events("crash", stuck.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    child.kill().unwrap(); // SIGKILL: no drain, no goodbye
    child.wait().unwrap();

    // Run 2, same store, the handler now counting: every acknowledged event
    // is handled once its lease from run 1 runs out.
    let counting = TenantSpec::new("crash", events_only_wasm()).secrets(&[stuck.secret()]);
    let server = TestServer::builder()
        .tenant(counting)
        .store(StoreSpec::Embedded(store_path))
        .start()
        .await;
    let syncs = uuids_of(&body, SYNC);
    wait_until(
        "the events acknowledged before the kill are handled",
        || async { handled(server.store(), "crash").await.len() == syncs.len() },
    )
    .await;
    wait_until("the queue is empty", || async {
        server.store().queued("crash").await.unwrap() == 0
    })
    .await;
    assert_eq!(
        handled(server.store(), "crash").await,
        syncs.into_iter().map(|u| (u, 1)).collect()
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_no_acknowledged_event_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.redb");
    let tenant = TenantSpec::new("crash", events_only_wasm());
    let setup = TestServer::builder()
        .tenant(tenant.clone())
        .store(StoreSpec::Embedded(store_path.clone()));
    let (config, pki) = setup.write_files(dir.path());
    let (mut child, addr) = spawn_server(&config);
    let client = Client::new(addr, &pki.ca_der);

    // 200 one-event deliveries, 16 in flight, while the worker handles them;
    // SIGKILL once 50 are acknowledged, with the next ones mid-flight.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let secret = tenant.secret().to_owned();
    let load = tokio::spawn(async move {
        futures::stream::iter(0..200u32)
            .map(|n| {
                let (client, secret) = (client.clone(), secret.clone());
                async move {
                    let (body, uuid) = marker(n);
                    (uuid, client.try_events("crash", &secret, &body).await)
                }
            })
            .buffer_unordered(16)
            .for_each(|r| {
                let _ = tx.send(r);
                async {}
            })
            .await;
    });
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    let mut killed = false;
    while let Some((uuid, reply)) = rx.recv().await {
        match reply {
            Ok(reply) => {
                assert_eq!(reply.status, StatusCode::OK, "{uuid}");
                acknowledged.push(uuid);
            }
            Err(_) => failed += 1,
        }
        if !killed && acknowledged.len() >= 50 {
            child.kill().unwrap();
            child.wait().unwrap();
            killed = true;
        }
    }
    load.await.unwrap();
    assert!(killed && failed > 0, "the kill cut deliveries in flight");

    // Run 2 on the same store: every acknowledged event is handled (once its
    // run-1 lease, if it had one, runs out). One being handled when the
    // process died may be handled again: at least once, never lost.
    let server = TestServer::builder()
        .tenant(tenant)
        .store(StoreSpec::Embedded(store_path))
        .start()
        .await;
    wait_until("every acknowledged event is handled", || async {
        let seen = handled(server.store(), "crash").await;
        acknowledged.iter().all(|u| seen.contains_key(u))
    })
    .await;
    wait_until("the queue is empty", || async {
        server.store().queued("crash").await.unwrap() == 0
    })
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn dead_events_are_listed_and_replayed_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.redb");
    let failing = TenantSpec::new("ops", events_only_wasm())
        .setting("fail", "true")
        .max_attempts(2)
        .retry_backoff("50ms");
    let server = TestServer::builder()
        .tenant(failing.clone())
        .store(StoreSpec::Embedded(store_path.clone()))
        .start()
        .await;
    let body = delivery("delivery-sync.json");
    let uuid = uuids_of(&body, SYNC).remove(0);
    let reply = server.client().events("ops", failing.secret(), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    wait_until("the event is dead", || async {
        !server
            .store()
            .dead("ops", None, 10)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    server.stop().await.unwrap();

    // The operator, with the server stopped (the embedded store is one process's).
    let (config, _pki) = TestServer::builder()
        .tenant(failing.clone())
        .store(StoreSpec::Embedded(store_path.clone()))
        .write_files(dir.path());
    let config = config.display().to_string();
    let (ok, out) = hookbox_output(&["events", "dead", "--config", &config, "--tenant", "ops"]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&uuid))
        .unwrap_or_else(|| panic!("{uuid} not listed in:\n{out}"));
    let fields: Vec<&str> = line.split('\t').collect();
    let id = fields[0];
    assert_eq!(fields[2], "2", "attempts: {line}");
    assert!(line.contains("events-only: asked to fail"), "{line}");
    let (ok, out) = hookbox_output(&[
        "events", "replay", "--config", &config, "--tenant", "ops", "--id", id,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = hookbox_output(&[
        "events", "replay", "--config", &config, "--tenant", "ops", "--id", id,
    ]);
    assert!(!ok, "a second replay of the same id finds nothing: {out}");

    // Fixed (no more `fail`) and restarted: the replayed event is handled once.
    let fixed = TenantSpec::new("ops", events_only_wasm()).secrets(&[failing.secret()]);
    let server = TestServer::builder()
        .tenant(fixed)
        .store(StoreSpec::Embedded(store_path))
        .start()
        .await;
    wait_until("the replayed event is handled", || async {
        handled(server.store(), "ops").await.contains_key(&uuid)
    })
    .await;
    assert!(
        server
            .store()
            .dead("ops", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        handled(server.store(), "ops").await,
        BTreeMap::from([(uuid, 1)])
    );
    server.stop().await.unwrap();
}
