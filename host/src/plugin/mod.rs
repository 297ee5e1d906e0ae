//! Running resolver plugins: WebAssembly components implementing the
//! `hookbox:okta-import/import-hook` world, version 0.1.0 or 0.2.0.
//!
//! Lifecycle, and the invariants it keeps:
//! - one [`Runtime`] (one wasmtime `Engine`, one `Linker`, one epoch ticker)
//!   serves every tenant; it is replaced only whole, by a successor with the
//!   same configuration that every plugin moves to ([`Runtime::successor`],
//!   [`Plugin::rebind`], [`crate::recycle`]), and each [`Plugin`] names the
//!   runtime it is linked on, which its calls always run on, so no call can
//!   mix two engines;
//! - a plugin is compiled once per distinct file content ([`Plugin::digest`])
//!   and linked once, at load ([`Plugin`] holds the `InstancePre`); nothing is
//!   compiled or linked on the request path. Which WIT version it targets and
//!   what it exports ([`Exports`]) is read from its component type at load:
//!   `resolver@0.1.0`, `resolver@0.2.0`, `event-handler@0.2.0`. One linker
//!   serves both versions (0.1.0's `host`; 0.2.0's `host`, `claims`,
//!   `directory`), so a 0.1.0 plugin runs exactly as before;
//! - in a tenant's `fresh` instance mode (the default), every request gets a
//!   fresh `Store` and a fresh instance from the pooling allocator, and both
//!   are dropped when the request ends: no state survives from one request to
//!   the next, and a trap, timeout or memory exhaustion poisons only that
//!   request's instance;
//! - in `reuse` mode, a tenant keeps warm instances ([`Instances`]) and a
//!   request may get one that served earlier requests of the same tenant
//!   (never another tenant's); an instance that failed is never reused. See
//!   [`instances`] for exactly what carries over;
//! - wasm runs only while its call holds a CPU slot of the engine's
//!   [`CpuScheduler`] (`engine.cpu_slots`, at most `engine.cpu_slots_per_tenant`
//!   per tenant), given back at every epoch tick and while the claim store
//!   is awaited, and granted to the least-used tenant first: a tenant whose
//!   plugin spins cannot take the other tenants' CPU (see [`fair`]);
//! - a heavy tenant's calls (one used [`fair::HEAVY_CALL`] of CPU in the
//!   last [`fair::HEAVY_FOR`]) run on threads of their own at a low
//!   operating-system priority (`engine.heavy_priority`, see
//!   `background.rs`), so they also cannot take the CPU of the other tenants'
//!   TLS, HTTP and store work on the connection threads;
//! - what answers a tenant is its [`Binding`]'s [`Backend`]: the plugin (the
//!   only backend a shipped build has) or a resolver a benchmark compiled
//!   into the host; the runtime itself never checks for the latter.

mod background;
mod binding;
pub mod bindings;
pub mod cache;
mod claims;
mod engine;
pub mod fair;
mod handler;
pub mod instances;
mod invoke;
mod limits;
mod state;

pub use background::HeavyPriority;
pub use binding::{Backend, Binding, NativeResolver};
#[cfg(test)]
pub(crate) use engine::reference_on_a_small_engine;
pub use engine::{
    CORE_INSTANCES_PER_INSTANCE, EngineError, MEMORIES_PER_INSTANCE, Pool, Runtime, RuntimeWeak,
    TABLES_PER_INSTANCE,
};
pub use fair::CpuScheduler;
pub use instances::Instances;
pub use invoke::{Failure, Invocation, Outcome, Overloaded};
pub(crate) use limits::MIB;
pub use limits::{
    DEFAULT_DEADLINE, DEFAULT_IDLE_RESIDENT_GRACE, DEFAULT_IDLE_RESIDENT_LIMIT,
    DEFAULT_MAX_UNUSED_WARM_SLOTS, DEFAULT_MEMORY, DEFAULT_MEMORY_KEEP_RESIDENT,
    DEFAULT_REUSE_MAX_REQUESTS, DEFAULT_TABLE_KEEP_RESIDENT, EngineConfig, InstanceMode, Limits,
    Settings, default_cpu_slots, default_cpu_slots_per_tenant,
};
pub use state::{LogLine, MAX_TABLE_ELEMENTS, PluginLog};

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use wasmtime::component::{Component, ComponentExportIndex, Func, InstancePre, TypedFunc};
use wasmtime::{Engine, Store};

