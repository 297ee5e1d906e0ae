//! `hookbox check` and `hookbox run`: a plugin author's tools, without a server.
//!
//! `run` sends one request through exactly the production path (the request
//! pipeline `serve` uses, [`crate::pipeline::handle`], with the same engine
//! configuration and limits) and shows what the plugin cost against its
//! limits. Its claims go to a throwaway store ([`Store::scratch`]) unless
//! the caller passes a real one (`hookbox run --store-config FILE`). `check`
//! says whether a file is a component implementing a hookbox world, which
//! WIT version and which exports, and what it imports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookbox_store::{Store, StoreError};
use tokio::sync::Semaphore;

use crate::config::ConfigError;
use crate::hook::{decode, encode};
use crate::pipeline::{self, Refused, Verdict};
use crate::plugin::hookbox::okta_import::host::Level;
use crate::plugin::{
    Backend, Binding, EngineConfig, EngineError, Exports, Failure, InstanceMode, Limits, Plugin,
    PluginError, RESOLVER_EXPORT, Runtime, Settings, StoreScope, WORLD_VERSION, WitVersion,
    compile,
};

/// Import prefixes hookbox grants, and how (the first match applies).
const GRANTED: &[(&str, &str)] = &[
    (
        "hookbox:okta-import/claims@",
        "granted (the tenant's claim store)",
    ),
    (
        "hookbox:okta-import/directory@",
        "granted (answers not-configured: no directory lookups yet)",
    ),
    ("hookbox:okta-import/", "granted"),
    ("wasi:io/", "granted"),
    ("wasi:cli/stdout", "granted (captured into the log)"),
    ("wasi:cli/stderr", "granted (captured into the log)"),
    ("wasi:cli/stdin", "granted (always empty)"),
    ("wasi:cli/environment", "granted (always empty)"),
    ("wasi:cli/", "granted"),
    ("wasi:clocks/", "granted"),
    ("wasi:random/", "granted"),
    (
        "wasi:filesystem/",
        "linked, but no directory is ever opened",
    ),
    (
        "wasi:sockets/",
        "linked, but every network operation is refused",
    ),
];

/// What `check` found. `ok` is false when hookbox would refuse to load the file.
pub(crate) struct CheckReport {
    /// Whether hookbox can load the file.
    pub(crate) ok: bool,
    /// What was found, line by line.
    pub(crate) text: String,
}

/// An engine sized for one call under `limits` (fuel metered, so the report
/// can show it) and the plugin at `plugin_path` compiled on it, off the
/// async threads. Shared by `hookbox run` and `hookbox run --events`.
async fn load_for_run(plugin_path: &Path, limits: &Limits) -> Result<(Runtime, Plugin), RunError> {
    let engine = EngineConfig {
        max_instances: 2,
        max_memory: limits.memory.max(EngineConfig::default().max_memory),
        fuel: true,
        ..EngineConfig::default()
    };
    let plugin_path = plugin_path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<_, RunError> {
        let runtime = Runtime::new(&engine)?;
        let plugin = Plugin::load(&runtime, &plugin_path)?;
        Ok((runtime, plugin))
    })
    .await?
}

/// Inspects a component file. Never fails: every problem is a sentence in the report.
pub(crate) fn check(path: &Path) -> CheckReport {
    let mut text = String::new();
    let ok = check_into(path, &mut text);
    CheckReport { ok, text }
}

