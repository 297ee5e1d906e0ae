//! Event hook acknowledgements with the embedded store: what stands between
//! Okta's delivery and its 200 — decode the delivery, keep the subscribed
//! events, and queue them durably (one redb write transaction, fsync'd) —
//! as acknowledged events per second.
//!
//! ```sh
//! cargo bench -p hookbox --bench events
//! ```
//!
//! Two deliveries: the mixed fixture (5 events, 3 of the subscribed type:
//! 3 queued per delivery) and a single sync event. Each iteration gets fresh
//! uuids (a redelivery would be deduplicated and cost less). The store file
//! lives in a temporary directory (on the same disk as the target directory),
//! the worker is not running (the queue only grows), HTTP and TLS are not
//! counted: `bench/README.md` has the end-to-end view.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

use hookbox::config::EventsConfig;
use hookbox::events::{self, delivery};
use hookbox_store::{Store, StoreConfig};

const MIXED: &str = include_str!("../../tests/fixtures/events/delivery-mixed.json");
const SYNC: &str = include_str!("../../tests/fixtures/events/delivery-sync.json");

/// `template`'s body with every event's uuid made unique by `n`.
fn fresh(template: &Value, n: u64) -> Vec<u8> {
    let mut v = template.clone();
    if let Some(list) = v["data"]["events"].as_array_mut() {
        for (i, e) in list.iter_mut().enumerate() {
            e["uuid"] = Value::from(format!("bench-{n}-{i}"));
        }
    }
    serde_json::to_vec(&v).expect("serialises")
}

fn acknowledge(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = rt
        .block_on(Store::open(&StoreConfig::embedded(
            dir.path().join("store.redb"),
        )))
        .expect("embedded store");
    let config = EventsConfig {
        max_queued: events::MAX_QUEUED,
        ..EventsConfig::default()
    };

    let mut group = c.benchmark_group("event acknowledgement (embedded store)");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    let mut n = 0u64;
    for (name, text, queued) in [
        ("mixed, 3 of 5 queued", MIXED, 3),
        ("one sync event", SYNC, 1),
    ] {
        let template: Value = serde_json::from_str(text).expect("fixture");
        group.throughput(Throughput::Elements(queued));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let bodies: Vec<Vec<u8>> = (0..iters)
                    .map(|_| {
                        n += 1;
                        fresh(&template, n)
                    })
                    .collect();
                rt.block_on(async {
                    let start = Instant::now();
                    for body in &bodies {
                        let d = delivery::decode(body).expect("decodes");
                        let accepted = events::accept(&store, "bench", &config, &d)
                            .await
                            .expect("queued");
                        assert_eq!(accepted.queued as u64, queued);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, acknowledge);
criterion_main!(benches);
