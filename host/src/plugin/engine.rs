//! The wasmtime engine the tenants run on, its linker, and the epoch ticker
//! that enforces plugin deadlines. One at a time; a successor with the same
//! configuration replaces it when the pool is recycled ([`crate::recycle`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::background::Background;
use super::bindings::{v0_1, v0_2};
use super::cache::{Cache, CacheStats};
use super::fair::{CallCpu, CpuScheduler};
use super::instances::IdleBudget;
use super::limits::EngineConfig;
use super::state::{MAX_TABLE_ELEMENTS, State};

/// How often the engine's epoch advances. A running plugin is checked (and
/// yields to other tasks, giving back its CPU slot) once per tick, so a
/// deadline is enforced within one tick of its expiry, and a long-running
/// plugin never holds a runtime worker thread or a CPU slot longer than this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Core module instances one plugin instance may have. A Rust wasip2
/// component has 3 (the guest and two shims), the JavaScript build 3, the
/// componentize-py build 38. Core instance slots are only counted, not
/// reserved, so the share is generous.
pub const CORE_INSTANCES_PER_INSTANCE: u32 = 64;

/// Linear memories one plugin instance may define (every build above: 1).
pub const MEMORIES_PER_INSTANCE: u32 = 2;

/// Tables one plugin instance may define (every build above: 2).
pub const TABLES_PER_INSTANCE: u32 = 8;

/// Why the engine could not be started (a start-up failure, never a request's).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the engine configuration.
    #[error("{0:#}")]
    Engine(wasmtime::Error),
    /// WASI could not be added to the linker.
    #[error("linking WASI: {0:#}")]
    Wasi(wasmtime::Error),
    /// hookbox's own host functions could not be added to the linker.
    #[error("linking hookbox host functions: {0:#}")]
    Host(wasmtime::Error),
    /// The thread that enforces deadlines could not be started.
    #[error("starting the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
    /// The threads heavy tenants' calls run on could not be started.
    #[error("starting the heavy plugin call threads: {0}")]
    Background(std::io::Error),
}

/// The engine shared by all tenants, and everything tied to it.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<State>,
    /// What the engine was built from: a successor is built from the same.
    config: EngineConfig,
    /// The precompiled-component cache (`[engine] cache_dir`), if configured
    /// and usable; shared with successors (same configuration, same key).
    cache: Option<Arc<Cache>>,
    /// Warm (`reuse`) instances idle across all tenants, capped at half the pool.
    idle: Arc<IdleBudget>,
    /// Who runs wasm when (`engine.cpu_slots`).
    cpu: CpuScheduler,
    /// Where heavy tenants' calls run (`engine.heavy_priority`; `None`:
    /// in place, like every other call). Shared by the whole line.
    background: Option<Arc<Background>>,
    /// The engines this one succeeded ([`Runtime::successor`]), shared by
    /// the whole line: a retired engine lives on while requests that
    /// started on it run, and its instances count in [`Runtime::pool`]
    /// until it is freed. Freed ones are pruned whenever the list is read.
    retired: Arc<Mutex<Vec<wasmtime::EngineWeak>>>,
}

/// A [`Runtime`]'s engine, not kept alive: see [`Runtime::weak`].
pub struct RuntimeWeak(wasmtime::EngineWeak);

impl RuntimeWeak {
    /// Whether the engine and its instance pool are gone (nothing uses
    /// them any more: no runtime, plugin, instance or call).
    pub fn is_freed(&self) -> bool {
        self.0.upgrade().is_none()
    }
}

/// The engine's instance pool right now (see [`Runtime::pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Instances serving a call (a fresh one, or a warm one taken for it).
    pub busy: u64,
    /// Warm (`reuse`) instances waiting for a request.
    pub idle: u64,
    /// The pool's size: busy + idle never exceeds it.
    pub slots: u32,
}

