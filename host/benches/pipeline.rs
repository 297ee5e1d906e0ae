//! The in-process request pipeline, part by part, for the reference plugin:
//! decode + validate, instantiate + call + drop (the sandbox), encode, the
//! whole thing, and (with `--features native-resolver`) the same resolver
//! called natively, which is what the sandbox is measured against.
//!
//! ```sh
//! cargo bench -p hookbox --features native-resolver --bench pipeline
//! ```
//!
//! The `instance modes` group measures one request (the conflict) per
//! language × instance mode, through a tenant's `Binding::invoke` as a tenant's
//! requests go: Rust (the embedded reference plugin), Python and JavaScript.
//! The Python and JavaScript components are read from `HOOKBOX_BENCH_PY_WASM`
//! and `HOOKBOX_BENCH_JS_WASM`, else from where the e2e tests' build puts them
//! (`target/guests/other/login_conflict_{python,javascript}.wasm`, made by
//! `cargo test`); a language whose file is absent is skipped, with a message.
//!
//! `HOOKBOX_BENCH_RUST_WASM=FILE` measures another Rust build (or any plugin
//! of the world) in place of the embedded reference plugin, in both groups.
//!
//! Short measurement times keep the whole run under two minutes; these
//! machines are shared and noisy, so read ratios between lines of the same run.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

use hookbox::hook::{decode, encode};
use hookbox::plugin::{
    Backend, Binding, DEFAULT_REUSE_MAX_REQUESTS, EngineConfig, InstanceMode, Limits, Plugin,
    Runtime, StoreScope,
};
use tokio::sync::Semaphore;

const SAMPLE: &str = include_str!("../../tests/fixtures/sample-request.json");

/// Request bodies, one per path through the resolver.
struct Bodies {
    /// Okta's sample: a login conflict, first and last name, no middle name.
    hashed_suffix: Vec<u8>,
    /// A login conflict with a middle name (the guide's own example).
    middle_name: Vec<u8>,
    /// No conflict: the resolver answers nothing (the floor of a call).
    no_conflict: Vec<u8>,
}

fn bodies() -> Bodies {
    let sample: Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
    let mut middle = sample.clone();
    middle["data"]["appUser"]["profile"]["middleName"] = Value::from("Alexander");
    let mut none = sample.clone();
    none["data"]["context"]["conflicts"] = Value::Array(Vec::new());
    let bytes = |v: &Value| serde_json::to_vec(v).expect("serialises");
    Bodies {
        hashed_suffix: bytes(&sample),
        middle_name: bytes(&middle),
        no_conflict: bytes(&none),
    }
}

fn pipeline(c: &mut Criterion) {
    let (rt, runtime) = runtimes();
    let plugin = rust_plugin(&runtime);
    let settings = Arc::new(BTreeMap::new());
    let limits = Limits::default();
    let digest = plugin.short_digest().to_owned();
    let bodies = bodies();
    let request = decode::decode(&bodies.hashed_suffix).expect("decodes");
    let no_conflict = decode::decode(&bodies.no_conflict).expect("decodes");
    let middle = decode::decode(&bodies.middle_name).expect("decodes");
    // The plugin's claims go to a throwaway embedded store (after the first
    // iteration each call finds its login `already-yours`: reads, no writes).
    // The cost of claims per backend is `benches/claims.rs`.
    let store = rt
        .block_on(hookbox_store::Store::scratch())
        .expect("a scratch store");
    let scope = StoreScope::new("bench", &store);

    // Every iteration awaits inside one `block_on`, so the runtime's own
    // enter/exit is not counted per call.
    let invoke_loop = |request: &hookbox::plugin::wit::ImportRequest, iters: u64| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let inv = runtime
                    .invoke(
                        &plugin,
                        black_box(request),
                        settings.clone(),
                        &limits,
                        &scope,
                    )
                    .await;
                let _ = black_box(inv);
            }
            start.elapsed()
        })
    };
    let sanity = rt
        .block_on(runtime.invoke(&plugin, &request, settings.clone(), &limits, &scope))
        .expect("a free instance slot");
    assert!(
        sanity.result.is_ok(),
        "the plugin answers: {:?}",
        sanity.result
    );
    let result = sanity.result;

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(40)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3));

    g.bench_function("decode+validate", |b| {
        b.iter(|| decode::decode(black_box(&bodies.hashed_suffix)))
    });
    g.bench_function("sandbox: instantiate+call+drop (conflict)", |b| {
        b.iter_custom(|iters| invoke_loop(&request, iters))
    });
    g.bench_function("sandbox: instantiate+call+drop (middle name)", |b| {
        b.iter_custom(|iters| invoke_loop(&middle, iters))
    });
    g.bench_function("sandbox: instantiate+call+drop (no conflict)", |b| {
        b.iter_custom(|iters| invoke_loop(&no_conflict, iters))
    });
    g.bench_function("encode", |b| {
        b.iter(|| encode::encode(black_box(&result), &digest))
    });
    g.bench_function("whole: decode+sandbox+encode", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let req = decode::decode(black_box(&bodies.hashed_suffix)).expect("decodes");
                    let inv = runtime
                        .invoke(&plugin, &req, settings.clone(), &limits, &scope)
                        .await
                        .expect("a free instance slot");
                    black_box(encode::encode(&inv.result, &digest).expect("encodes"));
                }
                start.elapsed()
            })
        })
    });

    #[cfg(feature = "native-resolver")]
    {
        g.bench_function("native: resolve (conflict)", |b| {
            b.iter(|| hookbox::native::resolve(black_box(&request), &settings))
        });
        g.bench_function("native: resolve (no conflict)", |b| {
            b.iter(|| hookbox::native::resolve(black_box(&no_conflict), &settings))
        });
        g.bench_function("whole: decode+native+encode", |b| {
            b.iter(|| {
                let req = decode::decode(black_box(&bodies.hashed_suffix)).expect("decodes");
                let outcome = hookbox::native::resolve(&req, &settings);
                encode::encode(&Ok(outcome), &digest).expect("encodes")
            })
        });
    }
    g.finish();
}