pub use self::bindings::v0_1::hookbox;
/// The event types of WIT 0.2.0 (`interface events`), as the handler receives them.
pub use self::bindings::v0_2::hookbox::okta_import::events;
pub use self::hookbox::okta_import::types as wit;
pub use claims::{MAX_STORE_CALLS, StoreScope};
pub use handler::HandlerRun;

use state::State;
pub(crate) use state::truncate;

/// Why a component cannot be loaded as a plugin. Each message says what is
/// wrong with the file, never how to fix hookbox.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("reading plugin {}: {error}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// The file was read, and its content refused (the inner error says why).
    #[error("loading plugin {}: {error}", path.display())]
    Load {
        /// The plugin file.
        path: PathBuf,
        /// Why its content was refused.
        error: Box<PluginError>,
    },
    /// The bytes are not a component wasmtime can compile.
    #[error("not a valid WebAssembly component: {0:#}")]
    Compile(wasmtime::Error),
    /// The component imports what the linker does not provide.
    #[error("the component imports something hookbox does not grant: {0:#}")]
    Imports(wasmtime::Error),
    /// The component exports none of the interfaces of a hookbox world.
    #[error(
        "the component does not export hookbox:okta-import/resolver (0.1.0 or 0.2.0) \
         (its exports: {0})"
    )]
    World(String),
    /// The interface is there, without its `resolve` function.
    #[error("the component does not export {0}#resolve")]
    NoResolve(&'static str),
    /// The event handler interface is there, without its `handle` function.
    #[error("the component does not export hookbox:okta-import/event-handler@0.2.0#handle")]
    NoHandle,
    /// A loaded plugin's code could not be carried over to a new engine.
    #[error("moving the plugin to a new engine: {0:#}")]
    Rebind(wasmtime::Error),
}

/// Compiles component bytes: the one place hookbox turns `.wasm` into code.
/// Blocking (tens of milliseconds to seconds).
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes).map_err(PluginError::Compile)
}

/// Loads code that `Component::serialize` produced in this process, for an
/// engine built from the same configuration ([`Runtime::successor`]).
#[allow(unsafe_code)]
fn deserialize_own(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` maps its bytes as executable code
    // without validating them, so they must be wasmtime's own serialization
    // for a compatible engine. These bytes never left this process: `rebind`
    // got them from `Component::serialize` of a component this process
    // compiled (or verified and loaded from its cache), a moment before, and
    // passes them straight here. The engine is a successor, built from the
    // same `EngineConfig`, and wasmtime itself refuses bytes whose engine
    // configuration or version differ.
    unsafe { Component::deserialize(engine, bytes) }
}

/// A loaded plugin: compiled, linked and ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    /// The runtime it was compiled and linked on: the only one its calls
    /// can run on, so every call takes it from here
    /// ([`Binding`](binding::Binding) never takes a runtime of its own).
    runtime: Runtime,
    digest: String,
    pre: InstancePre<State>,
    /// The WIT version and exports, read from the component type at load.
    exports: Exports,
    /// Where `resolve` is among the component's exports, found once at load
    /// (`None`: a plugin for event hooks only).
    resolve: Option<ComponentExportIndex>,
    /// Where `handle` is, for a plugin exporting the event handler.
    handle: Option<ComponentExportIndex>,
    /// Whether `resolve`'s signature matched the host's types, checked once
    /// on the first instance (a type check needs an instance); every later
    /// call relies on it ([`Resolve::call`]).
    checked: OnceLock<Result<(), String>>,
    /// Loaded from the precompiled cache rather than compiled.
    from_cache: bool,
}

/// The WIT versions of `hookbox:okta-import` this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitVersion {
    /// 0.1.0: the resolver with `host` (log, settings); no claims.
    V0_1,
    /// 0.2.0: `host`, `claims`, `directory`; resolver and/or event handler.
    V0_2,
}

impl WitVersion {
    /// `0.1.0` or `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
        }
    }
}

