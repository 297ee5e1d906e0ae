//! Keeping the cache under `[engine] cache_max_size`: the least recently used
//! `.cwasm` files go first (a hit refreshes its file's modification time),
//! and temporary files of writers that crashed go once older than
//! [`STALE_TMP`]. Only this uid's files with hookbox's names are touched, and
//! deleting a file never affects a loaded plugin (its code is in memory).

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{Cache, STALE_TMP};

impl Cache {
    /// Deletes the least recently used cache files until the rest fit in
    /// `max_size`, and temporary files older than [`STALE_TMP`]. Only this
    /// uid's files with hookbox's names are touched; errors are skipped (a
    /// file another hookbox process deleted first, say).
    pub(super) fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let (Ok(m), Some(name)) = (
                entry.metadata(),
                entry.file_name().to_str().map(str::to_owned),
            ) else {
                continue;
            };
            if !m.file_type().is_file() || m.uid() != self.uid {
                continue;
            }
            let modified = m.modified().unwrap_or(now);
            if name.starts_with('.') && name.ends_with(".tmp") {
                if now
                    .duration_since(modified)
                    .is_ok_and(|age| age > STALE_TMP)
                {
                    let _ = fs::remove_file(entry.path());
                }
            } else if name.ends_with(".cwasm") {
                files.push((modified, m.len(), entry.path()));
            }
        }
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_size {
            return;
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_size {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
                self.pruned.fetch_add(1, Ordering::Relaxed);
                tracing::info!(file = %path.display(), "precompiled cache file pruned (least recently used)");
            }
        }
    }
}
