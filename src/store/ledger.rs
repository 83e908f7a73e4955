//! The ledger: a lower bound of the delivery records the store has made durable, kept outside sled in a
//! small fsynced file (`state_dir/ledger`), so that a truncated, damaged or replaced database is noticed
//! at start instead of opening silently with deliveries missing (SPEC §7).
//!
//! The bound must hold on disk at every moment, whatever crashes: so a removal (purge, quarantine) lowers
//! the file *before* sled may write it, and new deliveries raise it only *after* their round is durable,
//! and lazily: at the first commit round a second or more after the last write. A crash loses the raises
//! not yet written, and a failed write of a raise is tried again at a later round; both only weaken the
//! check until the next start (which takes what it finds as the new bound), never make it cry wolf.
//! Events are not counted: every delivery belongs to an event, and the start-up scan already reads every
//! delivery (counting events would mean reading every event too).

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

    /// `n` delivery records are about to be removed; [`Ledger::write_lowered`] must follow before they are.
    pub fn lower(&mut self, n: u64) {
        self.count = self.count.saturating_sub(n);
    }

    /// Writes the file if it claims more than the bound (after [`Ledger::lower`]); may be called again
    /// after a failure.
    pub fn write_lowered(&mut self) -> io::Result<()> {
        if self.written > self.count {
            self.write()?;
        }
        Ok(())
    }

    /// `n` new delivery records are durable; the file catches up at a round [`RAISE_EVERY`] after its
    /// last write. A write that fails is only logged: the bound on disk is still a bound.
    pub fn raise(&mut self, n: u64) {
        self.count += n;
        if self.count > self.written && self.written_at.elapsed() >= RAISE_EVERY {
            if let Err(error) = self.write() {
                self.written_at = Instant::now();
                tracing::warn!(%error, "Cannot write the store's ledger; trying again in a second.");
            }
        }
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
        ledger.lower(3);
        ledger.write_lowered().unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Some(7), "lowered on disk at once");
        ledger.raise(5);
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Some(7), "raises are lazy");
        ledger.flush().unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Some(12));
        std::fs::write(dir.path().join("ledger"), "garbage").unwrap();
        assert!(Ledger::open(dir.path()).is_err());
    }
}
