//! Prometheus metrics: every series hookbox exports, defined in this one
//! file, in one [`Metrics`] held by [`crate::App`] and rendered by
//! `GET /metrics` (on the main listener and on `[server] ops_listen`).
//!
//! Invariants:
//! - label values are bounded: a `tenant` label is an id from the
//!   configuration ([`crate::App`]'s table at the time), or the one fixed
//!   value [`UNKNOWN_TENANT`] for a URL naming no configured tenant (never
//!   the URL's text); every other label value is a `&'static str` of the code
//!   (a route, a status class, an outcome kind, a reload change);
//! - recording never blocks a request on anything but a short lock of the
//!   family's map (prometheus-client's `Family`), and never fails;
//! - what is measured where: the routing table records every request
//!   ([`Metrics::request`]), the import endpoint records what the plugin
//!   cost ([`Metrics::plugin_call`]), a reload records its report
//!   ([`Metrics::reload`]), `App::publish` the live plugin digests
//!   ([`Metrics::plugins`]); values that are read rather than counted (the
//!   instance pool) are sampled when scraped ([`Metrics::render`]).
//!
//! The features' series:
//! - **claim store**: every call the host makes for a request (the plugin's
//!   `claim`, `owner_of`, `release` host functions, and the pipeline's
//!   `recall` and `remember`) is recorded by its tenant's store scope
//!   ([`StoreMetrics::call`], a handle [`Metrics::store`] hands to
//!   `App::scope`), by `backend` and `op`; errors also by `kind` (the
//!   store's [`hookbox_store::StoreError::kind`], or `timeout` when the
//!   host's own bound ran out). Smoke requests and `hookbox run` use a
//!   scratch store and are not recorded;
//! - **OAuth**: key fetches by tenant and outcome, read from each tenant's
//!   verifier when scraped ([`hookbox_oauth::Verifier::fetch_outcomes`]) and
//!   added to the counters as differences, so a verifier a reload replaced
//!   does not make them go down;
//! - **event hooks**: each tenant's queue depth is read from the store when
//!   scraped (a bounded, O(1) call per tenant with an event handler; a
//!   tenant whose depth could not be read has no sample on that page);
//!   handler outcomes (`handled`, `retrying`, `dead`, `unsettled`) are
//!   counted by the worker when it settles an event;
//! - **directory**: each tenant's lookups by outcome, cache hits, calls to
//!   Okta, lookups refused by the per-call cap and rate-limit pauses, read
//!   from the tenant's [`hookbox_directory::Directory::stats`] when scraped
//!   and added as differences, like OAuth (a directory a reload replaced
//!   does not make them go down). Never a login.
//!
//! Adding a feature's series (the claim store, OAuth, event hooks): add a
//! field to [`Metrics`] below, register it in [`Metrics::new`] next to the
//! others (the `// Feature series` section), and give it a small recording
//! method with typed arguments, called from the one place the feature
//! already reports its outcome; a value read from the feature's state is
//! sampled in [`Metrics::render`] instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::App;
use crate::pipeline::Figures;
use crate::reload::{Change, ReloadReport};
use crate::tenant::Tenants;

/// The `tenant` label of a request whose URL names no configured tenant.
/// Outside the tenant id alphabet (`a-z 0-9 - _`), so it can never be an id.
pub const UNKNOWN_TENANT: &str = "(unknown)";

/// How long reading one tenant's event-queue depth may take when scraped
/// (all tenants at once): a scrape stays fast while the store is down.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_millis(250);

/// The `Content-Type` of [`Metrics::render`]'s text (OpenMetrics, which
/// Prometheus negotiates and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `hookbox_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// A configured tenant id, [`UNKNOWN_TENANT`], or empty for routes of no tenant.
    tenant: String,
    /// The routing table's name of the endpoint (`unmatched` for no route).
    route: &'static str,
    /// `2xx`, `4xx`, `5xx`.
    status: &'static str,
    /// The answer's outcome: the plugin's verdict (`commands`, `trap`,
    /// `deadline`…) or the error kind (`unauthorized`, `overloaded`…).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    tenant: String,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    tenant: String,
    digest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    /// `embedded` or `redis`.
    backend: &'static str,
    /// `claim`, `owner_of`, `release`, `recall`, `remember`.
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    backend: &'static str,
    op: &'static str,
    /// `unavailable`, `timeout`, `invalid`, `io`, `corrupt`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantOutcome {
    tenant: String,
    outcome: &'static str,
}

