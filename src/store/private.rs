//! The state directory is private to the relay (SPEC §8): created `0700`, and every file in it `0600`,
//! whatever the umask the relay was started with. Outside systemd (a shell's umask is usually 0022) sled
//! would otherwise make `db` readable by every local user, and with it every payload of the retention
//! period.
//!
//! The process umask is set to 0077 before the store opens, so that every file sled creates later (new
//! segments, snapshots, blobs) is `0600` from its first byte; files a relay made before this existed are
//! tightened once at open.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use tracing::{info, warn};

/// Permission bits of the relay's files and directories that give anyone but its user access.
const GROUP_AND_OTHER: u32 = 0o077;

/// Makes every file and directory the process creates from now on private to its user. The unix socket
/// is given `socket_mode` explicitly after it is bound, and a directory made for it its own mode
/// ([`crate::ingest::bind_unix`]), so neither is affected.
pub fn keep_new_files_private() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe { libc::umask(GROUP_AND_OTHER as libc::mode_t) };
}

/// Creates `dir` (and missing parents) `0700`. A directory that is already there is the operator's (or
/// systemd's `StateDirectory=`): it is left as it is, with a warning when others may enter it.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode();
            if mode & GROUP_AND_OTHER != 0 {
                warn!(
                    state_dir = %dir.display(),
                    mode = format!("{:04o}", mode & 0o7777),
                    "The state directory gives others than the relay's user access; its files are the relay's \
                     alone, but consider `chmod 0700` on it."
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)
        }
        Err(error) => Err(error),
    }
}

/// Takes group and other access from the files the relay keeps in `dir` (sled's files and ours), in case
/// an earlier start left them open.
pub fn tighten(dir: &Path) -> io::Result<()> {
    let mut tightened = 0;
    for sub in [dir.to_path_buf(), dir.join("blobs")] {
        let entries = match std::fs::read_dir(&sub) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let metadata = entry.metadata()?;
            let mode = metadata.permissions().mode();
            let private = if metadata.is_dir() { 0o700 } else { 0o600 };
            if mode & GROUP_AND_OTHER != 0 && (metadata.is_file() || entry.file_name() == "blobs") {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & private))?;
                tightened += 1;
            }
        }
    }
    if tightened > 0 {
        info!(state_dir = %dir.display(), files = tightened, "Group and other access taken from the store's files.");
    }
    Ok(())
}
