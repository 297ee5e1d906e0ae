//! Cost of one store call on each backend: a new claim (a durable write), a claim of a taken key
//! (a read), remembering a new answer (a durable write), recalling one (a read), and enqueuing a
//! 10-event delivery (a durable write).
//!
//! Run: `cargo bench -p hookbox-store --bench claims`. Redis runs as a local `redis-server`
//! (no persistence), so its figures are loopback round trips plus the script, not disk.

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbox_store::testing::RedisServer;
use hookbox_store::{Store, StoreConfig};

fn bench_store(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &Store) {
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    let n = AtomicU64::new(0);
    let body = vec![b'x'; 300]; // about the size of an import-hook answer

    group.bench_function("claim_new", |b| {
        b.to_async(rt).iter(|| {
            let key = format!("login{}@example.com", n.fetch_add(1, Ordering::Relaxed));
            async move { store.claim("acme", &key, "u1").await.unwrap() }
        })
    });
    rt.block_on(store.claim("acme", "taken@example.com", "u1"))
        .unwrap();
    group.bench_function("claim_taken", |b| {
        b.to_async(rt).iter(|| async {
            store
                .claim("acme", "taken@example.com", "u2")
                .await
                .unwrap()
        })
    });
    group.bench_function("remember_new", |b| {
        b.to_async(rt).iter(|| {
            let event = format!("ev{}", n.fetch_add(1, Ordering::Relaxed));
            let body = body.clone();
            async move { store.remember("acme", &event, [1; 32], body).await.unwrap() }
        })
    });
    rt.block_on(store.remember("acme", "known", [1; 32], body.clone()))
        .unwrap();
    group.bench_function("recall_hit", |b| {
        b.to_async(rt)
            .iter(|| async { store.recall("acme", "known").await.unwrap() })
    });
    // Issue 14: acknowledging an Okta event-hook delivery means one durable enqueue of its
    // events (10 here); the figure per call divided by 10 is the cost per acknowledged event.
    let payload = vec![b'e'; 1500]; // about one LogEvent as JSON
    group.bench_function("enqueue_10_events", |b| {
        b.to_async(rt).iter(|| {
            let events = (0..10)
                .map(|_| hookbox_store::QueuedEvent {
                    uuid: format!("uuid-{}", n.fetch_add(1, Ordering::Relaxed)),
                    payload: payload.clone(),
                })
                .collect();
            async move { store.enqueue("acme", events, usize::MAX).await.unwrap() }
        })
    });
    group.finish();
}

fn claims(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let embedded = rt
        .block_on(Store::open(&StoreConfig::embedded(
            dir.path().join("s.redb"),
        )))
        .unwrap();
    bench_store(c, &rt, "embedded", &embedded);
    drop(embedded);

    let server = RedisServer::start().unwrap();
    let redis = rt
        .block_on(Store::open(&StoreConfig::redis(server.url())))
        .unwrap();
    bench_store(c, &rt, "redis", &redis);
}

criterion_group!(benches, claims);
criterion_main!(benches);
