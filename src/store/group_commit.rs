//! Durability for many writers at the cost of one flush: the group-commit thread.
//!
//! sled's `flush_async` deadlocks when several tasks call it at once (sled issues 1241/1357), and its
//! `flush` ends in `sync_file_range`, which does not reach the disk's cache or persist file metadata
//! (sled issue 1452); blob files for large values are never synced by sled at all. So one thread owns
//! durability: it takes every request queued so far, flushes once, `fdatasync`s the database file and any
//! new blob files, and then answers them all. Requests arriving during a flush wait for the next round,
//! whose flush covers their writes.
//!
//! Requests may carry writes (accepted events, attempt results): the thread applies a round's writes in a
//! few sled batches (each request's writes whole in one) before the flush. A batch per round instead of
//! one per request spares sled's per-batch cost (a global write lock and a batch marker in its log) and
//! keeps ingest handlers and delivery workers from queueing on each other's inserts. Requests are applied
//! and answered in the order they were queued.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

type Outcome = Result<(), Arc<io::Error>>;

/// See [`Syncer::apply`].
const BATCH_BYTES: usize = 1 << 20;

/// Key-value pairs to insert, already encoded.
pub type Writes = Vec<(Vec<u8>, Vec<u8>)>;

/// One request: writes to apply (possibly none) and where to say that they, and everything written
/// before, are durable.
struct Request {
    writes: Writes,
    done: oneshot::Sender<Outcome>,
}

/// Resolves when a submitted request's round is durable.
pub struct Ticket(oneshot::Receiver<Outcome>);

impl Ticket {
    /// Awaits the outcome; call it once. Taking `&mut self` lets a caller whose wait is cancelled hand
    /// the ticket on to someone else.
    pub async fn wait(&mut self) -> Outcome {
        (&mut self.0).await.map_err(|_| stopped())?
    }
}

fn stopped() -> Arc<io::Error> {
    Arc::new(io::Error::other("the store's commit thread has stopped"))
}

/// A handle to the flusher thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Request>,
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
        let (queue, requests) = mpsc::channel::<Request>();
        std::thread::Builder::new().name("hookrelay-commit".into()).spawn(move || {
            while let Ok(first) = requests.recv() {
                let mut round = vec![first];
                round.extend(requests.try_iter());
                let started = Instant::now();
                let result = syncer.apply(&mut round).and_then(|()| syncer.make_durable()).map_err(Arc::new);
                if result.is_err() {
                    broken.cancel();
                }
                if let Some(observe) = &observer {
                    observe(started.elapsed());
                }
                for request in round {
                    let _ = request.done.send(result.clone());
                }
            }
        })?;
        Ok(GroupCommit { queue })
    }

    /// Queues `writes` for the next round; the ticket resolves once they, and everything written before
    /// this call, are on disk. Requests are applied in the order of their `submit` calls.
    pub fn submit(&self, writes: Writes) -> Result<Ticket, Arc<io::Error>> {
        let (done, ticket) = oneshot::channel();
        self.queue.send(Request { writes, done }).map_err(|_| stopped())?;
        Ok(Ticket(ticket))
    }

    /// Resolves once everything written before the call is on disk.
    pub async fn commit(&self) -> Outcome {
        self.submit(Vec::new())?.wait().await
    }
}

struct Syncer {
    db: sled::Db,
    db_file: File,
    blobs_dir: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl Syncer {
    /// Applies a round's writes in sled batches of about [`BATCH_BYTES`]: large enough to spread sled's
    /// per-batch cost, small enough that a round of big requests is not copied all at once. A request's
    /// writes always go in one batch: an event and its deliveries are atomic.
    fn apply(&self, round: &mut [Request]) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        let mut bytes = 0;
        for request in round {
            for (key, value) in request.writes.drain(..) {
                bytes += key.len() + value.len();
                batch.insert(key, value);
            }
            if bytes >= BATCH_BYTES {
                self.db.apply_batch(std::mem::take(&mut batch)).map_err(io::Error::other)?;
                bytes = 0;
            }
        }
        self.db.apply_batch(batch).map_err(io::Error::other)
    }

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
