//! The precompiled-component cache (`[engine] cache_dir`): a restart or a
//! reload loads machine code hookbox compiled earlier instead of compiling
//! every plugin again.
//!
//! One file per (plugin content, engine) pair:
//! `<sha256 of the .wasm, hex>-<engine compatibility hash, hex>.cwasm`, where
//! the compatibility hash is `Engine::precompile_compatibility_hash()` (target,
//! compiler flags, tunables, features, wasmtime version) fed through SHA-256,
//! so it is the same on every run of the same binary with the same `[engine]`
//! and different as soon as anything that shapes the code differs.
//!
//! A file is a header then the payload wasmtime produced; its layout is
//! [`format`]'s.
//!
//! `Component::deserialize` trusts its input completely (it maps the bytes as
//! executable code), so a file reaches it only when:
//! - the directory is owned by hookbox's uid and writable by no one else (checked
//!   on every load: a refused directory is neither read nor written);
//! - the file is a regular file owned by that uid, writable by no one else;
//! - the header is intact, names the same source digest, and the payload's
//!   length and SHA-256 match (a torn write, bit rot, a truncated copy or a
//!   file of another program are rejected here).
//!
//! Anything else is a warning and a fresh compile, whose result replaces the
//! file (written beside it, then renamed over it, so a reader never sees half
//! a file). The checksum is not a signature: it detects corruption, and the
//! ownership checks keep out anyone but this uid.
//!
//! The cache is bounded (`[engine] cache_max_size`): a hit sets its file's
//! modification time, and when opening the cache and after each write the
//! least recently used `.cwasm` files are deleted until the rest fit. Every
//! plugin version ever deployed, and every engine configuration or hookbox
//! build, leaves a file, so without this the directory would only grow.
//! Deleting a file never affects a loaded plugin (its code is in memory).
//! Temporary files older than [`STALE_TMP`] (a writer that crashed) go too.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

mod format;
mod prune;

pub use format::{HEADER_LEN, HeaderError, MAGIC, VERSION, decode, encode};

use super::{PluginError, compile, hex};

/// A temporary file this old belongs to a writer that is gone.
pub const STALE_TMP: Duration = Duration::from_secs(3600);

/// Why the cache directory cannot be used at all (the runtime then compiles
/// every plugin, with a warning).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created.
    #[error("creating cache_dir {}: {error}", dir.display())]
    Create {
        /// `[engine] cache_dir`.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A probe file could not be written in it.
    #[error("cache_dir {} is not writable: {error}", dir.display())]
    NotWritable {
        /// `[engine] cache_dir`.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Why a cache file or directory is not trusted (logged; hookbox compiles instead).
#[derive(Debug, thiserror::Error)]
enum Distrust {
    #[error("cannot {action} it: {error}")]
    Io {
        action: &'static str,
        error: std::io::Error,
    },
    #[error("not a regular file")]
    NotAFile,
    #[error("owned by uid {owner}, hookbox runs as {uid}")]
    Owner { owner: u32, uid: u32 },
    #[error("writable by group or others (mode {0:o})")]
    Mode(u32),
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("wasmtime refused it: {0:#}")]
    Refused(wasmtime::Error),
}

impl Distrust {
    fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> Distrust {
        move |error| Distrust::Io { action, error }
    }
}

/// Counters of the cache's use since the runtime started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Plugins loaded from a cache file (not compiled).
    pub hits: u64,
    /// Plugins compiled because no usable file existed (absent, or rejected).
    pub misses: u64,
    /// Files present but rejected (header, checksum, owner, mode, or wasmtime refused them).
    pub rejected: u64,
    /// Loads for which the directory itself was refused (owner or mode): not read, not written.
    pub refused: u64,
    /// Files written.
    pub written: u64,
    /// Files deleted to keep the cache under its size limit.
    pub pruned: u64,
}

/// An open cache directory.
pub(crate) struct Cache {
    dir: PathBuf,
    /// The uid hookbox runs as (the owner of a file it created in `dir`).
    uid: u32,
    /// Hex of the engine's compatibility hash: the second half of every file name.
    engine_key: String,
    /// `[engine] cache_max_size`.
    max_size: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    refused: AtomicU64,
    written: AtomicU64,
    pruned: AtomicU64,
    /// The refused-directory warning is logged once, not once per plugin.
    warned_dir: AtomicBool,
}

