//! Behaviour every backend must show. Each function gets a fresh, empty store.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hookbox_store::{
    ClaimOutcome, MAX_ANSWER_BODY, MAX_CLAIM_KEY, MAX_CLAIM_OWNER, MAX_EVENT_ID, Remembered, Store,
    StoreError,
};

const T: &str = "acme";

pub async fn ping_answers(store: &Store) {
    store.ping().await.expect("ping");
}

pub async fn claim_outcomes(store: &Store) {
    assert_eq!(store.owner_of(T, "george.smith").await.unwrap(), None);
    assert_eq!(
        store.claim(T, "george.smith", "u1").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim(T, "george.smith", "u1").await.unwrap(),
        ClaimOutcome::AlreadyYours
    );
    assert_eq!(
        store.claim(T, "george.smith", "u2").await.unwrap(),
        ClaimOutcome::Taken
    );
    assert_eq!(
        store.owner_of(T, "george.smith").await.unwrap().as_deref(),
        Some("u1")
    );
}

pub async fn keys_compare_byte_exactly(store: &Store) {
    assert_eq!(
        store.claim(T, "George", "u1").await.unwrap(),
        ClaimOutcome::Claimed
    );
    // No case folding in the store: that is the caller's job.
    assert_eq!(
        store.claim(T, "george", "u2").await.unwrap(),
        ClaimOutcome::Claimed
    );
    // Separators inside keys are just bytes.
    assert_eq!(
        store.claim(T, "a:claim:b", "u3").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim(T, "a", "u4").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.owner_of(T, "a:claim:b").await.unwrap().as_deref(),
        Some("u3")
    );
    assert_eq!(store.owner_of(T, "a").await.unwrap().as_deref(), Some("u4"));
}

pub async fn release_only_by_owner(store: &Store) {
    store.claim(T, "k", "u1").await.unwrap();
    assert!(!store.release(T, "k", "u2").await.unwrap());
    assert_eq!(store.owner_of(T, "k").await.unwrap().as_deref(), Some("u1"));
    assert!(store.release(T, "k", "u1").await.unwrap());
    assert_eq!(store.owner_of(T, "k").await.unwrap(), None);
    assert!(
        !store.release(T, "k", "u1").await.unwrap(),
        "second release"
    );
    assert!(store.list(T, None, 10).await.unwrap().is_empty());
    // Free again: anyone may claim it.
    assert_eq!(
        store.claim(T, "k", "u2").await.unwrap(),
        ClaimOutcome::Claimed
    );
}

