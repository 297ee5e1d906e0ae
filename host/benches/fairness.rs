//! The noisy neighbour: tenant B's latency and throughput alone, and while
//! tenant A's plugin spins to its deadline at 8 and at 64 requests in
//! flight, with the fair CPU scheduler as configured by default
//! (`cpu_slots` = cores, `cpu_slots_per_tenant` = cores − 1, heavy tenants'
//! calls on the background threads at `heavy_priority = "idle"`), with the
//! same scheduler but heavy calls in place (`fair-inplace`,
//! `heavy_priority = "normal"`), and with it out of the way (1024 slots, no
//! per-tenant cap, heavy calls in place: every call runs at once, as before
//! the scheduler existed). B is measured once every A task has had its
//! first answer, so A is heavy and its calls start where heavy calls do.
//!
//! ```sh
//! cargo test --release --workspace --test e2e --no-run   # builds the misbehave guest
//! cargo bench -p hookbox --bench fairness
//! ```
//!
//! In process, on a multi-threaded tokio runtime with one worker per core
//! (as `hookbox serve` has): B's requests go through `Binding::invoke`
//! (the reference plugin, a fresh instance per call, Okta's sample) from
//! `HOOKBOX_BENCH_B_CLIENTS` closed-loop tasks (default 2), for
//! `HOOKBOX_BENCH_SECS` seconds per row (default 5); A's requests are the
//! misbehave guest in mode `loop` (500 ms deadline), each task starting a
//! new one as soon as the last is answered. The guest is read from
//! `HOOKBOX_BENCH_MISBEHAVE_WASM`, else from where the tests' build script
//! puts it (`hookbox_tests::misbehave_wasm`). Prints one table and the ratios
//! to "B alone" of the same configuration; not a test, and one run on a
//! shared machine: read the ratios.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookbox::hook::decode;
use hookbox::plugin::{
    Backend, Binding, EngineConfig, HeavyPriority, Limits, Plugin, Runtime, StoreScope,
    default_cpu_slots, default_cpu_slots_per_tenant,
};
use tokio::sync::Semaphore;

