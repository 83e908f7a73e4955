//! The ledger: a lower bound of the delivery records the store has made durable, kept outside sled in a
//! small fsynced file (`state_dir/ledger`), so that a truncated, damaged or replaced database is noticed
//! at start instead of opening silently with deliveries missing (SPEC §7).
//!
//! The bound must hold on disk at every moment, whatever crashes: so a removal (purge, quarantine) lowers
//! the file *before* sled may write it, and new deliveries raise it only *after* their round is durable,
//! and lazily, at most once a second (a crash loses at most a second of raises, which only weakens the
//! check, never makes it cry wolf).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often at most the file is rewritten for raises.
const RAISE_EVERY: Duration = Duration::from_secs(1);

const HEADER: &str = "hookrelay-ledger 1";

pub struct Ledger {
    path: PathBuf,
    /// The bound now: delivery records durable (raised after each round), less those being removed.
    count: u64,
    /// What the file says.
    written: u64,
    written_at: Instant,
}

impl Ledger {
    /// Reads the ledger of the store in `dir`: `None` when there is none yet (a new store, or one made by
    /// a version without it).
    pub fn open(dir: &Path) -> io::Result<(Ledger, Option<u64>)> {
        let path = dir.join("ledger");
        let found = match std::fs::read_to_string(&path) {
            Ok(text) => Some(parse(&text).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a hookrelay ledger", path.display()))
            })?),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let count = found.unwrap_or(0);
        Ok((Ledger { path, count, written: count, written_at: Instant::now() }, found))
    }

    /// The bound now.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sets the bound to what the store was found to hold (at start, once checked), and writes it.
    pub fn reset(&mut self, count: u64) -> io::Result<()> {
        self.count = count;
        self.write()
    }

    /// `n` delivery records are about to be removed: the file is lowered first when it would otherwise
    /// claim more than will be left.
    pub fn lower(&mut self, n: u64) -> io::Result<()> {
        self.count = self.count.saturating_sub(n);
        if self.written > self.count {
            self.write()?;
        }
        Ok(())
    }

    /// `n` new delivery records are durable; the file catches up within [`RAISE_EVERY`].
    pub fn raise(&mut self, n: u64) -> io::Result<()> {
        self.count += n;
        if self.count > self.written && self.written_at.elapsed() >= RAISE_EVERY {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the bound now (at shutdown, so that the next start checks all of it).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.count != self.written {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> io::Result<()> {
        let temp = self.path.with_extension("new");
        let mut file = File::create(&temp)?;
        write!(file, "{HEADER}\ndeliveries {}\n", self.count)?;
        file.sync_all()?;
        std::fs::rename(&temp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.written = self.count;
        self.written_at = Instant::now();
        Ok(())
    }
}

fn parse(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    (lines.next()? == HEADER).then_some(())?;
    lines.next()?.strip_prefix("deliveries ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_never_claims_more_than_is_left_and_catches_up_on_raises() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, found) = Ledger::open(dir.path()).unwrap();
        assert_eq!(found, None);
        ledger.reset(10).unwrap();
        ledger.lower(3).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Some(7), "lowered on disk at once");
        ledger.raise(5).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Some(7), "raises are lazy");
        ledger.flush().unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Some(12));
        std::fs::write(dir.path().join("ledger"), "garbage").unwrap();
        assert!(Ledger::open(dir.path()).is_err());
    }
}
