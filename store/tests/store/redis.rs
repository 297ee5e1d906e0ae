//! What only the Redis backend has: several handles (replicas) on one server, a server that
//! goes away and comes back, a server that never answers.

use std::time::Duration;

use hookbox_store::testing::RedisServer;
use hookbox_store::{ClaimOutcome, Remembered, Store, StoreConfig, StoreError};

fn config(url: String, call_timeout: Duration) -> StoreConfig {
    match StoreConfig::redis(url) {
        StoreConfig::Redis {
            url,
            prefix,
            connect_timeout,
            answer_ttl,
            ..
        } => StoreConfig::Redis {
            url,
            prefix,
            call_timeout,
            connect_timeout,
            answer_ttl,
        },
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_server_share_claims_and_answers() {
    let server = RedisServer::start().unwrap();
    let a = Store::open(&StoreConfig::redis(server.url()))
        .await
        .unwrap();
    let b = Store::open(&StoreConfig::redis(server.url()))
        .await
        .unwrap();
    assert_eq!(
        a.claim("acme", "george", "u1").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        b.claim("acme", "george", "u2").await.unwrap(),
        ClaimOutcome::Taken
    );
    assert_eq!(
        b.claim("acme", "george", "u1").await.unwrap(),
        ClaimOutcome::AlreadyYours
    );
    assert_eq!(
        b.owner_of("acme", "george").await.unwrap().as_deref(),
        Some("u1")
    );
    a.remember("acme", "ev", [1; 32], b"from a".to_vec())
        .await
        .unwrap();
    let Remembered::Existing(got) = b
        .remember("acme", "ev", [2; 32], b"from b".to_vec())
        .await
        .unwrap()
    else {
        panic!("b must see a's answer");
    };
    assert_eq!(got.body, b"from a");
    assert_eq!(b.list("acme", None, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_handles_have_one_winner_per_key() {
    let server = RedisServer::start().unwrap();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            Store::open(&StoreConfig::redis(server.url()))
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for t in 0..64usize {
        let store = stores[t % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("o{t}");
            let mut won = Vec::new();
            for i in 0..10 {
                let key = format!("k{}", (i + t) % 10);
                if store.claim("acme", &key, &owner).await.unwrap() == ClaimOutcome::Claimed {
                    won.push(key);
                }
            }
            won
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    assert_eq!(all, expected, "each key won exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_documented_layout() {
    let server = RedisServer::start().unwrap();
    let store = Store::open(&StoreConfig::redis(server.url()))
        .await
        .unwrap();
    store.claim("acme", "a:b", "u1").await.unwrap();
    store
        .remember("acme", "ev1", [0; 32], vec![])
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "hookbox:{acme}:answer:ev1",
            "hookbox:{acme}:claim:a:b",
            "hookbox:{acme}:claims"
        ]
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg("hookbox:{acme}:answer:ev1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 600_000,
        "answer has the default TTL, got {ttl}"
    );
    let claim_ttl: i64 = redis::cmd("PTTL")
        .arg("hookbox:{acme}:claim:a:b")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(claim_ttl, -1, "claims never expire");
}

fn assert_down<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(e @ (StoreError::Unavailable(_) | StoreError::Timeout(_))) => {
            assert!(e.is_transient(), "{what}: {e}");
        }
        other => panic!("{what}: expected Unavailable or Timeout, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_errors_and_a_restarted_one_is_used_again() {
    let mut server = RedisServer::start().unwrap();
    let store = Store::open(&config(server.url(), Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(
        store.claim("acme", "before", "u1").await.unwrap(),
        ClaimOutcome::Claimed
    );

    server.stop();
    // Several calls in a row: the first meets the dead connection, the next ones a failed
    // reconnect. None may hang (the test would time out) or succeed.
    for _ in 0..3 {
        assert_down(store.claim("acme", "during", "u1").await, "claim");
        assert_down(store.owner_of("acme", "before").await, "owner_of");
        assert_down(
            store.remember("acme", "ev", [0; 32], vec![]).await,
            "remember",
        );
        assert_down(store.recall("acme", "ev").await, "recall");
        assert_down(store.list("acme", None, 10).await, "list");
        assert_down(store.ping().await, "ping");
    }

    server.restart().unwrap();
    // The same Store handle reconnects by itself; wait (bounded) for the first success.
    let mut attempts = 0;
    while store.ping().await.is_err() {
        attempts += 1;
        assert!(attempts < 200, "store never reconnected");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The restarted server is empty (no persistence in tests): the claim is new.
    assert_eq!(
        store.claim("acme", "after", "u1").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.owner_of("acme", "after").await.unwrap().as_deref(),
        Some("u1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    // Accepts connections and reads nothing: the worst kind of "down".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let store = Store::open(&config(
        format!("redis://127.0.0.1:{port}/0"),
        Duration::from_millis(200),
    ))
    .await
    .unwrap();
    assert_down(store.claim("acme", "k", "u").await, "claim");
    assert_down(store.ping().await, "ping");
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_does_not_need_a_running_server_but_refuses_a_bad_url() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    server.stop();
    let store = Store::open(&config(url, Duration::from_millis(200)))
        .await
        .expect("open is lazy");
    assert_down(store.ping().await, "ping while down");
    server.restart().unwrap();
    let mut attempts = 0;
    while store.ping().await.is_err() {
        attempts += 1;
        assert!(attempts < 200, "store never connected");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    for bad in [
        "http://nope",
        "rediss://127.0.0.1:1/0",
        "redis://127.0.0.1:notaport",
    ] {
        let err = Store::open(&StoreConfig::redis(bad)).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_under_our_key_is_corrupt_not_unavailable() {
    let server = RedisServer::start().unwrap();
    let store = Store::open(&StoreConfig::redis(server.url()))
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("hookbox:{acme}:claim:k")
        .arg("not a hash")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("hookbox:{acme}:answer:ev")
        .arg("not v1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store.owner_of("acme", "k").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = store.claim("acme", "k", "u").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = store.recall("acme", "ev").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}