fn check_into(path: &Path, out: &mut String) -> bool {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(out, "cannot read {}: {e}", path.display());
            return false;
        }
    };
    let _ = writeln!(out, "file: {} ({} bytes)", path.display(), bytes.len());
    if let Some(problem) = not_a_component(&bytes) {
        let _ = writeln!(out, "{problem}");
        return false;
    }
    let runtime = match Runtime::new(&EngineConfig {
        max_instances: 1,
        ..EngineConfig::default()
    }) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "cannot start the wasm engine: {e}");
            return false;
        }
    };
    let component = match compile(runtime.engine(), &bytes) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return false;
        }
    };
    let ty = component.component_type();
    let engine = runtime.engine();

    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let found = Exports::of(&component, engine);
    match &found {
        Ok(exports) => {
            let world = match (exports.resolver, exports.event_handler) {
                (false, true) => "event-hook",
                (true, true) if exports.version == WitVersion::V0_2 => "import-and-event-hook",
                _ => "import-hook",
            };
            let version = exports.version.as_str();
            let _ = writeln!(
                out,
                "implements: hookbox:okta-import/{world}@{version} (WIT {version}; exports {})",
                exports.describe()
            );
            if let Some(resolver) = exports.resolver_interface() {
                let _ = writeln!(out, "  {resolver}: answers the import hook");
            }
            if exports.event_handler {
                let _ = writeln!(
                    out,
                    "  {}: handles event hooks (POST /hooks/{{tenant}}/events)",
                    crate::plugin::EVENT_HANDLER_0_2
                );
            }
            if exports.version != WitVersion::V0_2 {
                let _ = writeln!(
                    out,
                    "WIT {version} has no claim store; this hookbox serves it unchanged \
                     (rebuild against wit/0.2.0 for claims)"
                );
            }
        }
        Err(_) => {
            let _ = writeln!(
                out,
                "does not implement hookbox:okta-import/import-hook: it exports no \
                 {RESOLVER_EXPORT}* interface (its exports: {}); this hookbox serves WIT \
                 0.1.0 and {WORLD_VERSION}",
                list(&names)
            );
        }
    }

    let _ = writeln!(out, "imports:");
    let mut refused = Vec::new();
    for (name, _) in ty.imports(engine) {
        let how = GRANTED
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map(|(_, how)| *how);
        let _ = writeln!(out, "  {name}: {}", how.unwrap_or("NOT GRANTED"));
        if how.is_none() {
            refused.push(name.to_owned());
        }
    }
    // The linker is the authority: it type-checks every import against what hookbox provides.
    let linked = Plugin::from_bytes(&runtime, &bytes);
    match (&linked, found.is_ok()) {
        (Ok(p), true) => {
            let _ = writeln!(
                out,
                "digest: {}\nresult: hookbox can load this plugin",
                p.digest()
            );
            true
        }
        (Err(e), _) => {
            let _ = writeln!(out, "result: hookbox would refuse this plugin: {e}");
            if !refused.is_empty() {
                let _ = writeln!(
                    out,
                    "imports hookbox does not grant: {}",
                    refused.join(", ")
                );
            }
            false
        }
        (Ok(_), false) => false,
    }
}

/// A sentence saying what the bytes are when they are not a component.
fn not_a_component(bytes: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Some("not a WebAssembly file (no \\0asm header)".to_owned());
    }
    // Bytes 4..8: version and layer. Layer 0 is a core module, layer 1 a component.
    if bytes[6..8] == [0, 0] {
        return Some(
            "a core WebAssembly module, not a component: build Rust plugins with \
             `cargo build --target wasm32-wasip2`, or wrap a module with `wasm-tools component new`"
                .to_owned(),
        );
    }
    None
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// What `run` did.
pub(crate) struct RunReport {
    /// The response body Okta would receive.
    pub(crate) body: Vec<u8>,
    /// False when the plugin failed (trap, limit, invalid answer).
    pub(crate) ok: bool,
    /// Human-readable figures, log lines and failure details.
    pub(crate) text: String,
}

