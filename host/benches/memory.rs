//! Memory after a burst: the process's resident set (VmRSS) at baseline,
//! right after 64 concurrent requests of a memory-hungry plugin (the
//! misbehave guest in mode `memory-bomb`: 1 MiB chunks until its 32 MiB
//! limit, then a trap), and again after a recovery wait; with the pool's
//! keep-resident settings as they were before they were configurable
//! (8 MiB per linear memory, 1 MiB per table, wasmtime's 100 unused warm
//! slots), with the defaults, and with the defaults but 2 or 4 MiB kept per
//! linear memory. Each configuration runs in a child process
//! of its own, so one's pages never count in the other's figures. Also the
//! cost of one instantiate + call + drop of the reference plugin under each
//! configuration (the trade-off the keep-resident size buys).
//!
//! ```sh
//! cargo test --release --workspace --test e2e --no-run   # builds the misbehave guest
//! cargo bench -p hookbox --bench memory
//! ```
//!
//! `HOOKBOX_BENCH_MISBEHAVE_WASM` names another build of the guest;
//! `HOOKBOX_BENCH_RECOVERY_SECS` the recovery wait (default 5). Not a test:
//! one run prints one table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookbox::hook::decode;
use hookbox::plugin::{EngineConfig, Limits, Plugin, Runtime, StoreScope};

const SAMPLE: &str = include_str!("../../tests/fixtures/sample-request.json");
const BURST: usize = 64;
const MIB: u64 = 1 << 20;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn config(name: &str) -> EngineConfig {
    match name {
        "before" => EngineConfig {
            memory_keep_resident: 8 * MIB,
            table_keep_resident: MIB,
            max_unused_warm_slots: 100,
            ..EngineConfig::default()
        },
        // "keep-N": the defaults with N MiB kept per linear memory.
        other => match other
            .strip_prefix("keep-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => EngineConfig {
                memory_keep_resident: n * MIB,
                ..EngineConfig::default()
            },
            None => EngineConfig::default(),
        },
    }
}

/// One configuration, in this (child) process: prints one line.
fn child(name: &str) {
    let misbehave = std::env::var_os("HOOKBOX_BENCH_MISBEHAVE_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(hookbox_tests::misbehave_wasm);
    let recovery = Duration::from_secs(
        std::env::var("HOOKBOX_BENCH_RECOVERY_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let engine = config(name);
    let runtime = Arc::new(Runtime::new(&engine).expect("engine"));
    let reference = Plugin::from_bytes(
        &runtime,
        hookbox::dev::reference_plugin().expect("the reference plugin is embedded"),
    )
    .expect("the reference plugin loads");
    let bomb = Plugin::load(&runtime, &misbehave).expect("the misbehave guest loads");
    let store = rt
        .block_on(hookbox_store::Store::scratch())
        .expect("a scratch store");
    let scope = StoreScope::new("t", &store);
    let request = Arc::new(decode::decode(SAMPLE.as_bytes()).expect("decodes"));
    let limits = Limits::default();

    // Instantiate + call + drop of the reference plugin, one at a time.
    let settings = Arc::new(BTreeMap::new());
    let call = |reference: &Plugin, n: usize| {
        rt.block_on(async {
            for _ in 0..n {
                let run = reference
                    .runtime()
                    .invoke(reference, &request, settings.clone(), &limits, &scope)
                    .await
                    .expect("a slot");
                assert!(run.result.is_ok());
            }
        })
    };
    call(&reference, 500);
    let t = Instant::now();
    call(&reference, 5000);
    let per_call = t.elapsed() / 5000;

    let baseline = rss();
    let bomb_settings = Arc::new(BTreeMap::from([(
        "mode".to_owned(),
        "memory-bomb".to_owned(),
    )]));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..BURST {
            let (runtime, bomb, request, settings, limits, scope) = (
                runtime.clone(),
                bomb.clone(),
                request.clone(),
                bomb_settings.clone(),
                limits.clone(),
                scope.clone(),
            );
            tasks.push(tokio::spawn(async move {
                runtime
                    .invoke(&bomb, &request, settings, &limits, &scope)
                    .await
                    .map(|r| r.result.is_err())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.ok(), Some(Ok(true)), "the bomb ran and failed");
        }
    });
    let after = rss();
    let kept = runtime.unused_resident();
    std::thread::sleep(recovery);
    let recovered = rss();

    // What a recycle costs per distinct plugin: one move of the reference
    // plugin's code to another engine (serialize, then load), averaged.
    let spare = runtime.successor().expect("a successor");
    let t = Instant::now();
    for _ in 0..20 {
        drop(reference.rebind(&spare).expect("moves"));
    }
    let per_move = t.elapsed() / 20;
    drop(spare);

    // What a recycle (`hookbox::recycle`) does: both plugins moved to a
    // successor engine, the old runtime and plugins dropped with its pool.
    let t = Instant::now();
    let next = runtime.successor().expect("a successor");
    let moved = reference.rebind(&next).expect("moves");
    let moved_bomb = bomb.rebind(&next).expect("moves");
    let old = runtime.weak();
    drop((reference, bomb, moved_bomb, runtime));
    assert!(old.is_freed(), "the old engine is still in use");
    let reference = moved;
    let recycle_took = t.elapsed();
    let recycled = rss();
    // The price: the first calls on the new pool fault their slots in.
    let t = Instant::now();
    call(&reference, BURST);
    let cold_call = t.elapsed() / BURST as u32;
    drop(reference);
    println!(
        "{name:<7} keep {:>5} KiB/slot warm {:>3}: baseline {:>5} MiB, after burst {:>5} MiB \
         (pool keeps {:>4} MiB), after {:?} {:>5} MiB, after a recycle ({:?}; {:?} per \
         move of the reference plugin) {:>5} MiB; instantiate+call+drop {:?}, first {BURST} on \
         the new pool {:?} each",
        engine.memory_keep_resident / 1024,
        engine.max_unused_warm_slots,
        baseline / MIB,
        after / MIB,
        kept / MIB,
        recovery,
        recovered / MIB,
        recycle_took,
        per_move,
        recycled / MIB,
        per_call,
        cold_call,
    );
}

fn main() {
    if let Ok(name) = std::env::var("HOOKBOX_BENCH_MEMORY_CHILD") {
        child(&name);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!("{BURST} concurrent memory-bomb requests (32 MiB limit each):");
    for name in ["before", "default", "keep-2", "keep-4"] {
        let status = std::process::Command::new(&exe)
            .env("HOOKBOX_BENCH_MEMORY_CHILD", name)
            .status()
            .expect("runs itself");
        assert!(status.success(), "{name}: {status}");
    }
}
