//! Which store keys have sealed records in this store: `state_dir/sealing-keys`, one key id per line.
//!
//! A key is added before it seals its first record, and removed once a start finds no record sealed with
//! it. So a start only has to look through the events when a key in this file is no longer listed in
//! `encryption_key` (to say how many records wait for it, SPEC §8); the common start, with every key
//! listed, reads nothing but this file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::sealing::KeyId;

const FILE: &str = "sealing-keys";

/// The keys that have sealed records here (as far as the last start knew).
pub fn read(dir: &Path) -> io::Result<BTreeSet<KeyId>> {
    let text = match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(error) => return Err(error),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            KeyId::parse(line.trim()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{} holds a line that is not a key id", FILE))
            })
        })
        .collect()
}

/// Replaces the file with `keys`, durably (written, fsynced, renamed, directory fsynced).
pub fn write(dir: &Path, keys: &BTreeSet<KeyId>) -> io::Result<()> {
    let temporary = dir.join(format!("{FILE}.new"));
    let mut file = File::create(&temporary)?;
    for key in keys {
        writeln!(file, "{key}")?;
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
    fn keys_round_trip_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        let keys: BTreeSet<KeyId> = [StoreKey::new(&[1; 32]).id(), StoreKey::new(&[2; 32]).id()].into();
        write(dir.path(), &keys).unwrap();
        assert_eq!(read(dir.path()).unwrap(), keys);
        std::fs::write(dir.path().join(FILE), "not a key\n").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