impl Runtime {
    /// Builds the engine, its linker and its epoch ticker, and opens the
    /// precompiled cache if one is configured (a cache that cannot be opened
    /// is a warning, never an error).
    pub fn new(config: &EngineConfig) -> Result<Runtime, EngineError> {
        // A cache that cannot be opened costs start-up time, never availability.
        let open_cache = |engine: &Engine| {
            config.cache_dir.as_deref().and_then(|dir| {
                match Cache::open(dir, engine, config.cache_max_size) {
                    Ok(c) => Some(Arc::new(c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "precompiled cache disabled");
                        None
                    }
                }
            })
        };
        Runtime::build(
            config,
            open_cache,
            IdleBudget::for_pool(config.max_instances),
            CpuScheduler::new(config.cpu_slots, config.cpu_slots_per_tenant),
            Background::new(config.cpu_slots, config.heavy_priority)
                .map_err(EngineError::Background)?
                .map(Arc::new),
            Arc::default(),
        )
    }

    /// A new engine with this one's configuration, and so a new, empty
    /// instance pool, that shares this one's CPU scheduler, idle-instance
    /// budget and precompiled cache: plugins rebound to it
    /// ([`super::Plugin::rebind`]) take the same CPU turns, the same
    /// budgets and the same background threads as before. Once nothing uses
    /// this runtime any more (no plugin, instance or call of it is left),
    /// its engine is dropped and its pool's
    /// memory (the slots' kept-resident pages, the async stacks) goes back to
    /// the kernel with it: what [`crate::recycle`] builds on. Blocking.
    pub fn successor(&self) -> Result<Runtime, EngineError> {
        let cache = self.inner.cache.clone();
        let next = Runtime::build(
            &self.inner.config,
            |_| cache,
            self.inner.idle.clone(),
            self.inner.cpu.clone(),
            self.inner.background.clone(),
            self.inner.retired.clone(),
        )?;
        self.with_retired(|retired| retired.push(self.inner.engine.weak()));
        Ok(next)
    }

