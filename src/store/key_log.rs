//! What this store's records may be sealed with: `state_dir/sealing-keys`, one key id per line, and the
//! line `records in the clear` while records written without a key may remain.
//!
//! A key is added before it seals its first record, and dropped once a start finds no record sealed with
//! it; `records in the clear` is set by every start without a key (and holds for stores older than the
//! file), and cleared once a start with a key has sealed them ([`super::seal_existing`]). So a start only
//! looks through the records when it has something to do or report: records in the clear to seal, or a
//! key other than the sealing one (a rotation under way, or a key no longer listed, SPEC §8). The common
//! start reads nothing but this file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::sealing::KeyId;

const FILE: &str = "sealing-keys";
const CLEAR: &str = "records in the clear";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLog {
    /// Keys that may have sealed records here.
    pub keys: BTreeSet<KeyId>,
    /// Records written without a key may remain.
    pub clear: bool,
}

/// The log of the store in `dir`; `new_store` says the store has no records yet (without the file, an
/// older store may hold records in the clear).
pub fn read(dir: &Path, new_store: bool) -> io::Result<KeyLog> {
    let text = match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(KeyLog { keys: BTreeSet::new(), clear: !new_store })
        }
        Err(error) => return Err(error),
    };
    let mut log = KeyLog { keys: BTreeSet::new(), clear: false };
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if line == CLEAR {
            log.clear = true;
        } else {
            let key = KeyId::parse(line).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{FILE} holds a line that is not a key id"))
            })?;
            log.keys.insert(key);
        }
    }
    Ok(log)
}

/// Replaces the file with `log`, durably (written, fsynced, renamed, directory fsynced).
pub fn write(dir: &Path, log: &KeyLog) -> io::Result<()> {
    let temporary = dir.join(format!("{FILE}.new"));
    let mut file = File::create(&temporary)?;
    for key in &log.keys {
        writeln!(file, "{key}")?;
    }
    if log.clear {
        writeln!(file, "{CLEAR}")?;
    }
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(FILE))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreKey;

    #[test]
    fn the_log_round_trips_and_a_missing_file_depends_on_the_store() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), true).unwrap(), KeyLog { keys: BTreeSet::new(), clear: false });
        assert!(read(dir.path(), false).unwrap().clear, "an older store may hold records in the clear");
        let keys: BTreeSet<KeyId> = [StoreKey::new(&[1; 32]).id(), StoreKey::new(&[2; 32]).id()].into();
        for clear in [true, false] {
            let log = KeyLog { keys: keys.clone(), clear };
            write(dir.path(), &log).unwrap();
            assert_eq!(read(dir.path(), false).unwrap(), log);
        }
        std::fs::write(dir.path().join(FILE), "not a key\n").unwrap();
        assert!(read(dir.path(), false).is_err());
    }
}