pub async fn force_release_returns_former_owner(store: &Store) {
    store.claim(T, "k", "u1").await.unwrap();
    assert_eq!(
        store.force_release(T, "k").await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(store.force_release(T, "k").await.unwrap(), None);
    assert_eq!(store.owner_of(T, "k").await.unwrap(), None);
    assert!(store.list(T, None, 10).await.unwrap().is_empty());
}

pub async fn list_pages_in_byte_order(store: &Store) {
    let mut expected = BTreeMap::new();
    for i in 0..25 {
        let key = format!("user{i:02}@example.com");
        store.claim(T, &key, &format!("owner{i}")).await.unwrap();
        expected.insert(key, format!("owner{i}"));
    }
    for key in ["Zed", "é-accent", "with:colon"] {
        store.claim(T, key, "other").await.unwrap();
        expected.insert(key.to_owned(), "other".to_owned());
    }
    // A neighbouring tenant's claims must not leak into the listing.
    store
        .claim("acme-2", "user00@example.com", "x")
        .await
        .unwrap();
    store.claim("acmf", "a", "x").await.unwrap();
    store.claim("acm", "zzz", "x").await.unwrap();

    let before = std::time::SystemTime::now() - Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list(T, after.as_deref(), 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        pages += 1;
        for r in &page {
            assert!(r.claimed_at > before, "claimed_at is recent");
        }
        after = page.last().map(|r| r.key.clone());
        seen.extend(page.into_iter().map(|r| (r.key, r.owner)));
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, String)> = expected.into_iter().collect();
    assert_eq!(seen, expected, "every claim once, in byte order of keys");
    assert!(store.list(T, None, 0).await.unwrap().is_empty());
}

pub async fn tenants_are_isolated(store: &Store) {
    assert_eq!(
        store.claim("a", "k", "u1").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim("b", "k", "u2").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.owner_of("a", "k").await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(
        store.owner_of("b", "k").await.unwrap().as_deref(),
        Some("u2")
    );
    assert!(!store.release("b", "k", "u1").await.unwrap());
    assert_eq!(
        store.force_release("a", "k").await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(
        store.owner_of("b", "k").await.unwrap().as_deref(),
        Some("u2")
    );

    store
        .remember("a", "ev", [1; 32], b"for a".to_vec())
        .await
        .unwrap();
    assert_eq!(store.recall("b", "ev").await.unwrap(), None);
    assert_eq!(
        store
            .remember("b", "ev", [2; 32], b"for b".to_vec())
            .await
            .unwrap(),
        Remembered::Stored
    );
    assert_eq!(
        store.recall("a", "ev").await.unwrap().unwrap().body,
        b"for a"
    );
    assert_eq!(
        store.recall("b", "ev").await.unwrap().unwrap().body,
        b"for b"
    );
}

pub async fn racing_claims_have_one_winner_per_key(store: &Store) {
    let mut tasks = Vec::new();
    for t in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("owner-{t}");
            let mut outcomes = Vec::new();
            // Each task walks the keys from a different start so they collide in every order.
            for i in 0..10 {
                let key = format!("login{}", (i + t) % 10);
                let outcome = store.claim(T, &key, &owner).await.expect("claim");
                outcomes.push((key, owner.clone(), outcome));
            }
            outcomes
        }));
    }
    let mut winners: HashMap<String, Vec<String>> = HashMap::new();
    for task in tasks {
        for (key, owner, outcome) in task.await.unwrap() {
            match outcome {
                ClaimOutcome::Claimed => winners.entry(key).or_default().push(owner),
                ClaimOutcome::Taken => {}
                ClaimOutcome::AlreadyYours => panic!("{owner} never claimed {key} before"),
            }
        }
    }
    assert_eq!(winners.len(), 10, "every key has a winner");
    for (key, owners) in winners {
        assert_eq!(owners.len(), 1, "{key} claimed by {owners:?}");
        assert_eq!(
            store.owner_of(T, &key).await.unwrap(),
            Some(owners[0].clone())
        );
    }
}

pub async fn answers_first_writer_wins(store: &Store) {
    assert_eq!(store.recall(T, "ev1").await.unwrap(), None);
    let started = std::time::SystemTime::now() - Duration::from_secs(60);
    assert_eq!(
        store
            .remember(T, "ev1", [7; 32], b"first".to_vec())
            .await
            .unwrap(),
        Remembered::Stored
    );
    let Remembered::Existing(existing) = store
        .remember(T, "ev1", [8; 32], b"second".to_vec())
        .await
        .unwrap()
    else {
        panic!("second writer must get the first answer");
    };
    assert_eq!(existing.body, b"first");
    assert_eq!(existing.request_digest, [7; 32]);
    assert!(existing.created_at > started);
    assert_eq!(store.recall(T, "ev1").await.unwrap(), Some(existing));
    // Empty bodies are answers too.
    store.remember(T, "ev2", [0; 32], Vec::new()).await.unwrap();
    assert_eq!(store.recall(T, "ev2").await.unwrap().unwrap().body, b"");
}