    fn build(
        config: &EngineConfig,
        cache: impl FnOnce(&Engine) -> Option<Arc<Cache>>,
        idle: Arc<IdleBudget>,
        cpu: CpuScheduler,
        background: Option<Arc<Background>>,
        retired: Arc<Mutex<Vec<wasmtime::EngineWeak>>>,
    ) -> Result<Runtime, EngineError> {
        let engine = Engine::new(&wasmtime_config(config)).map_err(EngineError::Engine)?;

        let mut linker = Linker::new(&engine);
        // A locked-down WASI: guests built for wasm32-wasip2 import it through
        // std even when they never use it. What each store grants is decided in
        // `State::new` (no files, no env, no sockets, captured stdio).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError::Wasi)?;
        // Both WIT versions on one linker: their instance names carry the
        // version, so a 0.1.0 plugin links 0.1.0's `host` and nothing else.
        v0_1::ImportHook::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(EngineError::Host)?;
        v0_2::ImportAndEventHook::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(EngineError::Host)?;

        spawn_epoch_ticker(&engine).map_err(EngineError::Ticker)?;
        let cache = cache(&engine);
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config: config.clone(),
                cache,
                idle,
                cpu,
                background,
                retired,
            }),
        })
    }

    /// Runs `f` on the still-alive engines this line retired, freed ones
    /// pruned first.
    fn with_retired<T>(&self, f: impl FnOnce(&mut Vec<wasmtime::EngineWeak>) -> T) -> T {
        // A panic elsewhere while the lock was held cannot leave the list
        // inconsistent (each step is one push or retain).
        let mut retired = self
            .inner
            .retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        retired.retain(|weak| weak.upgrade().is_some());
        f(&mut retired)
    }

    /// This engine and the retired ones still alive.
    fn line(&self) -> Vec<Engine> {
        let mut engines = vec![self.inner.engine.clone()];
        self.with_retired(|retired| engines.extend(retired.iter().filter_map(|w| w.upgrade())));
        engines
    }

    /// A handle that tells when this runtime's engine, and with it its
    /// instance pool, has been freed (it holds neither).
    pub fn weak(&self) -> RuntimeWeak {
        RuntimeWeak(self.inner.engine.weak())
    }

    /// Whether the pool keeps pages resident in unused slots at all: it does
    /// when the kernel has PAGEMAP_SCAN and a keep-resident size is set (see
    /// `wasmtime_config`); otherwise every dropped instance's memory goes
    /// back at once and there is never anything to recycle.
    pub fn keeps_resident(&self) -> bool {
        PoolingAllocationConfig::is_pagemap_scan_available()
            && (self.inner.config.memory_keep_resident > 0
                || self.inner.config.table_keep_resident > 0)
    }

    /// Whether `self` and `other` are the same runtime (the same engine).
    pub fn same(&self, other: &Runtime) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The wasmtime engine (to compile or inspect components with).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<State> {
        &self.inner.linker
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Whether stores of this engine meter fuel.
    pub fn fuel_enabled(&self) -> bool {
        self.inner.config.fuel
    }

    /// The fair CPU scheduler every plugin call runs under.
    pub fn cpu(&self) -> &CpuScheduler {
        &self.inner.cpu
    }

    /// Where a call of `tenant` that starts now runs: on the background
    /// threads while the tenant is heavy ([`CpuScheduler::is_heavy`]), else
    /// (`None`) in place.
    pub(super) fn background_for(&self, tenant: &str) -> Option<&Background> {
        let background = self.inner.background.as_deref()?;
        self.inner.cpu.is_heavy(tenant).then_some(background)
    }

    /// Plugin calls started on the background threads so far, by this
    /// runtime's whole line (0 with `heavy_priority = "normal"`).
    pub fn heavy_calls(&self) -> u64 {
        self.inner.background.as_ref().map_or(0, |b| b.calls())
    }

    /// The CPU account of one call of `tenant` ending at `deadline`.
    pub(super) fn cpu_call(
        &self,
        tenant: &std::sync::Arc<str>,
        deadline: std::time::Instant,
    ) -> CallCpu {
        self.inner
            .cpu
            .call(tenant.clone(), deadline, self.inner.engine.clone())
    }

    /// The engine-wide budget of idle warm instances.
    pub(crate) fn idle_budget(&self) -> &Arc<IdleBudget> {
        &self.inner.idle
    }

    /// How the instance pool is used right now. Every live component
    /// instance holds a slot of the pooling allocator; the idle ones are the
    /// warm instances parked by `reuse` tenants, the rest serve calls. The
    /// count includes the instances of the engines this one succeeded that
    /// are still alive (a recycle's old engine, while the requests that
    /// started on it finish), so for that moment busy + idle may exceed
    /// `slots`. Read from counters that move independently, so a sample
    /// taken while an instance changes hands may be off by one.
    pub fn pool(&self) -> Pool {
        let live: u64 = self
            .line()
            .iter()
            .filter_map(Engine::pooling_allocator_metrics)
            .map(|m| m.component_instances())
            .sum();
        // One budget for the whole line: it counts the old engine's warm
        // instances too until their tenants are dropped.
        let idle = self.inner.idle.idle() as u64;
        Pool {
            busy: live.saturating_sub(idle),
            idle,
            slots: self.inner.config.max_instances,
        }
    }

    /// Bytes this engine's instance pool keeps resident in slots no
    /// instance uses (linear memories and tables): what the keep-resident
    /// settings cost right now, and what a recycle would give back. The rest
    /// of a dropped instance's memory was given back.
    pub fn unused_resident(&self) -> u64 {
        unused_resident(&self.inner.engine)
    }

    /// [`Runtime::unused_resident`] of this engine and of the engines it
    /// succeeded that are still alive: what the process holds, until the
    /// old engines are freed.
    pub fn unused_resident_with_retired(&self) -> u64 {
        self.line().iter().map(unused_resident).sum()
    }

    pub(crate) fn cache(&self) -> Option<&Cache> {
        self.inner.cache.as_deref()
    }

    /// How the precompiled cache has been used; `None` when there is none.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_deref().map(Cache::stats)
    }

    /// The cache file a plugin with this digest ([`super::Plugin::digest`]) is
    /// stored in; `None` without a cache.
    pub fn cache_file(&self, digest: &str) -> Option<std::path::PathBuf> {
        self.inner.cache.as_deref().map(|c| c.path(digest))
    }
}

fn unused_resident(engine: &Engine) -> u64 {
    engine.pooling_allocator_metrics().map_or(0, |m| {
        (m.unused_memory_bytes_resident() + m.unused_table_bytes_resident()) as u64
    })
}