/// What a component is, by its exports (its component type, not a world name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exports {
    /// The WIT version its hookbox exports belong to.
    pub version: WitVersion,
    /// It exports `resolver` (answers the import hook).
    pub resolver: bool,
    /// It exports `event-handler@0.2.0` (called for event hooks).
    pub event_handler: bool,
}

impl Exports {
    /// Reads the version and exports off a component's type. Unknown exports
    /// (componentize-py adds its own) are ignored. `Err` lists the exports
    /// when none of hookbox's is there.
    pub fn of(component: &Component, engine: &Engine) -> Result<Exports, PluginError> {
        let names: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let has = |n: &str| names.iter().any(|e| e == n);
        let (v1, v2, handler) = (has(RESOLVER_0_1), has(RESOLVER_0_2), has(EVENT_HANDLER_0_2));
        match (v1, v2 || handler) {
            (true, false) => Ok(Exports {
                version: WitVersion::V0_1,
                resolver: true,
                event_handler: false,
            }),
            (false, true) => Ok(Exports {
                version: WitVersion::V0_2,
                resolver: v2,
                event_handler: handler,
            }),
            // Both versions' exports in one component: not something a
            // toolchain builds; refused rather than guessed.
            _ => Err(PluginError::World(if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            })),
        }
    }

    /// The resolver interface's export name, when it has one.
    pub fn resolver_interface(&self) -> Option<&'static str> {
        self.resolver.then_some(match self.version {
            WitVersion::V0_1 => RESOLVER_0_1,
            WitVersion::V0_2 => RESOLVER_0_2,
        })
    }

    /// `resolver`, `event-handler` or `resolver + event-handler`.
    pub fn describe(&self) -> &'static str {
        match (self.resolver, self.event_handler) {
            (true, true) => "resolver + event-handler",
            (true, false) => "resolver",
            (false, true) => "event-handler",
            (false, false) => "nothing",
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("digest", &self.inner.digest)
            .finish()
    }
}

