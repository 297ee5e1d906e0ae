//! Claims and idempotent answers through the real host (issue 11), on both
//! backends: the embedded store (redb, in the server's directory) and Redis
//! (a real `redis-server` per test, on a free loopback port).
//!
//! - 1,000 requests, 64 in flight, 50 users sharing 5 full names → 50
//!   distinct valid logins, each user's the same on every request;
//! - claims survive a restart (embedded) and a SIGKILL under load (every
//!   login answered before the kill comes back to its user, to no one
//!   else), and two servers on one Redis never
//!   give one login to two owners;
//! - an Okta retry (same `eventId`, same body) gets the same bytes and claims
//!   nothing new, even after the plugin was swapped; the same `eventId` with
//!   another body runs anew and is not stored;
//! - Redis stopped mid-run: every request is answered by the plugin's
//!   documented fallback (`claim: unavailable`), none fails; Redis back:
//!   claims work again;
//! - a plugin built for WIT 0.1.0 answers exactly as before;
//! - a flooding plugin is capped per request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt as _;
use hookbox_store::testing::RedisServer;
use hookbox_tests::{
    Client, Reply, StoreSpec, TenantSpec, TestServer, fresh_event_id, legacy_wasm,
    login_conflict_wasm, misbehave_wasm, sample_request,
};
use serde_json::{Value, json};

use crate::process::spawn_server;

/// Which backend a test runs on; Redis comes with its server (killed on drop).
enum Backend {
    Embedded,
    Redis(RedisServer),
}

impl Backend {
    fn all() -> Vec<(&'static str, Backend)> {
        vec![
            ("embedded", Backend::Embedded),
            (
                "redis",
                Backend::Redis(RedisServer::start().expect("redis-server starts")),
            ),
        ]
    }

    /// The `[store]` of a server on this backend (`None`: the default embedded store).
    fn spec(&self) -> Option<StoreSpec> {
        match self {
            Backend::Embedded => None,
            Backend::Redis(r) => Some(StoreSpec::Redis(r.url())),
        }
    }
}

async fn server(backend: &Backend, tenants: &[TenantSpec]) -> TestServer {
    let mut setup = TestServer::builder().tenants(tenants);
    if let Some(spec) = backend.spec() {
        setup = setup.store(spec);
    }
    setup.start().await
}

/// One imported user: full name `name` (0..5), `n`th of that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct User {
    name: usize,
    n: usize,
}

const NAMES: [(&str, &str, &str); 5] = [
    ("George", "Alexander", "Smith"),
    ("Maria", "José", "García"),
    ("Sean", "Patrick", "O'Brien"),
    ("Li", "Wei", "Zhang"),
    ("Anne-Marie", "Claire", "Dubois"),
];

impl User {
    /// Even-numbered users have a middle name, odd-numbered ones do not.
    fn has_middle(&self) -> bool {
        self.n.is_multiple_of(2)
    }

    fn external_id(&self) -> String {
        format!("u{}-{}", self.name, self.n)
    }

    /// An import request for this user: a conflict on `first.last@example.com`.
    fn request(&self) -> Value {
        let (first, middle, last) = NAMES[self.name];
        let mut req = sample_request();
        req["eventId"] = json!(fresh_event_id());
        let mut profile = json!({
            "firstName": first,
            "lastName": last,
            "externalId": self.external_id(),
            "email": format!("{}@example.org", self.external_id()),
        });
        if self.has_middle() {
            profile["middleName"] = json!(middle);
        }
        req["data"]["appUser"]["profile"] = profile;
        req["data"]["user"]["profile"] = json!({
            "firstName": first,
            "lastName": last,
            "login": "conflict@example.com",
            "email": format!("{}@example.org", self.external_id()),
        });
        req
    }
}

/// The login and the `claim` of the debug context of an answer.
pub(crate) fn login_and_claim(reply: &Reply) -> (String, String) {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let login = reply
        .new_login()
        .unwrap_or_else(|| panic!("no login in {}", String::from_utf8_lossy(&reply.body)));
    let claim = reply.json()["debugContext"]["claim"]
        .as_str()
        .unwrap_or("-")
        .to_owned();
    (login, claim)
}