fn wasmtime_config(config: &EngineConfig) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.consume_fuel(config.fuel);
    // A diagnostic switch, not configuration: with HOOKBOX_PERFMAP=1 wasmtime
    // writes /tmp/perf-PID.map, so `perf report` names the plugins' own
    // functions instead of showing anonymous JIT addresses.
    if std::env::var_os("HOOKBOX_PERFMAP").is_some_and(|v| v == "1") {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Instances come from a pool reserved up front: instantiation is a few
    // microseconds of slot reuse (with copy-on-write memory images) instead of
    // fresh mmaps per request, and the pool size is a hard cap on how many
    // plugin instances can exist at once, whatever the load.
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // Each plugin instance may use at most its share of every pooled
        // resource, checked when a plugin is loaded (a component past a cap
        // is refused then, naming it): so no plugin's shape (a thousand
        // core instances, dozens of memories) can take another tenant's
        // instance slots, and the totals are the shares times the pool.
        .max_core_instances_per_component(CORE_INSTANCES_PER_INSTANCE)
        .max_memories_per_component(MEMORIES_PER_INSTANCE)
        .max_tables_per_component(TABLES_PER_INSTANCE)
        .table_elements(MAX_TABLE_ELEMENTS)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_INSTANCE))
        .total_memories(n.saturating_mul(MEMORIES_PER_INSTANCE))
        .total_tables(n.saturating_mul(TABLES_PER_INSTANCE))
        .total_stacks(n)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX));
    // Resetting a slot is most of an instantiation's cost: by default the
    // pool hands pages back with madvise and the next instance faults them in
    // again. With the kernel's PAGEMAP_SCAN (Linux 6.7+) wasmtime resets only
    // the pages an instance dirtied and keeps them mapped; measured here that
    // halves instantiate + call + drop (~50 µs → ~22 µs, see bench/README.md).
    // Without the scan, keep-resident would zero the whole prefix on every
    // drop and be slower, hence the check.
    //
    // What is kept resident is never given back while the pool lives: a
    // slot keeps up to `memory_keep_resident` of the pages its last instance
    // dirtied (plus `table_keep_resident`), so the resident floor after a
    // burst is (slots ever warm) × keep-resident, until `crate::recycle`
    // replaces the engine and its pool. Beyond it, pages are
    // decommitted (madvise) as each instance is dropped, with no batching
    // (`decommit_batch_size` 1, wasmtime's default), so memory comes back
    // when the burst's instances go, not later. The warm set is bounded by
    // `max_unused_warm_slots`: past it the pool reuses warm slots rather than
    // touching cold ones. Defaults (1 MiB, 64 KiB, 16) keep the fast reset
    // for plugins that dirty little (the reference resolver dirties well
    // under 1 MiB) and bound the floor; see the README's `[engine]` keys.
    pool.max_unused_warm_slots(config.max_unused_warm_slots);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(
                usize::try_from(config.memory_keep_resident).unwrap_or(usize::MAX),
            )
            .table_keep_resident(usize::try_from(config.table_keep_resident).unwrap_or(usize::MAX));
    }
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

/// Advances the epoch every [`EPOCH_TICK`] until the engine is dropped.
/// Without the ticker deadlines would never fire, so failing to start it is fatal.
fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("hookbox-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                // Drop the strong handle while sleeping so the engine can be freed.
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}

