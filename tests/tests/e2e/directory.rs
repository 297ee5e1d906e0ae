//! The tenant's Okta directory through the real host (issue 16): a fake Okta
//! Users API over real HTTPS on loopback (`hookbox_directory::testing::FakeOkta`,
//! its CA given to the tenant as `ca_file`, its token as `token_file`), the
//! reference plugin asking `directory.find-user` before it claims.
//!
//! - a candidate held by another Okta user is skipped; one held by the
//!   matched user (`data.user.id`) is kept;
//! - `429` with a reset: no further calls until the reset (counted at the
//!   fake), every request still answered (the plugin's documented
//!   degradation: the claim store alone decides, `directory: rate-limited`),
//!   and lookups resume after the reset;
//! - a slow or down directory: answered within the plugin's deadline
//!   (`directory: timed-out` / `unavailable`), never the deadline trap;
//! - the cache: namesakes looking the same held login up make one call, and
//!   a second import of the same users makes no new call; without the cache
//!   every lookup is a call;
//! - the figures: directory calls per imported user in the 1,000-request,
//!   64-in-flight, 50-namesake run of `claims.rs`, with and without the cache.
//!
//! A wrong token (`denied`, and neither the token nor a login in the log) is
//! in `tests/logs.rs`, which captures the log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use hookbox_directory::testing::{FakeOkta, TOKEN, epoch_now};
use hookbox_tests::{
    Reply, TenantSpec, TestServer, fresh_event_id, login_conflict_wasm, sample_request,
};
use serde_json::{Value, json};

const GUIDE: &str = "george.alexander.smith@example.com";

/// The reference plugin's tenant `id`, looking logins up in `okta`.
fn tenant(id: &str, okta: &FakeOkta) -> TenantSpec {
    TenantSpec::new(id, login_conflict_wasm()).directory(&okta.url(), TOKEN, okta.ca_pem())
}

/// An import of George Alexander Smith (`external_id`) conflicting on
/// `george.smith@example.com`; `matched`: the Okta user Okta matched
/// (`data.user.id`).
fn george(external_id: &str, matched: Option<&str>) -> Value {
    namesake(("George", "Alexander", "Smith"), external_id, matched)
}

fn namesake(
    (first, middle, last): (&str, &str, &str),
    external_id: &str,
    matched: Option<&str>,
) -> Value {
    let mut req = sample_request();
    req["eventId"] = json!(fresh_event_id());
    req["data"]["appUser"]["profile"] = json!({
        "firstName": first,
        "middleName": middle,
        "lastName": last,
        "externalId": external_id,
    });
    req["data"]["user"] = json!({
        "profile": {
            "firstName": first,
            "lastName": last,
            "login": "george.smith@example.com",
        }
    });
    if let Some(id) = matched {
        req["data"]["user"]["id"] = json!(id);
    }
    req
}

