//! One test binary (link time): the same behaviour suite on both backends, then what is specific
//! to each backend, then configuration parsing.

#![allow(clippy::unwrap_used)] // a failed step should stop the test loudly

mod behaviour;
mod config;
mod embedded;
mod queue;
mod redis;

use hookbox_store::testing::RedisServer;
use hookbox_store::{Store, StoreConfig};

/// Keeps whatever backs a store alive for the length of a test.
#[allow(dead_code)]
pub enum Guard {
    Dir(tempfile::TempDir),
    Redis(RedisServer),
}

pub async fn embedded_store() -> (Store, Guard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&StoreConfig::embedded(dir.path().join("db/store.redb")))
        .await
        .expect("open embedded store");
    (store, Guard::Dir(dir))
}

pub async fn redis_store() -> (Store, Guard) {
    let server = RedisServer::start().expect("start redis-server");
    let store = Store::open(&StoreConfig::redis(server.url()))
        .await
        .expect("open redis store");
    (store, Guard::Redis(server))
}

/// Runs each named behaviour (an `async fn(&Store)` in `behaviour`) once per backend (and once
/// on a throwaway embedded store).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _guard) = crate::embedded_store().await;
                    assert_eq!(store.backend_name(), "embedded");
                    crate::behaviour::$name(&store).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _guard) = crate::redis_store().await;
                    assert_eq!(store.backend_name(), "redis");
                    crate::behaviour::$name(&store).await;
                }
            )*
        }
        // The dry run's throwaway store: the embedded backend without fsync'd commits.
        mod on_throwaway {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = hookbox_store::Store::throwaway().await.unwrap();
                    assert_eq!(store.backend_name(), "embedded");
                    crate::behaviour::$name(&store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    ping_answers,
    claim_outcomes,
    keys_compare_byte_exactly,
    release_only_by_owner,
    force_release_returns_former_owner,
    list_pages_in_byte_order,
    tenants_are_isolated,
    racing_claims_have_one_winner_per_key,
    answers_first_writer_wins,
    racing_remembers_agree_on_one_answer,
    answers_expire,
    invalid_sizes_are_refused,
);

// The event queue (issue 14), same idea.
mod queue_on_both {
    macro_rules! queue_on_both_backends {
        ($($name:ident),* $(,)?) => {
            mod on_embedded {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (store, _guard) = crate::embedded_store().await;
                        crate::queue::$name(&store).await;
                    }
                )*
            }
            mod on_redis {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (store, _guard) = crate::redis_store().await;
                        crate::queue::$name(&store).await;
                    }
                )*
            }
        };
    }
    queue_on_both_backends!(
        queue_dedupes_and_keeps_order,
        queue_full_is_all_or_nothing,
        queue_retries_then_dead_then_replay,
        queue_lease_runs_out,
        queue_tenants_are_isolated,
        queue_refuses_bad_events,
    );
}
