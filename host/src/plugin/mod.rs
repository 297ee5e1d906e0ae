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
//!   [`instances`] for exactly what carries over.

pub mod cache;
mod engine;
pub mod instances;
mod invoke;
mod state;

pub use engine::Runtime;
pub use instances::Instances;
pub use invoke::{Failure, Invocation, Outcome};

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

wasmtime::component::bindgen!({
    world: "import-hook",
    path: "../wit",
    exports: { default: async },
});

pub use self::hookbox::okta_import::types as wit;

use state::State;
pub(crate) use state::truncate;

/// A loaded plugin: compiled, linked and ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    digest: String,
    pre: ImportHookPre<State>,
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
    pub fn load(runtime: &Runtime, path: &Path) -> anyhow::Result<Plugin> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
        Plugin::from_bytes(runtime, &bytes)
            .with_context(|| format!("loading plugin {}", path.display()))
    }

    /// Compiles (or, with `[engine] cache_dir`, loads from the precompiled cache)
    /// and type-checks component bytes. Blocking, like [`Plugin::load`].
    pub fn from_bytes(runtime: &Runtime, bytes: &[u8]) -> anyhow::Result<Plugin> {
        Plugin::from_digested(runtime, bytes, Sha256::digest(bytes).into())
    }

    /// [`Plugin::from_bytes`] for bytes whose SHA-256 the caller already has.
    fn from_digested(runtime: &Runtime, bytes: &[u8], sum: [u8; 32]) -> anyhow::Result<Plugin> {
        let digest = hex(&sum);
        let (component, from_cache) = match runtime.cache() {
            Some(cache) => cache.load_or_compile(runtime.engine(), &sum, bytes)?,
            None => (
                Component::new(runtime.engine(), bytes)
                    .map_err(anyhow::Error::from)
                    .context("not a valid WebAssembly component")?,
                false,
            ),
        };
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component imports something hookbox does not grant")?;
        let pre = ImportHookPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export the hookbox:okta-import/resolver interface")?;
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                digest,
                pre,
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

    pub(crate) fn pre(&self) -> &ImportHookPre<State> {
        &self.inner.pre
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
    /// newly compiled one. On failure, returns the bytes' digest with the error so
    /// the caller can say which file version was refused. Blocking.
    pub fn load(
        &mut self,
        runtime: &Runtime,
        bytes: &[u8],
    ) -> Result<Plugin, (String, anyhow::Error)> {
        let sum: [u8; 32] = Sha256::digest(bytes).into();
        let digest = hex(&sum);
        if let Some(p) = self.0.get(&digest) {
            return Ok(p.clone());
        }
        let plugin = Plugin::from_digested(runtime, bytes, sum).map_err(|e| (digest.clone(), e))?;
        self.0.insert(digest, plugin.clone());
        Ok(plugin)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
