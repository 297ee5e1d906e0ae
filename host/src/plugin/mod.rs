//! Running resolver plugins: WebAssembly components implementing the
//! `hookbox:okta-import/import-hook` world.
//!
//! Lifecycle, and the invariants it keeps:
//! - one [`Runtime`] (one wasmtime `Engine`, one `Linker`, one epoch ticker)
//!   per process, shared by every tenant;
//! - a plugin is compiled once per distinct file content ([`Plugin::digest`])
//!   and type-checked against the world once, at load ([`Plugin`] holds the
//!   `InstancePre`); nothing is compiled or linked on the request path;
//! - every request gets a fresh `Store` and a fresh instance from the pooling
//!   allocator, and both are dropped when the request ends: no state survives
//!   from one request to the next, and a trap, timeout or memory exhaustion
//!   poisons only that request's instance.

mod engine;
mod invoke;
mod state;

pub use engine::Runtime;
pub use invoke::{Failure, Invocation, Outcome};

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

/// A loaded plugin: compiled, linked and ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    digest: String,
    pre: ImportHookPre<State>,
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

    /// Compiles and type-checks component bytes. Blocking, like [`Plugin::load`].
    pub fn from_bytes(runtime: &Runtime, bytes: &[u8]) -> anyhow::Result<Plugin> {
        let digest = hex(&Sha256::digest(bytes));
        let component = Component::new(runtime.engine(), bytes)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component imports something hookbox does not grant")?;
        let pre = ImportHookPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export the hookbox:okta-import/resolver interface")?;
        Ok(Plugin {
            inner: Arc::new(PluginInner { digest, pre }),
        })
    }

    /// SHA-256 of the component file, hex: names the exact version that answered.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// The first 12 hex digits of the digest: enough to tell versions apart in logs.
    pub fn short_digest(&self) -> &str {
        &self.inner.digest[..12]
    }

    pub(crate) fn pre(&self) -> &ImportHookPre<State> {
        &self.inner.pre
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