/// Each `(client, user)` imported once (a fresh `eventId`), 32 in flight.
async fn import_each(work: impl IntoIterator<Item = (Client, User)>) -> Vec<(User, Reply)> {
    futures::stream::iter(work)
        .map(|(client, user)| async move {
            (
                user,
                client.hook("acme", "secret-acme", &user.request()).await,
            )
        })
        .buffer_unordered(32)
        .collect()
        .await
}

/// A login Okta accepts and the reference plugin's shape promises.
fn assert_valid_login(login: &str) {
    let (local, domain) = login.rsplit_once('@').expect("an @");
    assert_eq!(domain, "example.com", "{login}");
    assert!(
        !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !local.starts_with(['.', '-'])
            && !local.ends_with(['.', '-'])
            && !local.contains(".."),
        "{login}"
    );
}

/// Every claim of `tenant`, key → owner.
async fn claims(server: &TestServer, tenant: &str) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = server
            .store()
            .list(tenant, after.as_deref(), 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        all.extend(page.into_iter().map(|c| (c.key, c.owner)));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_for_fifty_namesakes_get_fifty_distinct_stable_logins() {
    for (name, backend) in Backend::all() {
        // A generous deadline: the machine is shared and noisy, and this test
        // is about uniqueness, not speed (a store call past the deadline
        // would make the plugin fall back, which another test covers).
        let tenant = TenantSpec::new("acme", login_conflict_wasm())
            .deadline("2s")
            .max_concurrency(64);
        let server = server(&backend, std::slice::from_ref(&tenant)).await;
        let client = server.client();
        let users: Vec<User> = (0..5)
            .flat_map(|name| (0..10).map(move |n| User { name, n }))
            .collect();
        // 1,000 requests, 20 per user, interleaved, 64 in flight.
        let requests: Vec<User> = (0..1000).map(|i| users[i % users.len()]).collect();
        let replies: Vec<(User, Reply)> = futures::stream::iter(requests)
            .map(|user| {
                let client = client.clone();
                async move {
                    let reply = client.hook("acme", "secret-acme", &user.request()).await;
                    (user, reply)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        assert_eq!(replies.len(), 1000);

        let mut by_user: BTreeMap<User, BTreeSet<String>> = BTreeMap::new();
        for (user, reply) in &replies {
            let (login, claim) = login_and_claim(reply);
            assert!(
                claim == "claimed" || claim == "already-yours",
                "{name}: every login is claimed, none a fallback: {user:?} got {claim}"
            );
            assert_valid_login(&login);
            by_user.entry(*user).or_default().insert(login);
        }
        assert_eq!(by_user.len(), 50, "{name}");
        let mut logins = BTreeSet::new();
        for (user, got) in &by_user {
            assert_eq!(got.len(), 1, "{name}: {user:?} got several logins: {got:?}");
            logins.extend(got.iter().cloned());
        }
        assert_eq!(logins.len(), 50, "{name}: 50 users, 50 distinct logins");
        // One user of each full name with a middle name gets Okta's guide's
        // first.middle.last (normalised); everyone else a hashed suffix.
        for guide in [
            "george.alexander.smith",
            "maria.jose.garcia",
            "sean.patrick.obrien",
            "li.wei.zhang",
            "anne-marie.claire.dubois",
        ] {
            assert!(
                logins.contains(&format!("{guide}@example.com")),
                "{name}: {guide} in {logins:?}"
            );
        }

        // The store holds exactly one login per user (plus one owner record each).
        let held = claims(&server, "acme").await;
        let owners: BTreeSet<&String> = held
            .iter()
            .filter(|(k, _)| !k.starts_with("owner:"))
            .map(|(_, o)| o)
            .collect();
        assert_eq!(owners.len(), 50, "{name}: {held:?}");
        assert_eq!(held.len(), 100, "{name}: 50 logins + 50 owner records");
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_survive_a_restart_of_the_embedded_store() {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("store.redb");
    let tenant = TenantSpec::new("acme", login_conflict_wasm());
    let start = || {
        TestServer::builder()
            .tenant(tenant.clone())
            .store(StoreSpec::Embedded(path.clone()))
            .start()
    };
    let (a, b) = (User { name: 0, n: 0 }, User { name: 0, n: 2 });

    let first = start().await;
    let client = first.client();
    let (login_a, claim) = login_and_claim(&client.hook("acme", "secret-acme", &a.request()).await);
    assert_eq!(claim, "claimed");
    let (login_b, _) = login_and_claim(&client.hook("acme", "secret-acme", &b.request()).await);
    assert_ne!(login_a, login_b);
    first.stop().await.unwrap();
    // The store is the same file; the server is new.
    let second = start().await;
    let client = second.client();
    // Asked in the other order: each user still gets their own login back.
    let (again_b, claim) = login_and_claim(&client.hook("acme", "secret-acme", &b.request()).await);
    assert_eq!(
        (again_b.as_str(), claim.as_str()),
        (login_b.as_str(), "already-yours")
    );
    let (again_a, _) = login_and_claim(&client.hook("acme", "secret-acme", &a.request()).await);
    assert_eq!(again_a, login_a);
    assert_eq!(claims(&second, "acme").await.len(), 4);
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_the_server_loses_no_granted_claim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let tenant = TenantSpec::new("acme", login_conflict_wasm())
        .deadline("2s")
        .max_concurrency(64);
    let setup = TestServer::builder()
        .tenant(tenant.clone())
        .store(StoreSpec::Embedded(path.clone()));
    let (config, pki) = setup.write_files(dir.path());
    let (mut child, addr) = spawn_server(&config);
    let client = Client::new(addr, &pki.ca_der);

    // 200 users of 5 full names, 32 requests in flight; SIGKILL once 40
    // answers are in, with the next ones mid-flight.
    let users: Vec<User> = (0..5)
        .flat_map(|name| (0..40).map(move |n| User { name, n }))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let load = tokio::spawn({
        let users = users.clone();
        async move {
            futures::stream::iter(users)
                .map(|user| {
                    let client = client.clone();
                    async move {
                        let request = user.request();
                        let reply = client.try_hook("acme", "secret-acme", &request).await;
                        (user, request, reply)
                    }
                })
                .buffer_unordered(32)
                .for_each(|r| {
                    let _ = tx.send(r);
                    async {}
                })
                .await;
        }
    });
    // Every answer read to its end was granted: its login must survive.
    let mut granted: Vec<(User, Value, String)> = Vec::new();
    let mut failed = 0;
    let mut killed = false;
    while let Some((user, request, reply)) = rx.recv().await {
        match reply {
            Ok(reply) => {
                let (login, claim) = login_and_claim(&reply);
                assert!(claim == "claimed", "{user:?}: {claim}");
                granted.push((user, request, login));
            }
            Err(_) => failed += 1,
        }
        if !killed && granted.len() >= 40 {
            child.kill().unwrap();
            child.wait().unwrap();
            killed = true;
        }
    }
    load.await.unwrap();
    assert!(
        killed,
        "the server answered {} before the kill",
        granted.len()
    );
    assert!(failed > 0, "the kill cut requests in flight");

    // Run 2 on the same store file.
    let server = TestServer::builder()
        .tenant(tenant)
        .store(StoreSpec::Embedded(path))
        .start()
        .await;
    let client = server.client();
    // Okta's retry of an answered request (same eventId, same body): the same login.
    for (user, request, login) in &granted {
        let (again, _) = login_and_claim(&client.hook("acme", "secret-acme", request).await);
        assert_eq!(&again, login, "{user:?}: a granted login was lost");
    }
    // Every user imported anew: the granted keep theirs, and no login has two owners.
    let owners: BTreeMap<User, String> = granted.iter().map(|(u, _, l)| (*u, l.clone())).collect();
    let replies = import_each(users.into_iter().map(|u| (client.clone(), u))).await;
    let mut logins = BTreeSet::new();
    for (user, reply) in &replies {
        let (login, claim) = login_and_claim(reply);
        if let Some(granted) = owners.get(user) {
            assert_eq!(
                (&login, claim.as_str()),
                (granted, "already-yours"),
                "{user:?}"
            );
        }
        assert!(logins.insert(login.clone()), "{login} given twice");
    }
    assert_eq!(logins.len(), 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_redis_never_give_one_login_to_two_owners() {
    let redis = RedisServer::start().unwrap();
    let tenant = TenantSpec::new("acme", login_conflict_wasm());
    let start = || {
        TestServer::builder()
            .tenant(tenant.clone())
            .store(StoreSpec::Redis(redis.url()))
            .start()
    };
    let (one, two) = (start().await, start().await);
    let clients = [one.client(), two.client()];
    let users: Vec<User> = (0..5)
        .flat_map(|name| (0..4).map(move |n| User { name, n }))
        .collect();
    // Every user through both servers at once, 32 in flight.
    let work: Vec<(usize, User)> = (0..4)
        .flat_map(|round| users.iter().map(move |u| (round % 2, *u)))
        .collect();
    let replies = import_each(
        work.into_iter()
            .map(|(server, user)| (clients[server].clone(), user)),
    )
    .await;
    let mut by_user: BTreeMap<User, BTreeSet<String>> = BTreeMap::new();
    for (user, reply) in &replies {
        let (login, claim) = login_and_claim(reply);
        assert_ne!(claim, "unavailable");
        by_user.entry(*user).or_default().insert(login);
    }
    let mut owners_of: BTreeMap<String, usize> = BTreeMap::new();
    for logins in by_user.values() {
        assert_eq!(
            logins.len(),
            1,
            "one login per user across servers: {by_user:?}"
        );
        *owners_of
            .entry(logins.iter().next().unwrap().clone())
            .or_default() += 1;
    }
    assert!(
        owners_of.values().all(|&n| n == 1),
        "a login given to two users: {owners_of:?}"
    );
    assert_eq!(owners_of.len(), users.len());
    // Both servers see the same store.
    assert_eq!(claims(&one, "acme").await, claims(&two, "acme").await);
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_okta_retry_gets_the_same_bytes_and_claims_nothing_new() {
    for (name, backend) in Backend::all() {
        let tenant = TenantSpec::new("acme", login_conflict_wasm());
        let server = server(&backend, std::slice::from_ref(&tenant)).await;
        let client = server.client();
        let user = User { name: 1, n: 1 };
        let request = user.request();
        let first = client.hook("acme", "secret-acme", &request).await;
        let (_, claim) = login_and_claim(&first);
        assert_eq!(claim, "claimed", "{name}");
        let held = claims(&server, "acme").await;
        assert_eq!(held.len(), 2, "{name}: the login and its owner record");

        // Okta's retry: the same bytes, byte for byte, and nothing claimed.
        let retry = client.hook("acme", "secret-acme", &request).await;
        assert_eq!(retry.status, 200);
        assert_eq!(retry.body, first.body, "{name}");
        assert_eq!(claims(&server, "acme").await, held, "{name}");

        // Even when another plugin answers the tenant now.
        server.rewrite_tenants(&[TenantSpec::new("acme", misbehave_wasm())]);
        let report = server.reload().await;
        assert!(report.applied, "{report:?}");
        let swapped = client.hook("acme", "secret-acme", &request).await;
        assert_eq!(
            swapped.body, first.body,
            "{name}: replayed, not answered by the new plugin"
        );
        // A new event is answered by the new plugin (misbehave's echo).
        let fresh = client.hook("acme", "secret-acme", &user.request()).await;
        assert_ne!(fresh.body, first.body, "{name}");

        // The same eventId with another body is not a retry: it runs, and is
        // not stored (the first answer stays the one replayed).
        let mut other = request.clone();
        other["data"]["appUser"]["profile"]["firstName"] = json!("Mario");
        let reused = client.hook("acme", "secret-acme", &other).await;
        assert_eq!(reused.status, 200);
        assert_ne!(reused.body, first.body, "{name}");
        let again = client.hook("acme", "secret-acme", &request).await;
        assert_eq!(again.body, first.body, "{name}");
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_run_answers_with_the_fallback_and_recovers() {
    let mut redis = RedisServer::start().unwrap();
    let tenant = TenantSpec::new("acme", login_conflict_wasm()).deadline("500ms");
    let server = TestServer::builder()
        .tenant(tenant)
        .store(StoreSpec::Redis(redis.url()))
        .start()
        .await;
    let client = server.client();
    let (_, claim) = login_and_claim(
        &client
            .hook("acme", "secret-acme", &User { name: 2, n: 0 }.request())
            .await,
    );
    assert_eq!(claim, "claimed");

    redis.stop();
    // Every request is answered, by the plugin (no deadline, no trap): the
    // documented fallback, a hashed-suffix login flagged `claim: unavailable`.
    let down: Vec<Reply> = futures::stream::iter(0..16)
        .map(|n| {
            let client = client.clone();
            async move {
                client
                    .hook("acme", "secret-acme", &User { name: 3, n }.request())
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for reply in &down {
        let (login, claim) = login_and_claim(reply);
        assert_eq!(
            claim,
            "unavailable",
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(login.starts_with("li.zhang."), "{login}");
    }

    redis.restart().unwrap();
    // The connection manager reconnects on its own; the first calls after
    // the restart may still fail while it does. No sleeping: ask again.
    let mut recovered = None;
    for attempt in 0..50 {
        let reply = client
            .hook(
                "acme",
                "secret-acme",
                &User {
                    name: 4,
                    n: attempt,
                }
                .request(),
            )
            .await;
        let (_, claim) = login_and_claim(&reply);
        if claim == "claimed" {
            recovered = Some(attempt);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(recovered.is_some(), "claims work again once Redis is back");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wit_0_1_plugin_still_answers_exactly_as_before() {
    let tenant = TenantSpec::new("legacy", legacy_wasm()).setting("legacy_probe", "granted");
    let server = TestServer::start(&[tenant]).await;
    let digest = server.tenant("legacy").plugin().short_digest().to_owned();
    let reply = server
        .client()
        .hook("legacy", "secret-legacy", &sample_request())
        .await;
    assert_eq!(reply.status, 200);
    let expected = json!({
        "commands": [{
            "type": "com.okta.user.profile.update",
            "value": {"login": "sally2.admin2.272ed9@clouditude.net"}
        }],
        "debugContext": {
            "resolver": "login-conflict",
            "rule": "hashed-suffix",
            "probe": "granted",
            "hookboxPlugin": digest,
        }
    });
    assert_eq!(reply.body, serde_json::to_vec(&expected).unwrap());
    assert_eq!(
        server.tenant("legacy").plugin().exports().version.as_str(),
        "0.1.0"
    );
    assert!(
        claims(&server, "legacy").await.is_empty(),
        "0.1.0 has no claims"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_plugin_gets_the_store_call_cap() {
    for (name, backend) in Backend::all() {
        let tenant = TenantSpec::new("flood", misbehave_wasm())
            .setting("mode", "store-flood")
            .deadline("1s");
        let server = server(&backend, &[tenant]).await;
        let reply = server
            .client()
            .hook("flood", "secret-flood", &hookbox_tests::fresh_sample())
            .await;
        assert_eq!(reply.status, 200, "{name}");
        let body = reply.json();
        let value = &body["commands"][0]["value"];
        let cap = i64::from(hookbox::plugin::MAX_STORE_CALLS);
        assert_eq!(value["claimed"], json!(cap), "{name}: {body}");
        assert_eq!(value["failed"], json!(10_000 - cap), "{name}: {body}");
        assert_eq!(claims(&server, "flood").await.len() as i64, cap, "{name}");
        server.stop().await.unwrap();
    }
}

/// Tenants never meet: the same key in two tenants, two owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_have_separate_claim_spaces() {
    let tenants = [
        TenantSpec::new("one", login_conflict_wasm()),
        TenantSpec::new("two", login_conflict_wasm()),
    ];
    let server = TestServer::start(&tenants).await;
    let client = server.client();
    let user = User { name: 0, n: 1 };
    let (a, ca) = login_and_claim(&client.hook("one", "secret-one", &user.request()).await);
    let (b, cb) = login_and_claim(&client.hook("two", "secret-two", &user.request()).await);
    assert_eq!((a.as_str(), ca.as_str()), (b.as_str(), "claimed"));
    assert_eq!(
        cb, "claimed",
        "not already-yours: tenant two's space is its own"
    );
    let store = Arc::new(server.store().clone());
    assert_eq!(store.list("one", None, 10).await.unwrap().len(), 2);
    assert_eq!(store.list("two", None, 10).await.unwrap().len(), 2);
    server.stop().await.unwrap();
}
