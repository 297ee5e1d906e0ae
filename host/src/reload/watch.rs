//! What triggers a reload besides the admin endpoint: `SIGHUP`, and (with
//! `server.watch`) files changing on disk.
//!
//! Watching follows three rules: directories are watched, not files (a
//! deploy usually renames a new file over the old one, which a watch on the
//! old file would not see); a burst of events is one reload, once the files
//! have been quiet for [`DEBOUNCE`]; and Kubernetes' `..data` swap counts as
//! a change to every watched file of its directory ([`is_watched`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::task::JoinHandle;

use super::Reloader;
use super::plan::absolute;

/// How long the watched files must stay quiet before a reload: a deploy that
/// copies several files (or writes one in several steps) triggers one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Reloads on every `SIGHUP` until the task is aborted.
#[cfg(unix)]
pub fn reload_on_sighup(reloader: Arc<Reloader>) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            reloader.reload().await;
        }
    }))
}

/// Watches the directories of the config file and of every plugin, smoke
/// request and secret file, and reloads once they have been quiet for
/// [`DEBOUNCE`], until the task is aborted.
pub fn watch(reloader: Arc<Reloader>) -> Result<JoinHandle<()>, notify::Error> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let filter = reloader.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !changes_content(&event.kind) {
            return;
        }
        let relevant = filter
            .watched
            .lock()
            .map(|w| event.paths.iter().any(|p| is_watched(&w, p)))
            .unwrap_or(true);
        if relevant {
            let _ = tx.send(());
        }
    })?;
    let mut dirs = BTreeSet::new();
    watch_dirs(&mut watcher, &reloader, &mut dirs);
    Ok(tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until no event came for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            tracing::info!("watched files changed: reloading");
            reloader.reload().await;
            watch_dirs(&mut watcher, &reloader, &mut dirs);
        }
    }))
}

/// Whether an event on `path` may change a watched file: the file itself, or
/// the `..data` link of its directory, which Kubernetes swaps to update every
/// file of a mounted Secret or ConfigMap at once (the files themselves are
/// links through it and see no event).
fn is_watched(watched: &BTreeSet<PathBuf>, path: &Path) -> bool {
    let path = absolute(path);
    if watched.contains(&path) {
        return true;
    }
    path.file_name().is_some_and(|n| n == "..data")
        && path
            .parent()
            .is_some_and(|dir| watched.iter().any(|f| f.parent() == Some(dir)))
}

/// Adds a watch on every directory of a watched file not watched yet.
fn watch_dirs(
    watcher: &mut notify::RecommendedWatcher,
    reloader: &Reloader,
    dirs: &mut BTreeSet<PathBuf>,
) {
    let wanted: Vec<PathBuf> = match reloader.watched.lock() {
        Ok(w) => w
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect(),
        Err(_) => return,
    };
    for dir in wanted {
        if dirs.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => {
                dirs.insert(dir);
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory"),
        }
    }
}

/// Events that may mean new content (reads, which a reload itself causes, do not).
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_watched_files_and_on_their_directory_s_kubernetes_link_count() {
        let dir = std::env::temp_dir().join("hookbox-watch-test");
        let secret = dir.join("acme-secret");
        let watched = BTreeSet::from([secret.clone(), PathBuf::from("/etc/hookbox/hookbox.toml")]);
        assert!(is_watched(&watched, &secret));
        // Kubernetes updates a mounted Secret by swapping `..data`.
        assert!(is_watched(&watched, &dir.join("..data")));
        // Other files, and `..data` links of directories without a watched file, do not.
        assert!(!is_watched(&watched, &dir.join("other")));
        assert!(!is_watched(&watched, &dir.join("..2026_11_23_12_00_00.1")));
        assert!(!is_watched(&watched, Path::new("/elsewhere/..data")));
        assert!(!is_watched(&watched, &dir.join("sub").join("..data")));
    }
}