/// The reference plugin loaded on an engine of its own with a 4-instance
/// pool (unit tests of the engine, its pool and what builds on them).
#[cfg(test)]
pub(crate) fn reference_on_a_small_engine() -> (Runtime, super::Plugin) {
    let runtime = Runtime::new(&EngineConfig {
        max_instances: 4,
        ..EngineConfig::default()
    })
    .expect("engine");
    let wasm = crate::dev::reference_plugin().expect("the reference plugin is embedded");
    let plugin = super::Plugin::from_bytes(&runtime, wasm).expect("the reference plugin loads");
    (runtime, plugin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Limits, Plugin, StoreScope};
    use std::collections::BTreeMap;
    use std::time::Instant;

    const SAMPLE: &str = include_str!("../../../tests/fixtures/sample-request.json");

    /// Runs the reference plugin once on an engine with `keep` bytes of
    /// linear memory kept resident, and returns what the idle pool keeps.
    async fn resident_after_one_call(keep: u64) -> (u64, u32) {
        let config = EngineConfig {
            max_instances: 4,
            memory_keep_resident: keep,
            table_keep_resident: 0,
            max_unused_warm_slots: 1,
            ..EngineConfig::default()
        };
        let runtime = Runtime::new(&config).expect("engine");
        let wasm = crate::dev::reference_plugin().expect("the reference plugin is embedded");
        let plugin = Plugin::from_bytes(&runtime, wasm).expect("the reference plugin loads");
        answer(&plugin).await;
        let warm = runtime
            .engine()
            .pooling_allocator_metrics()
            .map_or(0, |m| m.unused_warm_memories());
        (runtime.unused_resident(), warm)
    }

    /// One call of the sample request on `plugin`, on the runtime it names.
    async fn answer(plugin: &Plugin) -> String {
        let store = hookbox_store::Store::scratch()
            .await
            .expect("a scratch store");
        let scope = StoreScope::new("t", &store);
        let request = crate::hook::decode::decode(SAMPLE.as_bytes()).expect("the sample decodes");
        let run = plugin
            .runtime()
            .invoke(
                plugin,
                &request,
                Arc::new(BTreeMap::new()),
                &Limits::default(),
                &scope,
            )
            .await
            .expect("a slot is free");
        format!("{:?}", run.result.expect("the plugin answers"))
    }

    #[tokio::test]
    async fn a_plugin_moved_to_a_successor_answers_alike_and_the_old_engine_is_freed() {
        let (runtime, plugin) = reference_on_a_small_engine();
        let before = answer(&plugin).await;

        let next = runtime.successor().expect("a successor");
        assert!(!next.same(&runtime));
        assert_eq!(next.config(), runtime.config());
        let moved = plugin.rebind(&next).expect("the plugin moves");
        assert!(moved.runtime().same(&next));
        assert_eq!(moved.digest(), plugin.digest());
        assert_eq!(moved.exports(), plugin.exports());
        assert_eq!(answer(&moved).await, before);

        // Nothing of the old engine is left once its runtime and plugin go:
        // its pool, and what the pool kept resident, are freed with it.
        let old = runtime.weak();
        drop(plugin);
        assert!(!old.is_freed(), "the runtime still holds it");
        drop(runtime);
        assert!(old.is_freed());
        assert_eq!(answer(&moved).await, before);
    }

    #[tokio::test]
    async fn the_pool_counts_an_old_engines_instances_until_it_is_freed() {
        let (runtime, plugin) = reference_on_a_small_engine();
        let claims = hookbox_store::Store::scratch()
            .await
            .expect("a scratch store");
        let scope = StoreScope::new("t", &claims);
        let limits = Limits::default();
        // An instance on the first engine, as a call in flight holds one.
        let mut store = runtime.new_store(Arc::new(BTreeMap::new()), &limits, &scope);
        runtime.begin(
            &mut store,
            &limits,
            Instant::now() + Duration::from_secs(60),
        );
        plugin
            .instantiate(&mut store)
            .await
            .expect("the plugin instantiates");
        assert_eq!(runtime.pool().busy, 1);

        // Recycled: the table moves on, the old runtime and plugin go, and
        // only the call's store keeps the old engine alive.
        let next = runtime.successor().expect("a successor");
        let moved = plugin.rebind(&next).expect("the plugin moves");
        let old = runtime.weak();
        drop((plugin, runtime));
        assert!(!old.is_freed(), "the store still holds the old engine");
        assert_eq!(next.pool().busy, 1, "the old engine's instance is counted");
        answer(&moved).await;
        assert_eq!(
            next.pool().busy,
            1,
            "a call on the new engine came and went"
        );

        drop(store);
        assert!(old.is_freed());
        assert_eq!(next.pool().busy, 0);
    }

    #[tokio::test]
    async fn keep_resident_is_applied_and_bounds_what_an_unused_slot_keeps() {
        // Nothing kept: every page the call dirtied went back to the kernel.
        let (none, warm) = resident_after_one_call(0).await;
        assert_eq!(none, 0);
        assert_eq!(warm, 1, "the call's slot is warm and unused now");

        let (kept, _) = resident_after_one_call(8 << 20).await;
        let (capped, _) = resident_after_one_call(64 << 10).await;
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            // The plugin dirties some of its memory (its stack and heap at
            // least), which the pool keeps, up to the setting.
            assert!(kept > 0 && kept <= 8 << 20, "{kept}");
            assert!(capped > 0 && capped <= 64 << 10, "{capped}");
        } else {
            // Without PAGEMAP_SCAN hookbox never keeps pages resident.
            assert_eq!((kept, capped), (0, 0));
        }
    }
}
