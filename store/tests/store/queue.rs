//! The event queue's behaviour, on both backends (functions called from `main.rs`).

use std::time::{Duration, Instant};

use hookbox_store::{Enqueued, FailOutcome, QueuedEvent, Store};

const T: &str = "acme";
const LEASE: Duration = Duration::from_secs(60);

fn ev(uuid: &str) -> QueuedEvent {
    QueuedEvent {
        uuid: uuid.to_owned(),
        payload: format!("{{\"uuid\":\"{uuid}\"}}").into_bytes(),
    }
}

async fn drain(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = store.next_due(T, LEASE).await.unwrap() {
        assert_eq!(d.payload, ev(&d.uuid).payload);
        assert!(store.ack(T, d.id).await.unwrap());
        out.push(d.uuid);
    }
    out
}

pub async fn queue_dedupes_and_keeps_order(store: &Store) {
    let got = store
        .enqueue(T, vec![ev("a"), ev("b"), ev("c"), ev("a")], 100)
        .await
        .unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 3,
            duplicates: 1
        }
    );
    // Okta's retry of a delivery, with one new event.
    let got = store.enqueue(T, vec![ev("b"), ev("d")], 100).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 1,
            duplicates: 1
        }
    );
    assert_eq!(store.queued(T).await.unwrap(), 4);
    assert_eq!(drain(store).await, ["a", "b", "c", "d"]);
    assert_eq!(store.queued(T).await.unwrap(), 0);
    // Handled events stay deduplicated.
    let got = store.enqueue(T, vec![ev("a")], 100).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 0,
            duplicates: 1
        }
    );
    assert_eq!(store.next_due(T, LEASE).await.unwrap(), None);
}

pub async fn queue_full_is_all_or_nothing(store: &Store) {
    store.enqueue(T, vec![ev("a"), ev("b")], 3).await.unwrap();
    let got = store.enqueue(T, vec![ev("c"), ev("d")], 3).await.unwrap();
    assert_eq!(got, Enqueued::Full { queued: 2 });
    assert_eq!(store.queued(T).await.unwrap(), 2);
    // The refused events were not marked as seen: Okta's retry gets them in once there is room.
    let got = store.enqueue(T, vec![ev("c")], 3).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 1,
            duplicates: 0
        }
    );
    let got = store.enqueue(T, vec![ev("a")], 3).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 0,
            duplicates: 1
        }
    );
    assert_eq!(drain(store).await, ["a", "b", "c"]);
    let got = store.enqueue(T, vec![ev("d")], 3).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 1,
            duplicates: 0
        }
    );
}

pub async fn queue_retries_then_dead_then_replay(store: &Store) {
    store.enqueue(T, vec![ev("x")], 10).await.unwrap();
    let first = store.next_due(T, LEASE).await.unwrap().unwrap();
    assert_eq!((first.uuid.as_str(), first.attempts), ("x", 0));
    assert_eq!(
        store
            .fail(T, first.id, "boom", Some(Duration::ZERO))
            .await
            .unwrap(),
        FailOutcome::Retrying
    );
    let again = store.next_due(T, LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (first.id, 1));
    assert_eq!(
        store.fail(T, again.id, "trapped", None).await.unwrap(),
        FailOutcome::Dead
    );
    assert_eq!(
        store.fail(T, again.id, "again", None).await.unwrap(),
        FailOutcome::Unknown
    );
    assert!(!store.ack(T, again.id).await.unwrap());
    assert_eq!(store.queued(T).await.unwrap(), 0);

    store.enqueue(T, vec![ev("y")], 10).await.unwrap();
    let y = store.next_due(T, LEASE).await.unwrap().unwrap();
    assert_eq!(y.uuid, "y");
    // A retry far in the future keeps it out of next_due.
    store
        .fail(T, y.id, "later", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(store.next_due(T, LEASE).await.unwrap(), None);

    let dead = store.dead(T, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].id,
            dead[0].uuid.as_str(),
            dead[0].attempts,
            dead[0].reason.as_str()
        ),
        (first.id, "x", 2, "trapped")
    );
    assert_eq!(dead[0].payload, ev("x").payload);
    assert!(store.dead(T, Some(first.id), 10).await.unwrap().is_empty());

    assert!(store.replay(T, first.id).await.unwrap());
    assert!(!store.replay(T, first.id).await.unwrap());
    assert!(store.dead(T, None, 10).await.unwrap().is_empty());
    let replayed = store.next_due(T, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (replayed.id, replayed.uuid.as_str(), replayed.attempts),
        (first.id, "x", 0)
    );
    assert!(store.ack(T, replayed.id).await.unwrap());
    assert_eq!(
        store.queued(T).await.unwrap(),
        1,
        "y is still waiting for its retry"
    );

    // Long reasons are cut, not refused.
    store.enqueue(T, vec![ev("z")], 10).await.unwrap();
    let z = store.next_due(T, LEASE).await.unwrap().unwrap();
    store.fail(T, z.id, &"é".repeat(2000), None).await.unwrap();
    let dead = store.dead(T, None, 10).await.unwrap();
    assert!(dead[0].reason.len() <= hookbox_store::queue::MAX_FAIL_REASON);
}

pub async fn queue_lease_runs_out(store: &Store) {
    store.enqueue(T, vec![ev("a")], 10).await.unwrap();
    let leased = store
        .next_due(T, Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    // Leased: nobody else gets it while the lease runs (a 60 s lease would be as good here).
    let give_up = Instant::now() + Duration::from_secs(10);
    let again = loop {
        if let Some(d) = store.next_due(T, LEASE).await.unwrap() {
            break d;
        }
        assert!(Instant::now() < give_up, "lease never ran out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((again.id, again.uuid.as_str()), (leased.id, "a"));
    assert_eq!(
        store.next_due(T, LEASE).await.unwrap(),
        None,
        "leased again"
    );
}

pub async fn queue_tenants_are_isolated(store: &Store) {
    store.enqueue("a", vec![ev("same")], 10).await.unwrap();
    assert_eq!(store.next_due("b", LEASE).await.unwrap(), None);
    let got = store.enqueue("b", vec![ev("same")], 10).await.unwrap();
    assert_eq!(
        got,
        Enqueued::Accepted {
            accepted: 1,
            duplicates: 0
        }
    );
    let a = store.next_due("a", LEASE).await.unwrap().unwrap();
    assert!(!store.ack("b", a.id + 1000).await.unwrap());
    assert!(store.ack("a", a.id).await.unwrap());
    assert_eq!(store.queued("a").await.unwrap(), 0);
    assert_eq!(store.queued("b").await.unwrap(), 1);
}

pub async fn queue_refuses_bad_events(store: &Store) {
    use hookbox_store::StoreError;
    let long = QueuedEvent {
        uuid: "u".repeat(129),
        payload: vec![],
    };
    assert!(matches!(
        store.enqueue(T, vec![long], 10).await,
        Err(StoreError::Invalid(_))
    ));
    let empty = QueuedEvent {
        uuid: String::new(),
        payload: vec![],
    };
    assert!(matches!(
        store.enqueue(T, vec![ev("ok"), empty], 10).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.queued(T).await.unwrap(),
        0,
        "nothing of a refused batch is queued"
    );
}