impl Plugin {
    /// Reads, compiles and type-checks a component file. Blocking (compilation
    /// takes tens of milliseconds to seconds): call it off the async runtime.
    pub fn load(runtime: &Runtime, path: &Path) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|error| PluginError::Read {
            path: path.to_owned(),
            error,
        })?;
        Plugin::from_bytes(runtime, &bytes).map_err(|error| PluginError::Load {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// Compiles (or, with `[engine] cache_dir`, loads from the precompiled cache)
    /// and type-checks component bytes. Blocking, like [`Plugin::load`].
    pub fn from_bytes(runtime: &Runtime, bytes: &[u8]) -> Result<Plugin, PluginError> {
        Plugin::from_digested(runtime, bytes, Sha256::digest(bytes).into())
    }

    /// [`Plugin::from_bytes`] for bytes whose SHA-256 the caller already has.
    fn from_digested(
        runtime: &Runtime,
        bytes: &[u8],
        sum: [u8; 32],
    ) -> Result<Plugin, PluginError> {
        let digest = hex(&sum);
        let (component, from_cache) = match runtime.cache() {
            Some(cache) => cache.load_or_compile(runtime.engine(), &sum, bytes)?,
            None => (compile(runtime.engine(), bytes)?, false),
        };
        Plugin::linked(runtime, component, digest, from_cache)
    }

    /// The same plugin on `runtime` (a successor of its own: same engine
    /// configuration), with the same digest and exports: its compiled code
    /// is carried over as wasmtime serialized it, not compiled again. What a
    /// recycle ([`crate::recycle`]) moves every tenant with. Blocking
    /// (copies the plugin's code).
    pub fn rebind(&self, runtime: &Runtime) -> Result<Plugin, PluginError> {
        let component = self.inner.pre.component();
        let bytes = component.serialize().map_err(PluginError::Rebind)?;
        let component = deserialize_own(runtime.engine(), &bytes).map_err(PluginError::Rebind)?;
        Plugin::linked(
            runtime,
            component,
            self.inner.digest.clone(),
            self.inner.from_cache,
        )
    }

    /// Type-checks and links a compiled `component` on `runtime`.
    fn linked(
        runtime: &Runtime,
        component: Component,
        digest: String,
        from_cache: bool,
    ) -> Result<Plugin, PluginError> {
        let exports = Exports::of(&component, runtime.engine())?;
        let pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(PluginError::Imports)?;
        let resolve = match exports.resolver_interface() {
            Some(interface) => Some(
                component
                    .get_export_index(None, interface)
                    .and_then(|i| component.get_export_index(Some(&i), "resolve"))
                    .ok_or(PluginError::NoResolve(interface))?,
            ),
            None => None,
        };
        let handle = match exports.event_handler {
            true => Some(
                component
                    .get_export_index(None, EVENT_HANDLER_0_2)
                    .and_then(|i| component.get_export_index(Some(&i), "handle"))
                    .ok_or(PluginError::NoHandle)?,
            ),
            false => None,
        };
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                runtime: runtime.clone(),
                digest,
                pre,
                exports,
                resolve,
                handle,
                checked: OnceLock::new(),
                from_cache,
            }),
        })
    }

    /// Whether `self` and `other` are the same loaded plugin (not merely the
    /// same content: [`Plugin::digest`] says that).
    pub fn same(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The runtime it is linked on, which every call of it runs on.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// SHA-256 of the component file, hex: names the exact version that answered.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// The WIT version it targets and what it exports.
    pub fn exports(&self) -> Exports {
        self.inner.exports
    }

    /// Whether this plugin was loaded from the precompiled cache (not compiled).
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The first 12 hex digits of the digest: enough to tell versions apart in logs.
    pub fn short_digest(&self) -> &str {
        &self.inner.digest[..12]
    }

    /// A new instance of the plugin in `store`, as its `resolve` function.
    /// The first instance of a plugin type-checks `resolve` against the
    /// host's types; a mismatch fails this and every later instantiation.
    pub(crate) async fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Resolve> {
        let resolve = self.inner.resolve.ok_or_else(|| {
            wasmtime::format_err!("the plugin exports no resolver (it handles event hooks only)")
        })?;
        let instance = self.inner.pre.instantiate_async(&mut *store).await?;
        let func = instance.get_func(&mut *store, resolve).ok_or_else(|| {
            wasmtime::format_err!("the instance lacks the resolver export its component declares")
        })?;
        let checked = self.inner.checked.get_or_init(|| {
            func.typed::<(&wit::ImportRequest,), (Result<wit::Response, String>,)>(&*store)
                .map(|_| ())
                .map_err(|e| format!("`resolve` does not have the WIT signature: {e:#}"))
        });
        if let Err(e) = checked {
            return Err(wasmtime::format_err!("{e}"));
        }
        Ok(Resolve(func))
    }

    /// A new instance of the plugin in `store`, as its event handler's
    /// `handle` function (typed by the caller, which checks the signature).
    pub(crate) async fn instantiate_handler(
        &self,
        store: &mut Store<State>,
    ) -> wasmtime::Result<Func> {
        let handle = self
            .inner
            .handle
            .ok_or_else(|| wasmtime::format_err!("the plugin exports no event handler"))?;
        let instance = self.inner.pre.instantiate_async(&mut *store).await?;
        instance.get_func(&mut *store, handle).ok_or_else(|| {
            wasmtime::format_err!("the instance lacks the event handler its component declares")
        })
    }
}

