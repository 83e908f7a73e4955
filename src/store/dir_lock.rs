//! One relay per state directory. sled locks `db` too, but its error has lost the cause's kind
//! ("could not acquire lock on ...: Os { code: 11, kind: WouldBlock, ... }") and comes after the store
//! has already written its format file. This lock is taken first, on a file of its own, so that a second
//! relay on the same `state_dir` changes nothing and can say in words what is wrong.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// The lock file's name in the state directory. It holds nothing; the lock is the kernel's (`flock`),
/// released when the process ends, however it ends.
pub const LOCK_FILE: &str = "lock";

/// Held while the store is open; dropping it releases the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Locks `dir` for this process, without waiting: `WouldBlock` when another process holds it (almost
/// always a second relay).
pub fn lock(dir: &Path) -> Result<DirLock, TryLockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(TryLockError::Error)?;
    file.try_lock()?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        assert!(matches!(lock(dir.path()), Err(TryLockError::WouldBlock)));
        drop(first);
        assert!(lock(dir.path()).is_ok());
    }
}
