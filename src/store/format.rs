//! The store's format version, kept outside sled in `state_dir/format` so that it is read before sled
//! opens the database: a store written by a newer hookrelay is refused without being touched (sled's own
//! recovery at open may rewrite its files), and a store written by an older one is upgraded in place.
//!
//! | format | what it added | upgrade from the one before |
//! |---|---|---|
//! | 1 | (stores made before this file existed have no `format` file and are format 1) | |
//! | 2 | the status index of failed and cancelled deliveries ([`super::status_index`]) | [`build_status_index`] |
//! | 3 | payloads sealed at rest ([`super::sealing`]): an event's `data` may be in `sealed`, an attempt's body in `sealed_response_body` (an older relay would send `null`) | nothing to rewrite |
//! | 4 | flow control (SPEC §6c): delivery records of layout 2 (with `order_key`; an older relay would quarantine them), pause records under `p` | nothing to rewrite: layout 1 still reads |
//! | 5 | a delivery record carries its latest attempt unless that one is long (layout 3; an older relay would quarantine it), so recording a first attempt is one write | nothing to rewrite: layouts 1 and 2 still read, their attempts all under `a` keys |
//!
//! Upgrades run at open, before the commit thread starts, so they write sled directly, then flush; the
//! file is rewritten (fsynced, then renamed) once the last one is durable. An upgrade interrupted by a
//! crash runs again at the next start: each must be safe to repeat.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use tracing::info;

use super::records::DeliveryStatus;
use super::{keys, state_scan, StoreError};

/// The format this hookrelay writes.
pub const CURRENT: u32 = 5;

const FILE: &str = "format";
const HEADER: &str = "hookrelay-store-format";

/// An upgrade: the format it makes, and how.
struct Upgrade {
    to: u32,
    what: &'static str,
    run: fn(&sled::Db) -> Result<(), StoreError>,
}

const UPGRADES: [Upgrade; 4] = [
    Upgrade { to: 2, what: "a status index of failed and cancelled deliveries", run: build_status_index },
    Upgrade { to: 3, what: "payloads sealed at rest when encryption_key is set", run: |_| Ok(()) },
    Upgrade { to: 4, what: "pause records and per-key order", run: |_| Ok(()) },
    Upgrade { to: 5, what: "each delivery record carries its latest attempt when short", run: |_| Ok(()) },
];

/// The format of the store in `dir` as found before it opens: `None` for a new store (no database yet).
/// Refuses a newer format than [`CURRENT`], or a `format` file that is not one, touching nothing.
pub fn check(dir: &Path) -> Result<Option<u32>, StoreError> {
    let refuse = |message: String| StoreError::Open {
        path: dir.display().to_string(),
        source: io::Error::new(io::ErrorKind::InvalidData, message),
    };
    let path = dir.join(FILE);
    let found = match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).ok_or_else(|| refuse(format!("{} is not a hookrelay format file", path.display())))?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let has_database = dir.join("conf").exists() || dir.join("db").exists();
            return Ok(has_database.then_some(1));
        }
        Err(error) => return Err(StoreError::Open { path: dir.display().to_string(), source: error }),
    };
    if found > CURRENT {
        return Err(refuse(format!(
            "the store is format {found}, written by a newer hookrelay; this hookrelay ({}) reads formats up to \
             {CURRENT}. Run the newer hookrelay again, or restore a backup made by this one; nothing was changed",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(Some(found))
}

/// Records [`CURRENT`] for a new store, before sled creates its files: a crash between the two must not
/// leave a database that looks older than it is.
pub fn record_new(dir: &Path) -> Result<(), StoreError> {
    write(dir).map_err(|source| StoreError::Open { path: dir.display().to_string(), source })
}

/// Brings the opened store of format `from` to [`CURRENT`] and records it.
pub fn upgrade(db: &sled::Db, dir: &Path, from: u32) -> Result<(), StoreError> {
    if from == CURRENT {
        return Ok(());
    }
    for upgrade in UPGRADES.iter().filter(|upgrade| upgrade.to > from) {
        (upgrade.run)(db)?;
        db.flush()?;
        info!(from, to = upgrade.to, added = upgrade.what, "Store upgraded to a newer format.");
    }
    record_new(dir)
}

fn write(dir: &Path) -> io::Result<()> {
    let (path, temp) = (dir.join(FILE), dir.join("format.new"));
    let mut file = File::create(&temp)?;
    writeln!(file, "{HEADER} {CURRENT}")?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    File::open(dir)?.sync_all()
}

fn parse(text: &str) -> Option<u32> {
    text.trim_end().strip_prefix(HEADER)?.strip_prefix(' ')?.parse().ok()
}

/// Format 2: an index entry per failed and per cancelled delivery. Damaged records are left for
/// recovery to quarantine.
fn build_status_index(db: &sled::Db) -> Result<(), StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let (found, _damaged) = state_scan::scan(db, threads, Vec::new, |entries, id, state| {
        if matches!(state.status, DeliveryStatus::Failed | DeliveryStatus::Cancelled) {
            entries.extend(keys::status_entry(state.status, id));
        }
    })?;
    for entries in found {
        for chunk in entries.chunks(4096) {
            let mut batch = sled::Batch::default();
            for entry in chunk {
                batch.insert(entry.as_slice(), &[]);
            }
            db.apply_batch(batch)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_junk_is_not_a_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path()).unwrap(), None, "a new store");
        std::fs::write(dir.path().join("conf"), "").unwrap();
        assert_eq!(check(dir.path()).unwrap(), Some(1), "a database without the file");
        write(dir.path()).unwrap();
        assert_eq!(check(dir.path()).unwrap(), Some(CURRENT));
        for junk in ["", "2", "hookrelay-store-format two", "something else 2"] {
            std::fs::write(dir.path().join(FILE), junk).unwrap();
            assert!(check(dir.path()).is_err(), "{junk:?}");
        }
    }
}