/// The resolver export of WIT 0.1.0.
pub(crate) const RESOLVER_0_1: &str = "hookbox:okta-import/resolver@0.1.0";
/// The resolver export of WIT 0.2.0.
pub(crate) const RESOLVER_0_2: &str = "hookbox:okta-import/resolver@0.2.0";
/// The event handler export of WIT 0.2.0 (called for event hooks).
pub(crate) const EVENT_HANDLER_0_2: &str = "hookbox:okta-import/event-handler@0.2.0";
/// The newest WIT version this host implements (what new plugins should target).
pub(crate) const WORLD_VERSION: &str = "0.2.0";
/// What every version of the resolver interface is named, before its version.
pub(crate) const RESOLVER_EXPORT: &str = "hookbox:okta-import/resolver@";

/// The request and answer of `resolve`, as the host's types.
type ResolveSignature<'a> = TypedFunc<(&'a wit::ImportRequest,), (Result<wit::Response, String>,)>;

/// An instance's `resolve` export (0.1.0 or 0.2.0: the same signature over
/// the same Rust types, see [`bindings`]).
///
/// Not the bindgen-generated `ImportHook`: building that from an instance
/// type-checks the whole request/response type tree against the component
/// again, on every instantiation (a few µs per request, measured). The check
/// is done once per plugin, on its first instance ([`Plugin::instantiate`]);
/// an instance can only come from there, i.e. from a checked component.
pub(crate) struct Resolve(Func);

impl Resolve {
    /// Calls `resolve`: `Ok(Err(summary))` is the plugin declining.
    #[allow(unsafe_code)] // the one unchecked call: see the SAFETY comment
    pub(crate) async fn call(
        &self,
        store: &mut Store<State>,
        request: &wit::ImportRequest,
    ) -> wasmtime::Result<Result<wit::Response, String>> {
        // SAFETY: `new_unchecked` requires the function's component type to
        // match the signature. The function is the `resolve` export of an
        // instance of a component whose `resolve` was type-checked against
        // this very signature (`Func::typed`, the same host types) on its
        // first instance, in `Plugin::instantiate`, which refuses to hand
        // out a `Resolve` when that check failed.
        let typed: ResolveSignature<'_> = unsafe { TypedFunc::new_unchecked(self.0) };
        let (answer,) = typed.call_async(&mut *store, (request,)).await?;
        Ok(answer)
    }
}

/// Plugins loaded so far, by content digest, so that each distinct file is
/// compiled once however many tenants use it (at start and on every reload).
#[derive(Default)]
pub struct Compiled(HashMap<String, Plugin>);

impl Compiled {
    /// Starts from plugins already loaded (a reload reuses the running ones).
    pub fn from_plugins<'a>(plugins: impl IntoIterator<Item = &'a Plugin>) -> Compiled {
        Compiled(
            plugins
                .into_iter()
                .map(|p| (p.digest().to_owned(), p.clone()))
                .collect(),
        )
    }

    /// The plugin for `bytes`: the one already loaded with the same digest, or a
    /// newly compiled one. A refusal names the digest of the version refused. Blocking.
    pub fn load(&mut self, runtime: &Runtime, bytes: &[u8]) -> Result<Plugin, Refusal> {
        let sum: [u8; 32] = Sha256::digest(bytes).into();
        let digest = hex(&sum);
        if let Some(p) = self.0.get(&digest) {
            return Ok(p.clone());
        }
        let plugin = Plugin::from_digested(runtime, bytes, sum).map_err(|error| Refusal {
            digest: digest.clone(),
            error,
        })?;
        self.0.insert(digest, plugin.clone());
        Ok(plugin)
    }
}

/// A plugin version that failed to load, and which one it was.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    /// SHA-256 of the refused file's content, hex.
    pub digest: String,
    /// Why it was refused.
    pub error: PluginError,
}

/// Lower-case hex of `bytes`: the one spelling of digests (plugin versions,
/// cache file names) and generated secrets.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
