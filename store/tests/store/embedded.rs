//! What only the embedded backend has: a file that outlives the process, directories it creates,
//! typed errors for a place it cannot write.

use hookbox_store::{ClaimOutcome, Remembered, Store, StoreConfig, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_answers_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::embedded(dir.path().join("store.redb"));
    {
        let store = Store::open(&config).await.unwrap();
        assert_eq!(
            store.claim("acme", "george", "u1").await.unwrap(),
            ClaimOutcome::Claimed
        );
        store
            .remember("acme", "ev", [3; 32], b"answer".to_vec())
            .await
            .unwrap();
    }
    let store = Store::open(&config).await.unwrap();
    assert_eq!(
        store.owner_of("acme", "george").await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(
        store.claim("acme", "george", "u2").await.unwrap(),
        ClaimOutcome::Taken
    );
    let answer = store.recall("acme", "ev").await.unwrap().unwrap();
    assert_eq!(answer.body, b"answer");
    assert_eq!(answer.request_digest, [3; 32]);
}

/// Claims and answers written at once are committed in groups (one transaction for all that
/// queued behind a commit): each caller hears back only after its group's commit, so every
/// one it was told of is in the file when it is opened again, straight after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_is_all_in_the_file_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::embedded(dir.path().join("store.redb"));
    {
        let store = Store::open(&config).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let claimed = store
                    .claim("acme", &format!("login{i}"), &format!("u{i}"))
                    .await
                    .unwrap();
                let remembered = store
                    .remember("acme", &format!("ev{i}"), [1; 32], vec![b'a'; 100])
                    .await
                    .unwrap();
                (claimed, remembered)
            }));
        }
        for t in tasks {
            assert_eq!(
                t.await.unwrap(),
                (ClaimOutcome::Claimed, Remembered::Stored)
            );
        }
    }
    let store = Store::open(&config).await.unwrap();
    for i in 0..200 {
        assert_eq!(
            store.owner_of("acme", &format!("login{i}")).await.unwrap(),
            Some(format!("u{i}"))
        );
        assert!(
            store
                .recall("acme", &format!("ev{i}"))
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_private_parent_directories() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/store.redb");
    let store = Store::open(&StoreConfig::embedded(&path)).await.unwrap();
    store.ping().await.unwrap();
    assert!(path.is_file());
    for d in [dir.path().join("a"), dir.path().join("a/b")] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_directory_is_a_typed_io_error() {
    // A regular file where a directory should be: fails for root too (unlike permission bits).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&StoreConfig::embedded(file.join("sub/store.redb")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&StoreConfig::embedded(&path))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(_) | StoreError::Io { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_same_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::embedded(dir.path().join("store.redb"));
    let _first = Store::open(&config).await.unwrap();
    let err = Store::open(&config).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_stores_are_independent() {
    let a = Store::scratch().await.unwrap();
    let b = Store::scratch().await.unwrap();
    assert_eq!(a.backend_name(), "embedded");
    a.claim("t", "k", "u1").await.unwrap();
    assert_eq!(
        b.claim("t", "k", "u2").await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        a.remember("t", "e", [0; 32], vec![1]).await.unwrap(),
        Remembered::Stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_leased_events_survive_a_restart() {
    use hookbox_store::{Enqueued, QueuedEvent};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::embedded(dir.path().join("store.redb"));
    let events = |u: &str| QueuedEvent {
        uuid: u.to_owned(),
        payload: u.as_bytes().to_vec(),
    };
    {
        let store = Store::open(&config).await.unwrap();
        let got = store
            .enqueue("acme", vec![events("a"), events("b")], 10)
            .await
            .unwrap();
        assert_eq!(
            got,
            Enqueued::Accepted {
                accepted: 2,
                duplicates: 0
            }
        );
        // Leased, then the process "dies" before acking.
        let d = store
            .next_due("acme", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.uuid, "a");
    }
    let store = Store::open(&config).await.unwrap();
    let mut seen = Vec::new();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 {
        match store
            .next_due("acme", Duration::from_secs(60))
            .await
            .unwrap()
        {
            Some(d) => {
                store.ack("acme", d.id).await.unwrap();
                seen.push(d.uuid);
            }
            None => {
                assert!(std::time::Instant::now() < give_up, "events lost: {seen:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    // Their uuids are still remembered after the restart.
    let got = store.enqueue("acme", vec![events("a")], 10).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 0,
            duplicates: 1
        }
    );
}
