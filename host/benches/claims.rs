//! What a claim costs a request, through the request pipeline
//! (`pipeline::handle`: decode, recall, the plugin with its store calls,
//! encode, remember), on each backend; and the reference plugin against a
//! stateless build of the same rule.
//!
//! Every iteration is a NEW imported user with a login conflict (a fresh
//! `eventId`, a fresh `externalId`), so the reference plugin does its full
//! work on an empty key: `owner-of` + `claim` (login) + `claim` (owner
//! record), and the pipeline a `recall` and a `remember`: 3 store writes
//! and 2 reads per request.
//!
//! Configurations (one run, same request shape):
//! - `reference, embedded`: the reference plugin (WIT 0.2.0) on a redb store
//!   in a temporary directory (every write an fsync'd commit);
//! - `reference, redis`: the same on a local `redis-server` (started by the
//!   bench, no persistence: `--save '' --appendonly no`);
//! - `stateless 0.1.0, embedded`: the legacy 0.1.0 guest (`tests/guests/legacy-0.1`:
//!   the same first.last.<suffix> rule, no claims) through the same pipeline,
//!   so only the pipeline's own `recall` + `remember` touch the store;
//! - `stateless 0.1.0, no store`: the legacy guest called directly
//!   (`Runtime::invoke`, decode and encode), no store at all: what a request
//!   cost before claims and idempotency.
//!
//! Each configuration is measured one request at a time (latency) and as 64
//! requests in flight at once (throughput, requests per second).
//!
//! `cargo bench -p hookbox --bench claims` (needs `redis-server`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookbox::hook::{decode, encode};
use hookbox::pipeline;
use hookbox::plugin::{Backend, Binding, EngineConfig, Limits, Plugin, Runtime, StoreScope};
use hookbox_store::testing::RedisServer;
use hookbox_store::{Store, StoreConfig};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const SAMPLE: &str = include_str!("../../tests/fixtures/sample-request.json");

/// A new user with a conflict, every call.
fn next_body(counter: &AtomicU64) -> Vec<u8> {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let mut req: Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
    req["eventId"] = json!(format!("bench-{n}"));
    req["data"]["appUser"]["profile"]["externalId"] = json!(format!("user-{n}"));
    serde_json::to_vec(&req).expect("serialises")
}

struct Setup {
    name: &'static str,
    plugin: Plugin,
    store: Store,
    /// Through `pipeline::handle` (recall, remember); else `Runtime::invoke` alone.
    pipeline: bool,
}

fn claims(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(&EngineConfig::default()).expect("engine");
    let reference = Plugin::from_bytes(
        &runtime,
        hookbox::dev::reference_plugin().expect("the reference plugin is embedded"),
    )
    .expect("loads");
    let legacy = Plugin::load(&runtime, &hookbox_tests::legacy_wasm()).expect("legacy loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start().expect("redis-server starts");
    let (embedded, on_redis, embedded2, unused) = rt.block_on(async {
        (
            Store::open(&StoreConfig::embedded(dir.path().join("a.redb")))
                .await
                .expect("embedded"),
            Store::open(&StoreConfig::redis(redis.url()))
                .await
                .expect("redis"),
            Store::open(&StoreConfig::embedded(dir.path().join("b.redb")))
                .await
                .expect("embedded"),
            // Handed to the 0.1.0 guest without the pipeline: it cannot call it.
            Store::scratch().await.expect("scratch"),
        )
    });
    let setups = [
        Setup {
            name: "reference, embedded",
            plugin: reference.clone(),
            store: embedded,
            pipeline: true,
        },
        Setup {
            name: "reference, redis",
            plugin: reference,
            store: on_redis,
            pipeline: true,
        },
        Setup {
            name: "stateless 0.1.0, embedded",
            plugin: legacy.clone(),
            store: embedded2,
            pipeline: true,
        },
        Setup {
            name: "stateless 0.1.0, no store",
            plugin: legacy,
            store: unused,
            pipeline: false,
        },
    ];
    let counter = Arc::new(AtomicU64::new(0));
    let limits = Limits {
        deadline: Duration::from_secs(2),
        max_concurrency: 64,
        ..Limits::default()
    };
    let settings = Arc::new(BTreeMap::new());
    let backend = Backend::default();
    let permits = Semaphore::new(64);

    let mut g = c.benchmark_group("claims");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(4));
    for setup in &setups {
        // One request, end to end through the pipeline (or invoke for "no store").
        let one = |body: Vec<u8>| {
            let (runtime, limits, settings, backend, permits) =
                (&runtime, &limits, &settings, &backend, &permits);
            async move {
                let scope = StoreScope::new("bench", &setup.store);
                if setup.pipeline {
                    let binding = Binding {
                        plugin: &setup.plugin,
                        settings,
                        limits,
                        backend,
                        permits,
                        scope: &scope,
                    };
                    let handled = pipeline::handle(&binding, &body).await.expect("answered");
                    assert!(
                        matches!(handled.verdict, pipeline::Verdict::Answered { .. }),
                        "{}: {:?}",
                        setup.name,
                        handled.verdict
                    );
                    handled.body
                } else {
                    let request = decode::decode(&body).expect("decodes");
                    let inv = runtime
                        .invoke(&setup.plugin, &request, settings.clone(), limits, &scope)
                        .await
                        .expect("a free slot");
                    encode::encode(&inv.result, setup.plugin.short_digest()).expect("encodes")
                }
            }
        };
        // Sanity: the reference plugin claimed (not its fallback).
        let body = rt.block_on(one(next_body(&counter)));
        let text = String::from_utf8_lossy(&body);
        if setup.name.starts_with("reference") {
            assert!(
                text.contains("\"claim\":\"claimed\""),
                "{}: {text}",
                setup.name
            );
        }

        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{}: one request", setup.name), |b| {
            b.iter_custom(|iters| {
                let bodies: Vec<Vec<u8>> = (0..iters).map(|_| next_body(&counter)).collect();
                rt.block_on(async {
                    let start = Instant::now();
                    for body in bodies {
                        black_box(one(body).await);
                    }
                    start.elapsed()
                })
            })
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function(format!("{}: 64 in flight", setup.name), |b| {
            b.iter_custom(|iters| {
                let batches: Vec<Vec<Vec<u8>>> = (0..iters)
                    .map(|_| (0..64).map(|_| next_body(&counter)).collect())
                    .collect();
                rt.block_on(async {
                    let start = Instant::now();
                    for batch in batches {
                        let all = futures::future::join_all(batch.into_iter().map(&one)).await;
                        black_box(all);
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    drop(redis);
}

criterion_group!(benches, claims);
criterion_main!(benches);
