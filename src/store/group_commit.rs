//! Durability for many writers at the cost of one flush: the group-commit thread.
//!
//! sled's `flush_async` deadlocks when several tasks call it at once (sled issues 1241/1357), and its
//! `flush` ends in `sync_file_range`, which does not reach the disk's cache or persist file metadata
//! (sled issue 1452); blob files for large values are never synced by sled at all. So one thread owns
//! durability: it takes every waiter queued so far, flushes once, `fdatasync`s the database file and any
//! new blob files, and then wakes them all. Writers arriving during a flush wait for the next round, whose
//! flush covers their writes.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

type Waiter = oneshot::Sender<Result<(), Arc<io::Error>>>;

/// A handle to the flusher thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Waiter>,
}

/// Observes each flush's duration (for metrics).
pub type FlushObserver = Arc<dyn Fn(Duration) + Send + Sync>;

impl GroupCommit {
    /// `broken` is cancelled when a round fails (see [`super::Store::broken`]).
    pub fn start(
        db: sled::Db,
        dir: &Path,
        observer: Option<FlushObserver>,
        broken: CancellationToken,
    ) -> io::Result<GroupCommit> {
        let db_file = File::open(dir.join("db"))?;
        // The directory entries of the database files must survive power loss too.
        File::open(dir)?.sync_all()?;
        let mut syncer = Syncer { db, db_file, blobs_dir: dir.join("blobs"), synced_blobs: HashSet::new() };
        let (queue, waiters) = mpsc::channel::<Waiter>();
        std::thread::Builder::new().name("hookrelay-commit".into()).spawn(move || {
            while let Ok(first) = waiters.recv() {
                let mut round = vec![first];
                round.extend(waiters.try_iter());
                let started = Instant::now();
                let result = syncer.make_durable().map_err(Arc::new);
                if result.is_err() {
                    broken.cancel();
                }
                if let Some(observe) = &observer {
                    observe(started.elapsed());
                }
                for waiter in round {
                    let _ = waiter.send(result.clone());
                }
            }
        })?;
        Ok(GroupCommit { queue })
    }

    /// Resolves once everything written before the call is on disk.
    pub async fn commit(&self) -> Result<(), Arc<io::Error>> {
        let (waiter, done) = oneshot::channel();
        let stopped = || Arc::new(io::Error::other("the store's commit thread has stopped"));
        self.queue.send(waiter).map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

struct Syncer {
    db: sled::Db,
    db_file: File,
    blobs_dir: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl Syncer {
    fn make_durable(&mut self) -> io::Result<()> {
        self.db.flush().map_err(io::Error::other)?;
        self.db_file.sync_data()?;
        self.sync_new_blobs()
    }

    /// sled writes values over ~128 KiB to files of their own without syncing them.
    fn sync_new_blobs(&mut self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(self.blobs_dir.join(&name)) {
                    Ok(file) => file.sync_data()?,
                    // Removed by sled's garbage collection since the listing: nothing to make durable.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                synced_any = true;
            }
            present.insert(name);
        }
        if synced_any {
            File::open(&self.blobs_dir)?.sync_all()?;
        }
        self.synced_blobs = present;
        Ok(())
    }
}
