//! What the host grants a plugin: its settings, a log, the claim store and
//! the tenant's Okta directory.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use crate::claims::{Claims, FakeClaims};
use crate::directory::{Directory, FakeDirectory};

pub use crate::bindings::hookbox::okta_import::host::Level;

/// One line a plugin logged through a [`Host::fake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The severity.
    pub level: Level,
    /// The text.
    pub message: String,
}

/// The plugin's view of the host: its tenant's settings, the host's log, the
/// claim store ([`Host::claims`]) and the tenant's Okta directory
/// ([`Host::directory`]).
///
/// Inside a component, [`export!`](crate::export) hands the resolver (or event
/// handler) a `Host` backed by the host's imports. In native unit tests, build
/// one with [`Host::fake`]: it answers settings from a map, records log lines,
/// claims in a fresh [`FakeClaims`] and has no directory, unless given others
/// with [`Host::with_claims`] and [`Host::with_directory`]; it never touches
/// the component imports (which do not exist outside wasm).
///
/// Never log profile values or anything personal: host logs are not private.
pub struct Host {
    backend: Backend,
    claims: Box<dyn Claims>,
    directory: Box<dyn Directory>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Backend {
    /// The real host, through the WIT imports.
    #[cfg(target_arch = "wasm32")]
    Component,
    Fake {
        settings: BTreeMap<String, String>,
        // Interior mutability because resolvers get `&Host`, like the real
        // imports, which need no `&mut` either.
        log: RefCell<Vec<LogLine>>,
    },
}

impl Host {
    /// The host this component runs in. Only [`export!`](crate::export) needs it.
    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn component() -> Self {
        Host {
            backend: Backend::Component,
            // Zero-sized: boxing them allocates nothing.
            claims: Box::new(crate::claims::HostClaims),
            directory: Box::new(crate::directory::HostDirectory),
        }
    }

    /// A stand-in host for tests: `settings` are the tenant's plugin
    /// settings; log lines are kept and returned by [`Host::logs`]; claims go
    /// to a fresh, empty [`FakeClaims`]; there is no directory
    /// ([`FakeDirectory::not_configured`]).
    ///
    /// ```
    /// let host = hookbox_sdk::Host::fake([("mode", "echo")]);
    /// assert_eq!(host.setting("mode").as_deref(), Some("echo"));
    /// host.debug("hello");
    /// assert_eq!(host.logs()[0].message, "hello");
    /// ```
    pub fn fake<I, K, V>(settings: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Host {
            backend: Backend::Fake {
                settings: settings
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
                log: RefCell::new(Vec::new()),
            },
            claims: Box::new(FakeClaims::new()),
            directory: Box::new(FakeDirectory::not_configured()),
        }
    }

    /// This host with `claims` as its claim store (keep a clone of a
    /// [`FakeClaims`] to inspect or pre-seed it).
    ///
    /// ```
    /// use hookbox_sdk::{Claims, FakeClaims, Host};
    ///
    /// let store = FakeClaims::new();
    /// let host = Host::fake([("k", "v")]).with_claims(store.clone());
    /// host.claims().claim("key", "me").unwrap();
    /// assert_eq!(store.owner("key").as_deref(), Some("me"));
    /// ```
    pub fn with_claims(mut self, claims: impl Claims + 'static) -> Self {
        self.claims = Box::new(claims);
        self
    }

    /// This host with `directory` as the tenant's Okta directory.
    pub fn with_directory(mut self, directory: impl Directory + 'static) -> Self {
        self.directory = Box::new(directory);
        self
    }

    /// The claim store, scoped to this tenant.
    pub fn claims(&self) -> &dyn Claims {
        &*self.claims
    }

    /// The tenant's Okta directory (every lookup answers
    /// [`DirectoryError::NotConfigured`](crate::DirectoryError::NotConfigured)
    /// when the tenant has none).
    pub fn directory(&self) -> &dyn Directory {
        &*self.directory
    }

    /// The tenant's plugin setting `key`, or `None` when the tenant does not set it.
    /// In a component each key is asked of the host once per instance (settings
    /// are fixed for an instance's lifetime), so calling this per request is cheap.
    pub fn setting(&self, key: &str) -> Option<String> {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Component => component_setting(key),
            Backend::Fake { settings, .. } => settings.get(key).cloned(),
        }
    }

    /// The setting `key`, or `default` when the tenant does not set it.
    pub fn setting_or(&self, key: &str, default: &str) -> String {
        self.setting(key).unwrap_or_else(|| default.to_owned())
    }

    /// Writes a line to the host's log (tagged there with tenant and event id).
    pub fn log(&self, level: Level, message: &str) {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Component => crate::bindings::hookbox::okta_import::host::log(level, message),
            Backend::Fake { log, .. } => log.borrow_mut().push(LogLine {
                level,
                message: message.to_owned(),
            }),
        }
    }

    /// Logs at [`Level::Trace`].
    pub fn trace(&self, message: &str) {
        self.log(Level::Trace, message);
    }

    /// Logs at [`Level::Debug`].
    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message);
    }

    /// Logs at [`Level::Info`].
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// Logs at [`Level::Warn`].
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    /// Logs at [`Level::Error`].
    pub fn error(&self, message: &str) {
        self.log(Level::Error, message);
    }

    /// The lines logged so far through a [`Host::fake`]; always empty for the real host,
    /// whose log only the host can read.
    pub fn logs(&self) -> Vec<LogLine> {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Component => Vec::new(),
            Backend::Fake { log, .. } => log.borrow().clone(),
        }
    }
}

/// A setting, asked of the host once per instance: the WIT fixes settings
/// for an instance's lifetime, and a host call (with its string lowered into
/// the guest) costs more than a lookup here.
#[cfg(target_arch = "wasm32")]
fn component_setting(key: &str) -> Option<String> {
    thread_local! {
        // Few keys (a resolver reads a handful): a vector beats a map.
        static SETTINGS: RefCell<Vec<(String, Option<String>)>> = const { RefCell::new(Vec::new()) };
    }
    SETTINGS.with_borrow_mut(|settings| {
        if let Some((_, value)) = settings.iter().find(|(k, _)| k == key) {
            return value.clone();
        }
        crate::kept_across_calls(|| {
            let value = crate::bindings::hookbox::okta_import::host::config_get(key);
            settings.push((key.to_owned(), value.clone()));
            value
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_settings_and_log() {
        let host = Host::fake([("a", "1"), ("b", "2")]);
        assert_eq!(host.setting("a").as_deref(), Some("1"));
        assert_eq!(host.setting("missing"), None);
        assert_eq!(host.setting_or("missing", "d"), "d");
        assert_eq!(host.setting_or("b", "d"), "2");
        host.info("one");
        host.warn("two");
        assert_eq!(
            host.logs(),
            vec![
                LogLine {
                    level: Level::Info,
                    message: "one".into()
                },
                LogLine {
                    level: Level::Warn,
                    message: "two".into()
                },
            ]
        );
    }

    #[test]
    fn fake_without_settings() {
        let host = Host::fake(Vec::<(String, String)>::new());
        assert_eq!(host.setting("x"), None);
        assert!(host.logs().is_empty());
    }
}
