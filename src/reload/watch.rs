//! Noticing that the config file changed, however it was saved.
//!
//! Editors and tools save in different ways: writing in place (truncate and rewrite), or writing a temp
//! file and renaming it over the original (vim, `sed -i`, Ansible), which replaces the inode a file watch
//! would be attached to. So the *directory* is watched and events are filtered by file name. When the
//! config is a symlink (`/etc/hookrelay/relay.toml` pointing into a versioned directory), the link's
//! directory and the target's directory are both watched, and the target is looked up again after every
//! change so that re-pointing the link moves the watch along.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tracing::{debug, warn};

pub struct ConfigWatcher {
    watcher: RecommendedWatcher,
    path: PathBuf,
    /// Directories currently watched.
    directories: HashSet<PathBuf>,
    /// File names that count as "the config" in those directories.
    names: Arc<Mutex<HashSet<OsString>>>,
}

impl ConfigWatcher {
    /// Watches `path`; `changed` is called (from the watcher's thread) for every relevant event.
    pub fn start(path: &Path, changed: impl Fn() + Send + 'static) -> notify::Result<ConfigWatcher> {
        let names: Arc<Mutex<HashSet<OsString>>> = Arc::default();
        let wanted = Arc::clone(&names);
        let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if is_relevant(&event, &wanted.lock().unwrap()) => changed(),
            Ok(_) => {}
            Err(error) => warn!(%error, "The config file watcher reported an error."),
        })?;
        let mut watcher =
            ConfigWatcher { watcher, path: path.to_path_buf(), directories: HashSet::new(), names: Arc::clone(&names) };
        watcher.refresh()?;
        Ok(watcher)
    }

    /// Watches the directories of the config path and of its symlink target, as they are now.
    pub fn refresh(&mut self) -> notify::Result<()> {
        let mut paths = vec![self.path.clone()];
        if let Ok(target) = std::fs::canonicalize(&self.path) {
            if target != self.path {
                paths.push(target);
            }
        }
        let directories: HashSet<PathBuf> = paths.iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        *self.names.lock().unwrap() = paths.iter().filter_map(|p| p.file_name().map(OsString::from)).collect();
        for gone in self.directories.difference(&directories) {
            let _ = self.watcher.unwatch(gone);
        }
        for directory in directories.difference(&self.directories) {
            debug!(directory = %directory.display(), "Watching for config changes.");
            self.watcher.watch(directory, RecursiveMode::NonRecursive)?;
        }
        self.directories = directories;
        Ok(())
    }
}

/// An event that may have changed the config: anything but reads, on a path with one of the config's names.
fn is_relevant(event: &Event, names: &HashSet<OsString>) -> bool {
    let read_only = matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write));
    !read_only && event.paths.iter().any(|path| path.file_name().is_some_and(|name| names.contains(name)))
}