/// Why `run` could not run the plugin at all (as opposed to the plugin failing,
/// which is a report). All of them are the caller's input: exit code
/// [`RunError::EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The request file could not be read.
    #[error("reading {}: {error}", path.display())]
    Request {
        /// The request file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The request is not a valid import request.
    #[error("the request is invalid: {0}")]
    InvalidRequest(String),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// No instance slot was free.
    #[error("no free instance slot to run the plugin")]
    Overloaded,
    /// The blocking load task failed.
    #[error("loading the plugin failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The claim store could not be opened.
    #[error("claim store: {0}")]
    Store(#[from] StoreError),
}

impl RunError {
    /// The process's exit code for any of them.
    pub(crate) const EXIT_CODE: u8 = ConfigError::EXIT_CODE;
}

/// Where `run`'s claims go.
pub enum RunStore {
    /// A throwaway store, empty, deleted afterwards (the default).
    Scratch,
    /// A real store (`--store-config`), as tenant `tenant`.
    Real {
        /// The opened store.
        store: Store,
        /// The tenant whose key space the plugin uses.
        tenant: String,
    },
}

/// The tenant id `run` uses in a scratch store.
pub const RUN_TENANT: &str = "run";

/// Runs one request file through a plugin as `serve` would, with fuel metered to report it.
pub(crate) async fn run(
    plugin_path: &Path,
    request_path: &Path,
    settings: Settings,
    limits: Limits,
    store: RunStore,
) -> Result<RunReport, RunError> {
    let body = std::fs::read(request_path).map_err(|error| RunError::Request {
        path: request_path.to_owned(),
        error,
    })?;
    // Refused before compiling anything (the pipeline would refuse it too, later).
    decode::decode(&body).map_err(|e| RunError::InvalidRequest(e.to_string()))?;
    let (_, plugin) = load_for_run(plugin_path, &limits).await?;

    // A fresh instance, permits of its own: one request, as a tenant's first.
    let limits = Limits {
        instance_mode: InstanceMode::Fresh,
        ..limits
    };
    let (settings, backend) = (Arc::new(settings), Backend::default());
    let permits = Semaphore::new(limits.max_concurrency as usize);
    let (store, tenant, scratch) = match store {
        RunStore::Scratch => (Store::scratch().await?, RUN_TENANT.to_owned(), true),
        RunStore::Real { store, tenant } => (store, tenant, false),
    };
    let scope = StoreScope::new(&tenant, &store);
    let binding = Binding {
        plugin: &plugin,
        settings: &settings,
        limits: &limits,
        backend: &backend,
        permits: &permits,
        scope: &scope,
    };
    let handled = match pipeline::handle(&binding, &body).await {
        Ok(handled) => handled,
        Err(Refused::BadRequest(e)) => return Err(RunError::InvalidRequest(e.to_string())),
        Err(Refused::Overloaded) => return Err(RunError::Overloaded),
    };
    let (body, inv) = (handled.body, handled.figures);

    let mut text = String::new();
    let _ = writeln!(
        text,
        "plugin:   {} ({})",
        plugin.short_digest(),
        plugin.digest()
    );
    let outcome = match &handled.verdict {
        Verdict::Replayed => {
            "replayed the answer stored for this eventId and body (the plugin did not run)"
                .to_owned()
        }
        Verdict::Failed(f) => format!("FAILED: {}", describe(f)),
        Verdict::Declined(s) => format!("declined: {s}"),
        Verdict::Answered { commands } => format!("answered {commands} command(s)"),
    };
    let _ = writeln!(text, "outcome:  {outcome}");
    let _ = writeln!(
        text,
        "time:     {:.3} ms of {} ms deadline (instantiate + call)",
        inv.elapsed.as_secs_f64() * 1e3,
        limits.deadline.as_millis()
    );
    let fuel_limit = limits
        .fuel
        .map_or_else(|| "no fuel limit".to_owned(), |f| format!("limit {f}"));
    let fuel = inv.fuel_consumed.unwrap_or(0);
    // wasmtime keeps a function's fuel count in a register and stores it at
    // calls and returns; an epoch interrupt traps from inside a loop without
    // storing it, so after a deadline the figure misses what the plugin burnt
    // since its last call or return. Say so instead of printing it as exact.
    let fuel = match &handled.verdict {
        Verdict::Failed(Failure::Deadline) => format!(
            "at least {fuel} (interrupted at the deadline: fuel burnt since the plugin's last call is not counted)"
        ),
        _ => fuel.to_string(),
    };
    let _ = writeln!(text, "fuel:     {fuel} ({fuel_limit})");
    let _ = writeln!(
        text,
        "memory:   {} bytes peak of {} limit",
        inv.peak_memory, limits.memory
    );
    let _ = writeln!(
        text,
        "output:   {} bytes of {} Okta accepts",
        body.len(),
        encode::MAX_RESPONSE_BYTES
    );
    let (made, refused) = inv.store_calls;
    let _ = writeln!(
        text,
        "store:    {made} claim-store call(s) of {} per request{}, {} store{}",
        crate::plugin::MAX_STORE_CALLS,
        if refused > 0 {
            format!(" ({refused} more refused by the cap)")
        } else {
            String::new()
        },
        store.backend_name(),
        if scratch {
            " (a throwaway one: --store-config FILE to use a real one)".to_owned()
        } else {
            format!(", tenant {tenant}")
        }
    );
    let log = &handled.log;
    if !log.lines.is_empty() || log.dropped > 0 {
        let _ = writeln!(text, "log:");
        for line in &log.lines {
            let _ = writeln!(text, "  {}: {}", level_name(line.level), line.message);
        }
        if log.dropped > 0 {
            let _ = writeln!(text, "  ({} more lines dropped by the cap)", log.dropped);
        }
    }
    Ok(RunReport {
        body,
        ok: !matches!(handled.verdict, Verdict::Failed(_)),
        text,
    })
}

/// `hookbox run PLUGIN --events DELIVERY`: the plugin's event handler on
/// each event of a delivery file, in order, as the event worker calls it (a
/// fresh instance per event, the same limits), with the claims in `store`.
/// The body is one JSON line per event (`uuid`, `eventType`, `result`); the
/// text has each event's figures. `ok` when every event was handled.
pub async fn run_events(
    plugin_path: &Path,
    delivery_path: &Path,
    settings: Settings,
    limits: Limits,
    store: RunStore,
) -> Result<RunReport, RunError> {
    let body = std::fs::read(delivery_path).map_err(|error| RunError::Request {
        path: delivery_path.to_owned(),
        error,
    })?;
    let delivery = crate::events::delivery::decode(&body)
        .map_err(|e| RunError::InvalidRequest(e.to_string()))?;
    let (runtime, plugin) = load_for_run(plugin_path, &limits).await?;
    if !plugin.exports().event_handler {
        return Err(RunError::InvalidRequest(
            "the plugin exports no event handler (hookbox:okta-import/event-handler@0.2.0)".into(),
        ));
    }
    let settings = Arc::new(settings);
    let (store, tenant) = match store {
        RunStore::Scratch => (Store::scratch().await?, RUN_TENANT.to_owned()),
        RunStore::Real { store, tenant } => (store, tenant),
    };
    let scope = StoreScope::new(&tenant, &store);
    let mut out = Vec::new();
    let mut text = format!(
        "plugin:   {} ({})\n",
        plugin.short_digest(),
        plugin.digest()
    );
    let mut ok = true;
    for event in &delivery.events {
        let payload = crate::events::delivery::Payload::of(&delivery, event);
        let typed = crate::events::delivery::log_event(
            &serde_json::Value::Object(payload.event.clone()),
            "event",
        )
        .map_err(|e| RunError::InvalidRequest(e.to_string()))?;
        let wit_event = crate::events::to_wit(&payload, typed);
        let run = runtime
            .handle_event(&plugin, settings.clone(), &limits, &scope, &wit_event)
            .await
            .map_err(|_| RunError::Overloaded)?;
        let verdict = run.verdict();
        ok &= verdict.is_ok();
        let line = serde_json::json!({
            "uuid": event.uuid,
            "eventType": event.event_type,
            "result": match &verdict {
                Ok(()) => "handled".to_owned(),
                Err(reason) => format!("failed: {reason}"),
            },
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
        let _ = writeln!(
            text,
            "event {} ({}): {}",
            event.uuid,
            event.event_type,
            run.outcome()
        );
        for l in run.report(&limits).lines() {
            let _ = writeln!(text, "  {l}");
        }
    }
    if delivery.events.is_empty() {
        let _ = writeln!(text, "the delivery has no events");
    }
    // `println!` adds the last newline.
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(RunReport {
        body: out,
        ok,
        text,
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// A plugin author's sentence for a failure, with the guest's backtrace where wasmtime has one.
fn describe(f: &Failure) -> String {
    match f {
        Failure::Trap(detail) => format!("the plugin trapped:\n{detail}"),
        Failure::Deadline => {
            "the plugin ran past its deadline and was interrupted (raise limits.deadline, \
                              or look for a loop that never ends)"
                .to_owned()
        }
        Failure::StackOverflow => {
            "the plugin exhausted its call stack (wasmtime's default 512 KiB of wasm stack): \
             look for recursion that never ends"
                .to_owned()
        }
        Failure::MemoryLimit => "the plugin tried to grow its memory past limits.memory".to_owned(),
        Failure::TableLimit => format!(
            "the plugin tried to grow a table past {} elements (the engine's table limit)",
            crate::plugin::MAX_TABLE_ELEMENTS
        ),
        Failure::FuelExhausted => "the plugin used up limits.fuel".to_owned(),
        Failure::Instantiate(d) => format!("the plugin could not be instantiated: {d}"),
        Failure::InvalidAnswer(d) => format!("the plugin's answer breaks Okta's rules: {d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_version_matches_the_wit_package() {
        let wit = include_str!("../../wit/0.2.0/okta-import.wit");
        assert!(wit.contains(&format!("package hookbox:okta-import@{WORLD_VERSION};")));
        let old = include_str!("../../wit/okta-import.wit");
        assert!(old.contains("package hookbox:okta-import@0.1.0;"));
    }

    #[test]
    fn non_components_are_named_for_what_they_are() {
        assert!(not_a_component(b"nope").is_some_and(|m| m.contains("not a WebAssembly file")));
        assert!(
            not_a_component(b"\0asm\x01\0\0\0")
                .is_some_and(|m| m.contains("core WebAssembly module"))
        );
        assert!(not_a_component(b"\0asm\x0d\0\x01\0").is_none());
    }
}