impl Cache {
    /// Creates `dir` if needed (mode 0700), learns hookbox's uid from a probe
    /// file in it, and prunes it to `max_size` bytes.
    pub(crate) fn open(dir: &Path, engine: &Engine, max_size: u64) -> Result<Cache, OpenError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| OpenError::Create {
                dir: dir.to_owned(),
                error,
            })?;
        let probe = dir.join(format!(".hookbox-probe-{}-{}", std::process::id(), nonce()));
        let uid = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .and_then(|f| f.metadata())
            .map(|m| m.uid())
            .map_err(|error| OpenError::NotWritable {
                dir: dir.to_owned(),
                error,
            });
        let _ = fs::remove_file(&probe);
        let cache = Cache {
            dir: dir.to_owned(),
            uid: uid?,
            engine_key: engine_key(engine),
            max_size,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            written: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            warned_dir: AtomicBool::new(false),
        };
        if cache.check_dir().is_ok() {
            cache.prune();
        }
        Ok(cache)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            pruned: self.pruned.load(Ordering::Relaxed),
        }
    }

    /// The cache file of the `.wasm` whose SHA-256, hex, is `source`.
    pub(crate) fn path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{source}-{}.cwasm", self.engine_key))
    }

    /// The component for `wasm` (whose SHA-256 is `source`): from the cache when a
    /// trustworthy file is there, else compiled (and the file written). The flag
    /// says whether it came from the cache. Blocking.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        source: &[u8; 32],
        wasm: &[u8],
    ) -> Result<(Component, bool), PluginError> {
        let path = self.path(&hex(source));
        if let Err(reason) = self.check_dir() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            if !self.warned_dir.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    dir = %self.dir.display(),
                    %reason,
                    "precompiled cache refused: compiling instead, and not writing to it"
                );
            }
            return Ok((compile(engine, wasm)?, false));
        }
        match self.read(&path, source) {
            Ok(None) => {}
            Ok(Some(payload)) => match deserialize_verified(engine, &payload) {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    // Recently used: pruning takes the oldest modification times first.
                    let _ = fs::File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
                    return Ok((component, true));
                }
                Err(e) => self.reject(&path, &Distrust::Refused(e)),
            },
            Err(reason) => self.reject(&path, &reason),
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let component = compile(engine, wasm)?;
        let written = match component.serialize() {
            Ok(payload) => self
                .write(&path, &encode(source, &payload))
                .map_err(|e| format!("writing {}: {e}", path.display())),
            Err(e) => Err(format!("{e:#}")),
        };
        match written {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                self.prune();
            }
            Err(e) => tracing::warn!(
                file = %path.display(),
                error = %e,
                "cannot write the precompiled cache file"
            ),
        }
        Ok((component, false))
    }

    fn reject(&self, path: &Path, reason: &Distrust) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            file = %path.display(),
            %reason,
            "precompiled cache file rejected: compiling, and rewriting it"
        );
    }

    /// The directory must be ours and writable by no one else.
    fn check_dir(&self) -> Result<(), Distrust> {
        let m = fs::metadata(&self.dir).map_err(Distrust::io("stat"))?;
        trusted(&m, self.uid)
    }

    /// The verified payload; `Ok(None)` when there is no file.
    fn read(&self, path: &Path, source: &[u8; 32]) -> Result<Option<Vec<u8>>, Distrust> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Distrust::io("stat")(e)),
            Ok(m) if !m.file_type().is_file() => return Err(Distrust::NotAFile),
            Ok(_) => {}
        }
        let mut file = fs::File::open(path).map_err(Distrust::io("open"))?;
        // Checked on the open file, so what is read is what was checked.
        let m = file.metadata().map_err(Distrust::io("stat"))?;
        trusted(&m, self.uid)?;
        let mut bytes = Vec::with_capacity(usize::try_from(m.len()).unwrap_or(0));
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(Distrust::io("read"))?;
        let payload = decode(&bytes, source)?;
        Ok(Some(payload.to_vec()))
    }

    /// Writes `bytes` to a new file beside `path`, then renames it over `path`.
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(
            ".{}.{}-{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("cwasm"),
            std::process::id(),
            nonce()
        ));
        let result = (|| -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            // A crash before the data reaches the disk leaves a file the checksum rejects.
            drop(f);
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Owned by `uid` and not writable by group or others.
fn trusted(m: &fs::Metadata, uid: u32) -> Result<(), Distrust> {
    if m.uid() != uid {
        return Err(Distrust::Owner {
            owner: m.uid(),
            uid,
        });
    }
    if m.mode() & 0o022 != 0 {
        return Err(Distrust::Mode(m.mode() & 0o7777));
    }
    Ok(())
}

/// Loads precompiled code that [`Cache::read`] verified.
#[allow(unsafe_code)]
fn deserialize_verified(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes produced by wasmtime's own
    // serialization for a compatible engine, because it maps them as executable
    // code without validating them. Only `Cache::read`'s output reaches this
    // call, and it returns bytes only from a regular file owned by hookbox's uid
    // and writable by no one else, in a directory owned by that uid and writable
    // by no one else (so only this uid, i.e. hookbox, can have written it), whose
    // header names this plugin's source digest and whose payload matches the
    // length and SHA-256 recorded when hookbox wrote it from
    // `Component::serialize` (so it is not a torn, truncated or rotted copy).
    // The file name carries the engine's compatibility hash, and wasmtime itself
    // rejects a payload from another engine configuration or version.
    unsafe { Component::deserialize(engine, payload) }
}

/// Hex of SHA-256 over the engine's compatibility hash (its `Hash` impl fed to a
/// SHA-256 hasher: stable across runs, unlike a randomly keyed hasher).
fn engine_key(engine: &Engine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex(&h.0.finalize()[..16])
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
    }
}

/// A per-process counter for temporary file names.
fn nonce() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn engine_key_is_stable_and_follows_the_engine_config() {
        let a = Engine::default();
        let b = Engine::default();
        assert_eq!(engine_key(&a), engine_key(&b));
        assert_eq!(engine_key(&a).len(), 32);
        let mut c = wasmtime::Config::new();
        c.consume_fuel(true);
        let fueled = Engine::new(&c).unwrap();
        assert_ne!(engine_key(&a), engine_key(&fueled));
    }
}