pub async fn racing_remembers_agree_on_one_answer(store: &Store) {
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("answer {i}").into_bytes();
            let got = store
                .remember(T, "race", [i; 32], body.clone())
                .await
                .unwrap();
            match got {
                Remembered::Stored => (true, body),
                Remembered::Existing(a) => (false, a.body),
            }
        }));
    }
    let mut stored = 0;
    let mut bodies = Vec::new();
    for t in tasks {
        let (won, body) = t.await.unwrap();
        stored += usize::from(won);
        bodies.push(body);
    }
    assert_eq!(stored, 1, "exactly one writer stores");
    let kept = store.recall(T, "race").await.unwrap().unwrap().body;
    assert!(
        bodies.iter().all(|b| *b == kept),
        "everyone answers with the kept answer"
    );
}

pub async fn answers_expire(store: &Store) {
    store
        .remember_for(
            T,
            "short",
            [1; 32],
            b"soon gone".to_vec(),
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    store
        .remember_for(
            T,
            "long",
            [1; 32],
            b"stays".to_vec(),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    // Wait for the expiry itself (bounded); no fixed sleep decides the outcome.
    let give_up = Instant::now() + Duration::from_secs(10);
    while store.recall(T, "short").await.unwrap().is_some() {
        assert!(Instant::now() < give_up, "answer never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.purge_expired().await.unwrap();
    assert!(store.recall(T, "long").await.unwrap().is_some());
    // An expired event id takes a new answer.
    assert_eq!(
        store
            .remember(T, "short", [2; 32], b"new".to_vec())
            .await
            .unwrap(),
        Remembered::Stored
    );
    assert_eq!(
        store.recall(T, "short").await.unwrap().unwrap().body,
        b"new"
    );
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

pub async fn invalid_sizes_are_refused(store: &Store) {
    let long_key = "k".repeat(MAX_CLAIM_KEY + 1);
    let max_key = "k".repeat(MAX_CLAIM_KEY);
    let long_owner = "o".repeat(MAX_CLAIM_OWNER + 1);
    let max_owner = "o".repeat(MAX_CLAIM_OWNER);
    assert_invalid(store.claim(T, &long_key, "u").await, "long key");
    assert_invalid(store.claim(T, "k", &long_owner).await, "long owner");
    assert_invalid(store.claim(T, "", "u").await, "empty key");
    assert_invalid(store.claim(T, "k", "").await, "empty owner");
    assert_invalid(store.owner_of(T, &long_key).await, "owner_of long key");
    assert_invalid(store.release(T, &long_key, "u").await, "release long key");
    assert_invalid(
        store.force_release(T, &long_key).await,
        "force_release long key",
    );
    assert_invalid(store.claim("Acme", "k", "u").await, "upper-case tenant");
    assert_invalid(store.claim("a:b", "k", "u").await, "tenant with ':'");
    assert_invalid(store.claim("{a}", "k", "u").await, "tenant with braces");
    assert_invalid(store.claim("", "k", "u").await, "empty tenant");
    assert_invalid(store.claim(&"t".repeat(65), "k", "u").await, "long tenant");
    assert_invalid(store.list("A", None, 1).await, "list bad tenant");
    let long_event = "e".repeat(MAX_EVENT_ID + 1);
    assert_invalid(
        store.remember(T, &long_event, [0; 32], vec![]).await,
        "long event id",
    );
    assert_invalid(store.recall(T, "").await, "empty event id");
    assert_invalid(
        store
            .remember(T, "e", [0; 32], vec![0; MAX_ANSWER_BODY + 1])
            .await,
        "huge body",
    );
    assert_invalid(
        store
            .remember_for(T, "e", [0; 32], vec![], Duration::ZERO)
            .await,
        "zero ttl",
    );
    // Nothing was written by the refused calls; the limits themselves are accepted.
    assert!(store.list(T, None, 100).await.unwrap().is_empty());
    assert_eq!(
        store.claim(T, &max_key, &max_owner).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(store.owner_of(T, &max_key).await.unwrap(), Some(max_owner));
    let big = vec![0xAB; MAX_ANSWER_BODY];
    store
        .remember(T, "big", [0; 32], big.clone())
        .await
        .unwrap();
    assert_eq!(store.recall(T, "big").await.unwrap().unwrap().body, big);
}