/// The login answered and the debug context's `rule`, `claim` and `directory`.
fn answer(reply: &Reply) -> (String, String, String, String) {
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 200, "{body}");
    let login = reply
        .new_login()
        .unwrap_or_else(|| panic!("no login in {body}"));
    let debug = &reply.json()["debugContext"];
    let field = |k: &str| debug[k].as_str().unwrap_or("-").to_owned();
    (login, field("rule"), field("claim"), field("directory"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_held_by_another_okta_user_is_skipped_and_the_matched_users_own_is_kept() {
    let okta = FakeOkta::start().await.unwrap();
    okta.add_user(GUIDE, "00u9");
    // A generous deadline: this test is about the answer, not speed.
    let t = tenant("acme", &okta).deadline("2s");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();

    // Another Okta user (00u9) holds first.middle.last: skipped, nothing claimed for it.
    let reply = client.hook("acme", t.secret(), &george("g-1", None)).await;
    let (login, rule, claim, directory) = answer(&reply);
    assert_ne!(login, GUIDE);
    assert!(login.starts_with("george.smith."), "{login}");
    assert_eq!(
        (rule.as_str(), claim.as_str(), directory.as_str()),
        ("hashed-suffix", "claimed", "checked")
    );
    assert_eq!(okta.requests_for(GUIDE), 1, "looked up once, over HTTPS");
    assert!(
        server
            .store()
            .owner_of("acme", GUIDE)
            .await
            .unwrap()
            .is_none(),
        "a login another Okta user holds is never claimed"
    );

    // Okta matched this import to 00u9 itself: its own login is no conflict.
    let reply = client
        .hook("acme", t.secret(), &george("g-2", Some("00u9")))
        .await;
    let (login, rule, claim, directory) = answer(&reply);
    assert_eq!(login, GUIDE);
    assert_eq!(
        (rule.as_str(), claim.as_str(), directory.as_str()),
        ("middle-name", "claimed", "checked")
    );

    let stats = server.tenant("acme").directory().unwrap().stats();
    assert_eq!((stats.found, stats.okta_calls), (2, okta.request_count()));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_stops_the_lookups_until_the_reset_and_every_request_is_still_answered() {
    let okta = FakeOkta::start().await.unwrap();
    okta.add_user(GUIDE, "00u9");
    let t = tenant("acme", &okta).deadline("2s");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    // Closed once the server is up: on a loaded machine its start alone
    // could outlast a window opened before it.
    let reset = epoch_now() + 3;
    okta.set_429_until(reset);

    // The first lookup gets the 429; the following ones are answered
    // `rate-limited` by the host at once, without a call.
    let mut logins = BTreeSet::new();
    for i in 0..5 {
        let reply = client
            .hook("acme", t.secret(), &george(&format!("r-{i}"), None))
            .await;
        let (login, _, claim, directory) = answer(&reply);
        assert_eq!(directory, "rate-limited", "the documented degradation");
        assert_eq!(claim, "claimed", "the claim store still decides");
        logins.insert(login);
    }
    if epoch_now() < reset {
        assert_eq!(okta.request_count(), 1, "no call while the gate is closed");
    }
    assert_eq!(
        logins.len(),
        5,
        "distinct logins even without the directory"
    );
    let stats = server.tenant("acme").directory().unwrap().stats();
    assert_eq!(stats.rate_limit_pauses, 1);
    assert!(stats.rate_limited >= 5, "{stats:?}");

    // After the reset, lookups resume (polled: the reset is on the clock).
    let mut resumed = false;
    for i in 0..60 {
        let reply = client
            .hook("acme", t.secret(), &george(&format!("after-{i}"), None))
            .await;
        let (login, _, _, directory) = answer(&reply);
        if directory == "checked" {
            assert_ne!(login, GUIDE);
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(resumed, "lookups resume after the reset");
    assert!(okta.request_count() >= 2);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_down_directory_is_answered_within_the_deadline() {
    let okta = FakeOkta::start().await.unwrap();
    okta.set_delay(Duration::from_secs(10));
    // The default call_timeout (1 s) is above the deadline: the deadline bounds the lookup.
    let t = tenant("acme", &okta).deadline("500ms");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let reply = client.hook("acme", t.secret(), &george("s-1", None)).await;
    let (login, rule, claim, directory) = answer(&reply);
    assert_eq!(
        directory, "timed-out",
        "the lookup gave up before the deadline"
    );
    // The name-only login cannot be checked: a hashed suffix, claimed in
    // the time the host left for it (on a machine too loaded for even that,
    // the plugin's own store fallback: still an answer, never the trap).
    assert!(login.starts_with("george.smith."), "{login}");
    assert_eq!(rule, "hashed-suffix");
    assert!(claim == "claimed" || claim == "unavailable", "{claim}");
    assert_eq!(
        okta.request_count(),
        1,
        "one lookup, then the plugin stops asking"
    );

    okta.set_delay(Duration::ZERO);
    okta.set_down(true);
    let reply = client.hook("acme", t.secret(), &george("s-2", None)).await;
    let (_, _, claim, directory) = answer(&reply);
    assert_eq!(
        (claim.as_str(), directory.as_str()),
        ("claimed", "unavailable")
    );
    let stats = server.tenant("acme").directory().unwrap().stats();
    assert_eq!((stats.timed_out, stats.unavailable), (1, 1), "{stats:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_users_are_cached_and_a_second_import_makes_no_new_calls() {
    let (cached, uncached) = (
        FakeOkta::start().await.unwrap(),
        FakeOkta::start().await.unwrap(),
    );
    for okta in [&cached, &uncached] {
        okta.add_user(GUIDE, "00u9");
    }
    let a = tenant("cached", &cached)
        .deadline("2s")
        .directory_key("free_ttl", "\"10m\"");
    let b = tenant("uncached", &uncached)
        .deadline("2s")
        .directory_key("cache_entries", "0");
    let server = TestServer::start(&[a.clone(), b.clone()]).await;
    let client = server.client();

    let mut first = BTreeMap::new();
    for pass in 0..2 {
        // Ten namesakes, one after the other (concurrent misses are not merged).
        for (spec, okta) in [(&a, &cached), (&b, &uncached)] {
            let calls_before = okta.request_count();
            for i in 0..10 {
                let reply = client
                    .hook(spec.id(), spec.secret(), &george(&format!("c-{i}"), None))
                    .await;
                let (login, _, _, directory) = answer(&reply);
                assert_eq!(directory, "checked");
                assert_ne!(login, GUIDE);
                let key = (spec.id().to_owned(), i);
                if pass == 0 {
                    first.insert(key, login);
                } else {
                    assert_eq!(first[&key], login, "the same user, the same login");
                }
            }
            let calls = okta.request_count() - calls_before;
            match (spec.id(), pass) {
                // The held login once, then each user's own (free) candidate once.
                ("cached", 0) => assert_eq!((okta.requests_for(GUIDE), calls), (1, 11)),
                // Everything cached: the recorded logins (free) and nothing else.
                ("cached", _) => assert_eq!(calls, 0, "a second import makes no call"),
                ("uncached", 0) => assert_eq!((okta.requests_for(GUIDE), calls), (10, 20)),
                // Each user's recorded login, checked again.
                _ => assert_eq!((okta.requests_for(GUIDE), calls), (10, 10)),
            }
        }
    }
    let stats = server.tenant("cached").directory().unwrap().stats();
    assert_eq!(stats.okta_calls, 11);
    assert_eq!(stats.cache_hits, stats.lookups - 11, "{stats:?}");
    server.stop().await.unwrap();
}

const NAMES: [(&str, &str, &str); 5] = [
    ("George", "Alexander", "Smith"),
    ("Maria", "José", "García"),
    ("Sean", "Patrick", "O'Brien"),
    ("Li", "Wei", "Zhang"),
    ("Anne-Marie", "Claire", "Dubois"),
];

const GUIDES: [&str; 5] = [
    "george.alexander.smith@example.com",
    "maria.jose.garcia@example.com",
    "sean.patrick.obrien@example.com",
    "li.wei.zhang@example.com",
    "anne-marie.claire.dubois@example.com",
];

/// `claims.rs`'s 1,000 requests (50 users, 5 full names, 20 requests each,
/// 64 in flight) with the directory configured, each name's Okta-guide login
/// already held by an Okta user; returns (Okta calls, lookups, answers by
/// `directory` status).
async fn thousand_requests(cache: bool) -> (u64, u64, BTreeMap<String, usize>) {
    let okta = FakeOkta::start().await.unwrap();
    for (i, login) in GUIDES.iter().enumerate() {
        okta.add_user(login, &format!("00u{i}"));
    }
    let mut t = tenant("acme", &okta)
        .deadline("2s")
        .max_concurrency(64)
        .directory_key("call_timeout", "\"2s\"");
    if !cache {
        t = t.directory_key("cache_entries", "0");
    }
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let client = server.client();
    let users: Vec<(usize, usize)> = (0..5)
        .flat_map(|name| (0..10).map(move |n| (name, n)))
        .collect();
    let requests: Vec<(usize, usize)> = (0..1000).map(|i| users[i % users.len()]).collect();
    let replies: Vec<((usize, usize), Reply)> = futures::stream::iter(requests)
        .map(|user| {
            let client = client.clone();
            async move {
                let req = namesake(NAMES[user.0], &format!("u{}-{}", user.0, user.1), None);
                (user, client.hook("acme", "secret-acme", &req).await)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut by_user: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    for (user, reply) in &replies {
        let (login, _, claim, directory) = answer(reply);
        assert!(
            claim == "claimed" || claim == "already-yours",
            "{user:?}: {claim}"
        );
        if directory == "checked" {
            assert!(
                !GUIDES.contains(&login.as_str()),
                "{user:?} got a held login"
            );
        }
        *statuses.entry(directory).or_insert(0) += 1;
        by_user.entry(*user).or_default().insert(login);
    }
    assert_eq!(by_user.len(), 50);
    let logins: BTreeSet<&String> = by_user.values().flatten().collect();
    assert!(
        by_user.values().all(|l| l.len() == 1),
        "a user got several logins"
    );
    assert_eq!(logins.len(), 50, "50 users, 50 distinct logins");
    let lookups = server.tenant("acme").directory().unwrap().stats().lookups;
    let calls = okta.request_count();
    server.stop().await.unwrap();
    (calls, lookups, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_calls_per_imported_user_in_the_thousand_request_run() {
    let (with_cache, lookups_cached, statuses_cached) = thousand_requests(true).await;
    let (without_cache, lookups_uncached, statuses_uncached) = thousand_requests(false).await;
    println!(
        "directory, 1,000 requests / 50 users / 64 in flight: with the cache {with_cache} Okta calls \
         ({:.2} per user, {lookups_cached} lookups, answers {statuses_cached:?}); without \
         {without_cache} ({:.2} per user, {lookups_uncached} lookups, answers {statuses_uncached:?})",
        with_cache as f64 / 50.0,
        without_cache as f64 / 50.0,
    );
    assert!(with_cache < without_cache, "{with_cache} < {without_cache}");
}