const SAMPLE: &str = include_str!("../../tests/fixtures/sample-request.json");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The misbehave guest: the variable, else where the e2e tests' build put it.
fn misbehave_wasm() -> PathBuf {
    let path = std::env::var_os("HOOKBOX_BENCH_MISBEHAVE_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(hookbox_tests::misbehave_wasm);
    if !path.is_file() {
        eprintln!(
            "no {}: set HOOKBOX_BENCH_MISBEHAVE_WASM or build the e2e tests first",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

struct Row {
    config: &'static str,
    scenario: String,
    p50: Duration,
    p99: Duration,
    rps: f64,
    a_answers: u64,
    b_failed: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(config: &'static str, engine: &EngineConfig, spinning: usize, misbehave: &Path) -> Row {
    let cores = default_cpu_slots() as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::new(engine).expect("engine");
    let b_plugin = Plugin::from_bytes(
        &runtime,
        hookbox::dev::reference_plugin().expect("the reference plugin is embedded"),
    )
    .expect("the reference plugin loads");
    let a_plugin = Plugin::load(&runtime, misbehave).expect("the misbehave guest loads");
    let store = rt
        .block_on(hookbox_store::Store::scratch())
        .expect("a scratch store");
    let request = Arc::new(decode::decode(SAMPLE.as_bytes()).expect("decodes"));
    let secs = env_u64("HOOKBOX_BENCH_SECS", 5);
    let clients = env_u64("HOOKBOX_BENCH_B_CLIENTS", 2) as usize;

    struct Tenant {
        plugin: Plugin,
        settings: Arc<BTreeMap<String, String>>,
        limits: Limits,
        backend: Backend,
        permits: Semaphore,
        scope: StoreScope,
    }
    impl Tenant {
        fn binding(&self) -> Binding<'_> {
            Binding {
                plugin: &self.plugin,
                settings: &self.settings,
                limits: &self.limits,
                backend: &self.backend,
                permits: &self.permits,
                scope: &self.scope,
            }
        }
    }
    let a = Arc::new(Tenant {
        plugin: a_plugin,
        settings: Arc::new(BTreeMap::from([("mode".to_owned(), "loop".to_owned())])),
        limits: Limits::default(),
        backend: Backend::default(),
        permits: Semaphore::new(64),
        scope: StoreScope::new("a", &store),
    });
    let b = Arc::new(Tenant {
        plugin: b_plugin,
        settings: Arc::new(BTreeMap::new()),
        limits: Limits::default(),
        backend: Backend::default(),
        permits: Semaphore::new(64),
        scope: StoreScope::new("b", &store),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let a_answers = Arc::new(AtomicU64::new(0));
    let mut a_tasks = Vec::new();
    for _ in 0..spinning {
        let (a, request, stop, answers) =
            (a.clone(), request.clone(), stop.clone(), a_answers.clone());
        a_tasks.push(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let run = a.binding().invoke(&request).await;
                if let Ok(run) = run {
                    assert!(run.result.is_err(), "the spinner answered");
                    answers.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Every A task's first call ran in place (A was not heavy yet); B is
    // measured once they are answered, and A's calls have filled their slots.
    while a_answers.load(Ordering::Relaxed) < spinning as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut b_tasks = Vec::new();
    for _ in 0..clients {
        let (b, request) = (b.clone(), request.clone());
        b_tasks.push(rt.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let run = b.binding().invoke(&request).await;
                // A failed call (B starved to its deadline) counts at its latency.
                latencies.push((t.elapsed(), matches!(run, Ok(ref r) if r.result.is_ok())));
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in b_tasks {
        for (latency, ok) in rt.block_on(t).expect("B task") {
            all.push(latency);
            failed += u64::from(!ok);
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in a_tasks {
        let _ = rt.block_on(t);
    }
    all.sort();
    Row {
        config,
        scenario: if spinning == 0 {
            "B alone".to_owned()
        } else {
            format!("B + A x{spinning}")
        },
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        a_answers: a_answers.load(Ordering::Relaxed),
        b_failed: failed,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let misbehave = misbehave_wasm();
    let slots = default_cpu_slots();
    let fair = EngineConfig::default();
    let in_place = EngineConfig {
        heavy_priority: HeavyPriority::Normal,
        ..EngineConfig::default()
    };
    let unscheduled = EngineConfig {
        cpu_slots: 1024,
        cpu_slots_per_tenant: 1024,
        heavy_priority: HeavyPriority::Normal,
        ..EngineConfig::default()
    };
    println!(
        "cores {slots}; fair: cpu_slots {}, per tenant {}; B clients {}, {} s per row",
        fair.cpu_slots,
        default_cpu_slots_per_tenant(slots),
        env_u64("HOOKBOX_BENCH_B_CLIENTS", 2),
        env_u64("HOOKBOX_BENCH_SECS", 5)
    );
    let mut rows = Vec::new();
    for (name, config) in [
        ("unscheduled", &unscheduled),
        ("fair-inplace", &in_place),
        ("fair", &fair),
    ] {
        for spinning in [0, 8, 64] {
            let row = run(name, config, spinning, &misbehave);
            println!(
                "{:<12} {:<11} p50 {:>9.3?} p99 {:>9.3?} {:>9.0} req/s  B failed {}  (A answered {})",
                row.config, row.scenario, row.p50, row.p99, row.rps, row.b_failed, row.a_answers
            );
            rows.push(row);
        }
    }
    println!("\nratios to B alone of the same configuration (target: p99 <= 1.5x, req/s >= 0.8x):");
    for row in &rows {
        let Some(alone) = rows
            .iter()
            .find(|r| r.config == row.config && r.scenario == "B alone")
        else {
            continue;
        };
        println!(
            "{:<12} {:<11} p99 {:>6.2}x  req/s {:>5.2}x",
            row.config,
            row.scenario,
            row.p99.as_secs_f64() / alone.p99.as_secs_f64(),
            row.rps / alone.rps
        );
    }
}