/// Where a language's build of the resolver is, if it is there.
fn other_language(var: &str, file: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os(var).map(Into::into).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/guests/other")
            .join(file)
    });
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "instance modes: skipping {file}: {} not found (set {var}, or run `cargo test -p hookbox-tests` to build it)",
            path.display()
        );
        None
    }
}

/// A single-threaded tokio runtime (every iteration awaits inside one
/// `block_on`) and an engine with the default configuration.
fn runtimes() -> (tokio::runtime::Runtime, Runtime) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::new(&EngineConfig::default()).expect("engine");
    (rt, runtime)
}

/// The embedded reference plugin, or the file `HOOKBOX_BENCH_RUST_WASM` names.
fn rust_plugin(runtime: &Runtime) -> Plugin {
    match std::env::var_os("HOOKBOX_BENCH_RUST_WASM") {
        Some(path) => Plugin::load(runtime, path.as_ref()).expect("HOOKBOX_BENCH_RUST_WASM loads"),
        None => Plugin::from_bytes(
            runtime,
            hookbox::dev::reference_plugin().expect("the reference plugin is embedded"),
        )
        .expect("the reference plugin loads"),
    }
}

fn instance_modes(c: &mut Criterion) {
    let (rt, runtime) = runtimes();
    let store = rt
        .block_on(hookbox_store::Store::scratch())
        .expect("a scratch store");
    let scope = StoreScope::new("bench", &store);
    let request = decode::decode(&bodies().hashed_suffix).expect("decodes");

    let mut languages = vec![("rust", rust_plugin(&runtime))];
    for (name, var, file) in [
        (
            "python",
            "HOOKBOX_BENCH_PY_WASM",
            "login_conflict_python.wasm",
        ),
        (
            "javascript",
            "HOOKBOX_BENCH_JS_WASM",
            "login_conflict_javascript.wasm",
        ),
    ] {
        if let Some(path) = other_language(var, file) {
            let plugin = Plugin::load(&runtime, &path).expect("the component loads");
            languages.push((name, plugin));
        }
    }
    let modes = [
        ("fresh", InstanceMode::Fresh),
        (
            "reuse",
            InstanceMode::Reuse {
                max_requests: DEFAULT_REUSE_MAX_REQUESTS,
            },
        ),
    ];

    let mut g = c.benchmark_group("instance modes");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3));
    for (lang, plugin) in &languages {
        for (mode_name, mode) in modes {
            let limits = Limits {
                instance_mode: mode,
                ..Limits::default()
            };
            let (settings, backend) = (Arc::new(BTreeMap::new()), Backend::default());
            let permits = Semaphore::new(limits.max_concurrency as usize);
            let binding = Binding {
                plugin,
                settings: &settings,
                limits: &limits,
                backend: &backend,
                permits: &permits,
                scope: &scope,
            };
            let sanity = rt
                .block_on(binding.invoke(&request))
                .expect("a free instance slot");
            assert!(sanity.result.is_ok(), "{lang} answers: {:?}", sanity.result);
            g.bench_function(format!("{lang} {mode_name}: one request"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let _ = black_box(binding.invoke(black_box(&request)).await);
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pipeline, instance_modes);
criterion_main!(benches);