/// An OAuth tenant's verifier as last sampled, with its `(ok, failed)` fetch counts then.
type Sampled = (hookbox_oauth::Verifier, (u64, u64));

/// A tenant's directory as last sampled, with its counters then.
type SampledDirectory = (
    Arc<hookbox_directory::Directory>,
    hookbox_directory::DirectoryStats,
);

/// The directory series (all counters, by tenant), sampled when scraped.
#[derive(Default)]
struct DirectorySeries {
    lookups: Family<TenantOutcome, Counter>,
    cache_hits: Family<TenantLabel, Counter>,
    okta_calls: Family<TenantLabel, Counter>,
    budget_exhausted: Family<TenantLabel, Counter>,
    rate_limit_pauses: Family<TenantLabel, Counter>,
    /// Per tenant: the directory last sampled and its counters then.
    seen: Mutex<HashMap<String, SampledDirectory>>,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, 100 µs to 2.5 s: a Rust plugin call is tens of µs, an
/// interpreted one a few ms, and Okta gives up after 3 s.
fn seconds() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// Seconds, 50 µs to 1 s: an embedded read is tens of µs, a committed
/// claim (fsync) or a Redis round trip about a millisecond, and the host
/// bounds a call by a fraction of the plugin's deadline.
fn store_seconds() -> Histogram {
    Histogram::new([
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

/// Fuel units, 1e3 to 1e10 by factors of 10.
fn fuel() -> Histogram {
    Histogram::new(exponential_buckets(1e3, 10.0, 8))
}

/// Bytes of linear memory, 64 KiB (one wasm page) to 4 GiB by factors of 2.
fn memory() -> Histogram {
    Histogram::new(exponential_buckets(65536.0, 2.0, 17))
}

/// Every series hookbox exports; see the module docs.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<TenantLabel>,
    plugin_seconds: Histograms<TenantLabel>,
    plugin_fuel: Histograms<TenantLabel>,
    plugin_memory: Histograms<TenantLabel>,
    instances: Family<StateLabel, Gauge>,
    instance_slots: Gauge,
    tenant_heavy: Family<TenantLabel, Gauge>,
    unused_resident: Gauge,
    recycles: Counter,
    reloads: Family<OutcomeLabel, Counter>,
    reload_changes: Family<ChangeLabels, Counter>,
    plugin_info: Family<PluginLabels, Gauge>,
    draining: Gauge,
    store: StoreMetrics,
    oauth_fetches: Family<TenantOutcome, Counter>,
    /// Per tenant: the verifier last sampled and its `(ok, failed)` counts then.
    oauth_seen: Mutex<HashMap<String, Sampled>>,
    events_queued: Family<TenantLabel, Gauge>,
    event_outcomes: Family<TenantOutcome, Counter>,
    directory: DirectorySeries,
    /// The digests `plugin_info` shows, to remove those a publication replaced.
    shown: Mutex<Vec<PluginLabels>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every series, registered under the prefix `hookbox_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hookbox");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by tenant, route, status class and outcome",
            requests.clone(),
        );
        let request_seconds = Histograms::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Time from routing a tenant's request to its answer, by tenant",
            request_seconds.clone(),
        );
        let plugin_seconds = Histograms::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "plugin_duration_seconds",
            "Time of one plugin call (instantiation unless warm, and the call), by tenant",
            plugin_seconds.clone(),
        );
        let plugin_fuel = Histograms::new_with_constructor(fuel as fn() -> Histogram);
        registry.register(
            "plugin_fuel_consumed",
            "Fuel one plugin call consumed, by tenant (only when the engine meters fuel)",
            plugin_fuel.clone(),
        );
        let plugin_memory = Histograms::new_with_constructor(memory as fn() -> Histogram);
        registry.register(
            "plugin_peak_memory_bytes",
            "Largest linear memory one plugin call grew to, by tenant",
            plugin_memory.clone(),
        );
        let instances = Family::<StateLabel, Gauge>::default();
        registry.register(
            "instances",
            "Plugin instances of the engine's pool: busy (serving a call) or idle (warm, kept for reuse); after a recycle, the old engine's until it is freed",
            instances.clone(),
        );
        let instance_slots = Gauge::default();
        registry.register(
            "instance_slots",
            "Size of the engine's instance pool (engine.max_instances)",
            instance_slots.clone(),
        );
        let tenant_heavy = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "tenant_heavy",
            "1 while a tenant is heavy (a call of its plugin used 10 ms of CPU in the last 30 s): its calls run at engine.heavy_priority",
            tenant_heavy.clone(),
        );
        let unused_resident = Gauge::default();
        registry.register(
            "pool_unused_resident_bytes",
            "Bytes the engine's instance pool keeps resident in slots no instance uses (engine.memory_keep_resident, engine.table_keep_resident), with an old engine's after a recycle until it is freed; engine.idle_resident_limit bounds it",
            unused_resident.clone(),
        );
        let recycles = Counter::default();
        registry.register(
            "engine_recycles",
            "Times the tenants were moved onto a new engine to give the old pool's kept-resident memory back (engine.idle_resident_limit)",
            recycles.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reloads",
            "Reloads by outcome: applied, rejected (applied, some tenant kept its old version), failed (nothing changed)",
            reloads.clone(),
        );
        let reload_changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "reload_tenant_changes",
            "What reloads did to each tenant: added, updated, removed, rejected",
            reload_changes.clone(),
        );
        let plugin_info = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_info",
            "The plugin each tenant serves right now (value 1), by tenant and sha256 digest",
            plugin_info.clone(),
        );
        let draining = Gauge::default();
        registry.register(
            "draining",
            "1 from the first shutdown signal on (readiness fails), else 0",
            draining.clone(),
        );
        // Feature series: the claim store (calls, errors, latency by backend),
        // OAuth (key fetches) and event hooks (queue depth, dead events)
        // register theirs here; see the module docs.
        let store = StoreMetrics {
            calls: Family::default(),
            errors: Family::default(),
            seconds: Histograms::new_with_constructor(store_seconds as fn() -> Histogram),
        };
        registry.register(
            "store_calls",
            "Claim-store calls the host made for requests and event handlers, by backend and operation",
            store.calls.clone(),
        );
        registry.register(
            "store_errors",
            "Claim-store calls that failed, by backend, operation and error kind (timeout: the host's bound ran out)",
            store.errors.clone(),
        );
        registry.register(
            "store_call_duration_seconds",
            "Time of one claim-store call, failed ones included, by backend and operation",
            store.seconds.clone(),
        );
        let oauth_fetches = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "oauth_key_fetches",
            "Finished JWKS fetches of each OAuth tenant's verifier (the one at start included), by outcome: ok, failed",
            oauth_fetches.clone(),
        );
        let events_queued = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "events_queued",
            "Events queued for each tenant's event handler (leased ones included, dead ones not), read from the store when scraped",
            events_queued.clone(),
        );
        let event_outcomes = Family::<TenantOutcome, Counter>::default();
        registry.register(
            "events_handled",
            "Event-handler runs this process settled, by tenant and outcome: handled, retrying, dead (moved to the dead list), unsettled (the store did not record it)",
            event_outcomes.clone(),
        );
        let directory = DirectorySeries::default();
        registry.register(
            "directory_lookups",
            "Directory lookups of each tenant's plugins, by outcome: found, free, rate_limited (Okta's limit or the per-call cap), timed_out, unavailable, denied",
            directory.lookups.clone(),
        );
        registry.register(
            "directory_cache_hits",
            "Directory lookups answered from the tenant's cache, by tenant",
            directory.cache_hits.clone(),
        );
        registry.register(
            "directory_okta_calls",
            "Requests sent to the tenant's Okta Users API, by tenant",
            directory.okta_calls.clone(),
        );
        registry.register(
            "directory_budget_exhausted",
            "Directory lookups answered rate_limited because the plugin call used up max_lookups_per_request, by tenant",
            directory.budget_exhausted.clone(),
        );
        registry.register(
            "directory_rate_limit_pauses",
            "Times Okta's rate limit (a 429, or X-Rate-Limit-Remaining 0) closed the tenant's directory until the reset, by tenant",
            directory.rate_limit_pauses.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            plugin_seconds,
            plugin_fuel,
            plugin_memory,
            instances,
            instance_slots,
            tenant_heavy,
            unused_resident,
            recycles,
            reloads,
            reload_changes,
            plugin_info,
            draining,
            store,
            oauth_fetches,
            oauth_seen: Mutex::new(HashMap::new()),
            events_queued,
            event_outcomes,
            directory,
            shown: Mutex::new(Vec::new()),
        }
    }

    /// One request answered by endpoint `route`; `tenant` is `Some` for a
    /// tenant's endpoint (a configured id or [`UNKNOWN_TENANT`]), whose
    /// latency is also recorded.
    pub fn request(
        &self,
        tenant: Option<&str>,
        route: &'static str,
        status: u16,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.unwrap_or_default().to_owned(),
                route,
                status,
                outcome,
            })
            .inc();
        if let Some(tenant) = tenant {
            self.request_seconds
                .get_or_create(&TenantLabel {
                    tenant: tenant.to_owned(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// What one plugin call of a configured tenant cost.
    pub fn plugin_call(&self, tenant: &str, figures: &Figures) {
        let label = TenantLabel {
            tenant: tenant.to_owned(),
        };
        self.plugin_seconds
            .get_or_create(&label)
            .observe(figures.elapsed.as_secs_f64());
        self.plugin_memory
            .get_or_create(&label)
            .observe(figures.peak_memory as f64);
        if let Some(fuel) = figures.fuel_consumed {
            self.plugin_fuel.get_or_create(&label).observe(fuel as f64);
        }
    }

    /// The tenants were moved onto a new engine ([`App::recycle`]).
    pub fn recycled(&self) {
        self.recycles.inc();
    }

    /// A reload's outcome, and what it did to each tenant.
    pub fn reload(&self, report: &ReloadReport) {
        let rejected = report.tenants.iter().any(|t| t.change == Change::Rejected);
        let outcome = match (report.applied, rejected) {
            (false, _) => "failed",
            (true, true) => "rejected",
            (true, false) => "applied",
        };
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
        for t in &report.tenants {
            let change = match t.change {
                Change::Unchanged => continue,
                Change::Added => "added",
                Change::Removed => "removed",
                Change::Updated => "updated",
                Change::Rejected => "rejected",
            };
            self.reload_changes
                .get_or_create(&ChangeLabels {
                    tenant: t.id.clone(),
                    change,
                })
                .inc();
        }
    }

    /// The plugins `tenants` serve: `hookbox_plugin_info` shows exactly these
    /// from now on.
    pub fn plugins(&self, tenants: &Tenants) {
        let now: Vec<PluginLabels> = tenants
            .iter()
            .map(|t| PluginLabels {
                tenant: t.id().to_owned(),
                digest: t.plugin().digest().to_owned(),
            })
            .collect();
        // One publication at a time: the lock orders them, so an older table never wins.
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        for gone in shown.iter().filter(|l| !now.contains(l)) {
            self.plugin_info.remove(gone);
        }
        for l in &now {
            self.plugin_info.get_or_create(l).set(1);
        }
        *shown = now;
    }

    /// From the first shutdown signal on.
    pub fn draining(&self) {
        self.draining.set(1);
    }

    /// The claim-store series, for the store scopes that record into them.
    pub fn store(&self) -> StoreMetrics {
        self.store.clone()
    }

    /// The worker settled one event of `tenant`'s: `handled`, `retrying`,
    /// `dead` or `unsettled`.
    pub fn event_handled(&self, tenant: &str, outcome: &'static str) {
        self.event_outcomes
            .get_or_create(&TenantOutcome {
                tenant: tenant.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Adds each OAuth tenant's key fetches finished since the last scrape.
    fn sample_oauth(&self, tenants: &Tenants) {
        let mut seen = self.oauth_seen.lock().unwrap_or_else(|e| e.into_inner());
        for tenant in tenants.iter() {
            let Some(verifier) = tenant.oauth() else {
                continue;
            };
            let now = verifier.fetch_outcomes();
            let before = match seen.get(tenant.id()) {
                Some((last, counts)) if last.same_as(verifier) => *counts,
                // New tenant or a new verifier (new settings): all its fetches are new.
                _ => (0, 0),
            };
            for (outcome, n) in [
                ("ok", now.0 - before.0.min(now.0)),
                ("failed", now.1 - before.1.min(now.1)),
            ] {
                let counter = self.oauth_fetches.get_or_create(&TenantOutcome {
                    tenant: tenant.id().to_owned(),
                    outcome,
                });
                counter.inc_by(n);
            }
            seen.insert(tenant.id().to_owned(), (verifier.clone(), now));
        }
        // A removed tenant's verifier is let go; its counters stay (counters never go down).
        seen.retain(|id, _| tenants.get(id).is_some_and(|t| t.oauth().is_some()));
    }

    /// Adds each tenant directory's counts since the last scrape.
    fn sample_directories(&self, tenants: &Tenants) {
        let series = &self.directory;
        let mut seen = series.seen.lock().unwrap_or_else(|e| e.into_inner());
        for tenant in tenants.iter() {
            let Some(directory) = tenant.directory() else {
                continue;
            };
            let now = directory.stats();
            let before = match seen.get(tenant.id()) {
                Some((last, stats)) if Arc::ptr_eq(last, directory) => *stats,
                // New tenant or a new directory (new settings): all its counts are new.
                _ => hookbox_directory::DirectoryStats::default(),
            };
            let id = tenant.id();
            let tenant_label = TenantLabel {
                tenant: id.to_owned(),
            };
            let rate_limited = now.rate_limited.saturating_sub(before.rate_limited);
            for (outcome, n) in [
                ("found", now.found.saturating_sub(before.found)),
                ("free", now.free.saturating_sub(before.free)),
                ("rate_limited", rate_limited),
                ("timed_out", now.timed_out.saturating_sub(before.timed_out)),
                (
                    "unavailable",
                    now.unavailable.saturating_sub(before.unavailable),
                ),
                ("denied", now.denied.saturating_sub(before.denied)),
            ] {
                series
                    .lookups
                    .get_or_create(&TenantOutcome {
                        tenant: id.to_owned(),
                        outcome,
                    })
                    .inc_by(n);
            }
            for (family, n) in [
                (
                    &series.cache_hits,
                    now.cache_hits.saturating_sub(before.cache_hits),
                ),
                (
                    &series.okta_calls,
                    now.okta_calls.saturating_sub(before.okta_calls),
                ),
                (
                    &series.budget_exhausted,
                    now.budget_exhausted.saturating_sub(before.budget_exhausted),
                ),
                (
                    &series.rate_limit_pauses,
                    now.rate_limit_pauses
                        .saturating_sub(before.rate_limit_pauses),
                ),
            ] {
                family.get_or_create(&tenant_label).inc_by(n);
            }
            seen.insert(id.to_owned(), (directory.clone(), now));
        }
        // A removed tenant's directory is let go; its counters stay.
        seen.retain(|id, _| tenants.get(id).is_some_and(|t| t.directory().is_some()));
    }

    /// Reads the queue depth of each tenant with an event handler, at once,
    /// each bounded by [`SAMPLE_TIMEOUT`].
    async fn sample_events(&self, app: &App) {
        let tenants = app.tenants();
        let ids: Vec<&str> = tenants
            .iter()
            .filter(|t| t.handles_events())
            .map(|t| t.id())
            .collect();
        let depths = futures::future::join_all(ids.iter().map(|&id| async move {
            match tokio::time::timeout(SAMPLE_TIMEOUT, app.store().queued(id)).await {
                Ok(Ok(n)) => Some(n),
                Ok(Err(e)) => {
                    tracing::debug!(
                        tenant = id,
                        kind = e.kind(),
                        "cannot read the event queue depth"
                    );
                    None
                }
                Err(_) => None,
            }
        }))
        .await;
        // Only tenants read just now have a sample: a stale depth would mislead.
        self.events_queued.clear();
        for (id, depth) in ids.iter().zip(depths) {
            if let Some(n) = depth {
                self.events_queued
                    .get_or_create(&TenantLabel {
                        tenant: (*id).to_owned(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// The text `GET /metrics` answers, with the values that are read rather
    /// than counted (instance pool, OAuth fetches, directories, event
    /// queues) read now.
    pub async fn render(&self, app: &App) -> String {
        let tenants = app.tenants();
        self.sample_oauth(&tenants);
        self.sample_directories(&tenants);
        self.sample_events(app).await;
        let runtime = app.runtime();
        self.unused_resident
            .set(i64::try_from(runtime.unused_resident_with_retired()).unwrap_or(i64::MAX));
        let pool = runtime.pool();
        self.instances
            .get_or_create(&StateLabel { state: "busy" })
            .set(pool.busy as i64);
        self.instances
            .get_or_create(&StateLabel { state: "idle" })
            .set(pool.idle as i64);
        self.instance_slots.set(i64::from(pool.slots));
        // Every configured tenant has a sample (0 or 1), so a tenant that
        // stops being heavy shows it.
        self.tenant_heavy.clear();
        for t in tenants.iter() {
            let heavy = runtime.cpu().is_heavy(t.id());
            self.tenant_heavy
                .get_or_create(&TenantLabel {
                    tenant: t.id().to_owned(),
                })
                .set(i64::from(heavy));
        }
        let mut text = String::new();
        // Writing into a String cannot fail; an encoding bug would show as a truncated page.
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

/// The claim-store series, as a cheap handle (clones share the series):
/// each tenant's store scope holds one and records every call it makes.
#[derive(Clone)]
pub struct StoreMetrics {
    calls: Family<StoreLabels, Counter>,
    errors: Family<StoreErrorLabels, Counter>,
    seconds: Histograms<StoreLabels>,
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreMetrics")
    }
}

impl StoreMetrics {
    /// One call `op` to the `backend` store that took `elapsed`; `error` is
    /// its error kind if it failed.
    pub fn call(
        &self,
        backend: &'static str,
        op: &'static str,
        elapsed: Duration,
        error: Option<&'static str>,
    ) {
        let labels = StoreLabels { backend, op };
        self.calls.get_or_create(&labels).inc();
        self.seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.errors
                .get_or_create(&StoreErrorLabels { backend, op, kind })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status_class_and_outcome() {
        let m = Metrics::new();
        m.request(
            Some("acme"),
            "import",
            200,
            "commands",
            Duration::from_millis(2),
        );
        m.request(
            Some("acme"),
            "import",
            200,
            "commands",
            Duration::from_millis(3),
        );
        m.request(
            Some(UNKNOWN_TENANT),
            "import",
            404,
            "unknown_tenant",
            Duration::ZERO,
        );
        m.request(None, "healthz", 200, "ok", Duration::ZERO);
        let mut text = String::new();
        encode(&mut text, &m.registry).expect("a String takes any text");
        assert!(text.contains(
            r#"hookbox_requests_total{tenant="acme",route="import",status="2xx",outcome="commands"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"hookbox_requests_total{tenant="(unknown)",route="import",status="4xx",outcome="unknown_tenant"} 1"#
        ), "{text}");
        assert!(
            text.contains(r#"hookbox_request_duration_seconds_count{tenant="acme"} 2"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"hookbox_request_duration_seconds_count{tenant=""}"#),
            "{text}"
        );
    }

    #[test]
    fn store_calls_are_counted_by_backend_op_and_error_kind() {
        let m = Metrics::new();
        let store = m.store();
        store.call("redis", "claim", Duration::from_micros(800), None);
        store.call("redis", "claim", Duration::from_millis(2), Some("timeout"));
        store.call("embedded", "recall", Duration::from_micros(40), None);
        m.event_handled("acme", "dead");
        let mut text = String::new();
        encode(&mut text, &m.registry).expect("a String takes any text");
        for line in [
            r#"hookbox_store_calls_total{backend="redis",op="claim"} 2"#,
            r#"hookbox_store_errors_total{backend="redis",op="claim",kind="timeout"} 1"#,
            r#"hookbox_store_call_duration_seconds_count{backend="redis",op="claim"} 2"#,
            r#"hookbox_store_calls_total{backend="embedded",op="recall"} 1"#,
            r#"hookbox_events_handled_total{tenant="acme",outcome="dead"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains(r#"hookbox_store_errors_total{backend="embedded""#),
            "{text}"
        );
    }
}
