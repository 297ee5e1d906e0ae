//! Running resolver plugins: WebAssembly components implementing the
//! `hookbox:okta-import/import-hook` world.
//!
//! Lifecycle, and the invariants it keeps:
//! - one [`Runtime`] (one wasmtime `Engine`, one `Linker`, one epoch ticker)
//!   per process, shared by every tenant;
//! - a plugin is compiled once per distinct file content ([`Plugin::digest`])
//!   and type-checked against the world once, at load ([`Plugin`] holds the
//!   `InstancePre`); nothing is compiled or linked on the request path;
//! - in a tenant's `fresh` instance mode (the default), every request gets a
//!   fresh `Store` and a fresh instance from the pooling allocator, and both
//!   are dropped when the request ends: no state survives from one request to
//!   the next, and a trap, timeout or memory exhaustion poisons only that
//!   request's instance;
//! - in `reuse` mode, a tenant keeps warm instances ([`Instances`]) and a
//!   request may get one that served earlier requests of the same tenant
//!   (never another tenant's); an instance that failed is never reused. See
//!   [`instances`] for exactly what carries over;
//! - what answers a tenant is its [`Binding`]'s [`Backend`]: the plugin (the
//!   only backend a shipped build has) or a resolver a benchmark compiled
//!   into the host; the runtime itself never checks for the latter.

mod binding;
pub mod cache;
mod engine;
pub mod instances;
mod invoke;
mod limits;
mod state;

pub use binding::{Backend, Binding, NativeResolver};
pub use engine::{EngineError, Pool, Runtime};
pub use instances::Instances;
pub use invoke::{Failure, Invocation, Outcome, Overloaded};
pub(crate) use limits::MIB;
pub use limits::{
    DEFAULT_DEADLINE, DEFAULT_MEMORY, DEFAULT_REUSE_MAX_REQUESTS, EngineConfig, InstanceMode,
    Limits, Settings,
};
pub use state::{LogLine, PluginLog};

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, Func, TypedFunc};
use wasmtime::{Engine, Store};

wasmtime::component::bindgen!({
    world: "import-hook",
    path: "../wit",
    exports: { default: async },
});

pub use self::hookbox::okta_import::types as wit;

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
    /// The component does not export the resolver interface of this world.
    #[error("the component does not export the hookbox:okta-import/resolver interface: {0:#}")]
    World(wasmtime::Error),
    /// The interface is there, without its `resolve` function.
    #[error("the component does not export hookbox:okta-import/resolver#resolve")]
    NoResolve,
}

/// Compiles component bytes: the one place hookbox turns `.wasm` into code.
/// Blocking (tens of milliseconds to seconds).
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes).map_err(PluginError::Compile)
}

/// A loaded plugin: compiled, linked and ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    digest: String,
    pre: ImportHookPre<State>,
    /// Where `resolve` is among the component's exports, found once at load.
    resolve: ComponentExportIndex,
    /// Loaded from the precompiled cache rather than compiled.
    from_cache: bool,
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
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(PluginError::Imports)?;
        // Type-checks the resolver export against the WIT world, once per plugin.
        let pre = ImportHookPre::new(instance_pre).map_err(PluginError::World)?;
        let resolve = component
            .get_export_index(None, RESOLVER_INTERFACE)
            .and_then(|interface| component.get_export_index(Some(&interface), "resolve"))
            .ok_or(PluginError::NoResolve)?;
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                digest,
                pre,
                resolve,
                from_cache,
            }),
        })
    }

    /// SHA-256 of the component file, hex: names the exact version that answered.
    pub fn digest(&self) -> &str {
        &self.inner.digest
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
    pub(crate) async fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Resolve> {
        let instance = self
            .inner
            .pre
            .instance_pre()
            .instantiate_async(&mut *store)
            .await?;
        let func = instance
            .get_func(&mut *store, self.inner.resolve)
            .ok_or_else(|| {
                wasmtime::format_err!(
                    "the instance lacks the resolver export its component declares"
                )
            })?;
        Ok(Resolve(func))
    }
}

// Macros, so that `RESOLVER_INTERFACE` is spelt from the same literals at compile time.
macro_rules! world_version {
    () => {
        "0.1.0"
    };
}
macro_rules! resolver_export {
    () => {
        "hookbox:okta-import/resolver@"
    };
}
/// The version of the world this host implements (`package hookbox:okta-import@…` in `wit/`).
pub(crate) const WORLD_VERSION: &str = world_version!();
/// What every version of the resolver interface is named, before its version.
pub(crate) const RESOLVER_EXPORT: &str = resolver_export!();
/// The component interface the resolver is exported as, at this host's version.
pub(crate) const RESOLVER_INTERFACE: &str = concat!(resolver_export!(), world_version!());

/// The request and answer of `resolve`, as the host's types.
type ResolveSignature<'a> = TypedFunc<(&'a wit::ImportRequest,), (Result<wit::Response, String>,)>;

/// An instance's `resolve` export.
///
/// Not the bindgen-generated `ImportHook`: building that from an instance
/// type-checks the whole request/response type tree against the component
/// again, on every instantiation (a few µs per request, measured). The check
/// is done once, when the plugin is loaded ([`ImportHookPre::new`]); an
/// instance can only come from [`Plugin::instantiate`], i.e. from that
/// checked component.
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
        // instance of a component whose export was type-checked against this
        // very signature (the WIT world's `resolve`, the same bindgen types) by
        // `ImportHookPre::new` in `Plugin::from_digested`.
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
