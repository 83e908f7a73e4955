//! Durability for many writers at the cost of one flush: the group-commit thread.
//!
//! sled's `flush_async` deadlocks when several tasks call it at once (sled issues 1241/1357), and its
//! `flush` ends in `sync_file_range`, which does not reach the disk's cache or persist file metadata
//! (sled issue 1452); blob files for large values are never synced by sled at all. So one thread owns
//! durability: it takes every request queued so far, flushes once, `fdatasync`s the database file and any
//! new blob files, and then answers them all. Requests arriving during a flush wait for the next round,
//! whose flush covers their writes.
//!
//! Requests may carry writes, or a *transition*: a read-modify-write that runs on this thread, sees every
//! write queued before it (applied or not), and says what to write. The thread applies a round's writes in
//! a few sled batches (each request's writes whole in one) before the flush. A batch per round instead of
//! one per request spares sled's per-batch cost (a global write lock and a batch marker in its log) and
//! keeps ingest handlers and delivery workers from queueing on each other's inserts.
//!
//! A transition may be *unhurried* ([`GroupCommit::transition`]): an attempt's result, whose caller does
//! not wait on it (its slot goes on, see [`crate::scheduler`]). A round of only such requests that finds
//! the thread idle lingers up to [`LINGER`] for a request that is in a hurry (an accepted event, a
//! commit) and is made durable with it, unless a worker waits for its results ([`GroupCommit::hurry`]):
//! at a clinic's load an event's attempt result shares the next event's flush instead of paying one of
//! its own (sled's flush wakes its seven I/O threads, then the `fdatasync`).
//!
//! Requests are applied in the order they were queued, and once the round is durable (or has failed)
//! their completions run here, in the same order. So transitions are serialized with each other, and what
//! a completion does in memory (queue a delivery, count it) happens in the order of the durable writes,
//! whether or not the caller still waits: a caller that gives up its [`Ticket`] cancels nothing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::dir_lock::DirLock;
use super::keys::DELIVERY;
use super::ledger::Ledger;

type Outcome = Result<(), Arc<io::Error>>;

/// See [`Syncer::apply`].
const BATCH_BYTES: usize = 1 << 20;

/// How long a round of unhurried transitions waits for company (see the module doc): a few events' spacing
/// at a clinic's load, and short against anything that waits on such a result.
pub const LINGER: Duration = Duration::from_millis(10);

/// The longest linger [`GroupCommit::set_linger`] sets: longer ones are not a tuning but a stall, and a
/// deadline past what `Instant` can hold would panic.
pub const LONGEST_LINGER: Duration = Duration::from_secs(24 * 3600);

/// Key-value pairs to insert, already encoded.
pub type Writes = Vec<(Vec<u8>, Vec<u8>)>;

/// Runs once a request's round is durable (`Ok`) or has failed, on the commit thread.
pub type Completion = Box<dyn FnOnce(&Outcome) + Send>;

/// A read-modify-write run on the commit thread (see the module doc); returns what to do once durable.
pub type Transition = Box<dyn FnOnce(&mut Round<'_>) -> Completion + Send>;

/// One request: writes to apply (possibly none) and where to say that they, and everything written
/// before, are durable; or a transition.
enum Request {
    Writes { writes: Writes, done: oneshot::Sender<Outcome> },
    Transition { run: Transition, unhurried: bool },
}

impl Request {
    fn unhurried(&self) -> bool {
        matches!(self, Request::Transition { unhurried: true, .. })
    }
}

/// How the commit thread lingers (see the module doc), shared by the thread and its handles.
struct Pace {
    /// How long a round of answers waits for company: [`LINGER`] unless set otherwise.
    linger_us: AtomicU64,
    /// Someone waits for answers ([`GroupCommit::hurry`]): the next round that holds answers does not
    /// linger. Kept until such a round, so a hurry made before its answer is queued still counts.
    hurried: AtomicBool,
    /// The thread is lingering: a hurry must wake it with a request.
    lingering: AtomicBool,
    /// The thread waits for requests (for tests; written only when it goes idle, not every round).
    waiting: AtomicBool,
}

impl Pace {
    /// Whether a round that holds an answer may linger now; takes the hurry it answers.
    fn may_linger(&self) -> bool {
        self.lingering.store(true, Ordering::SeqCst);
        // After `lingering` is set: either this sees a hurry, or the hurry sees `lingering` and wakes us.
        let hurried = self.hurried.swap(false, Ordering::SeqCst);
        if hurried {
            self.lingering.store(false, Ordering::SeqCst);
        }
        !hurried
    }
}

/// The first request of the next round, and whether the thread had to wait for it (it was idle); `None`
/// once every handle is gone.
fn first_request(requests: &mpsc::Receiver<Request>, pace: &Pace) -> Option<(Request, bool)> {
    match requests.try_recv() {
        Ok(first) => Some((first, false)),
        Err(mpsc::TryRecvError::Disconnected) => None,
        Err(mpsc::TryRecvError::Empty) => {
            pace.waiting.store(true, Ordering::SeqCst);
            let first = requests.recv().ok();
            pace.waiting.store(false, Ordering::SeqCst);
            first.map(|first| (first, true))
        }
    }
}

/// The requests of the next round: every one queued by now and, if all of them are unhurried and the
/// thread was idle (`first` found it waiting), those that arrive within the linger until one is in a
/// hurry. A busy thread never lingers: requests that queue during a round are the next round's company
/// already, and a pause there would only stall the slots waiting for their results.
fn next_round(requests: &mpsc::Receiver<Request>, first: Request, was_idle: bool, pace: &Pace) -> Vec<Request> {
    let mut round = vec![first];
    round.extend(requests.try_iter());
    if !round.iter().any(Request::unhurried) {
        return round;
    }
    if !(was_idle && round.iter().all(Request::unhurried)) {
        // Answers go now anyway: a hurry for them is answered.
        pace.hurried.store(false, Ordering::SeqCst);
        return round;
    }
    let linger = Duration::from_micros(pace.linger_us.load(Ordering::SeqCst));
    if !linger.is_zero() && pace.may_linger() {
        let until = Instant::now() + linger;
        while let Ok(request) = requests.recv_timeout(until.saturating_duration_since(Instant::now())) {
            let hurried = !request.unhurried();
            round.push(request);
            if hurried {
                round.extend(requests.try_iter());
                break;
            }
        }
        // The hurry is answered first: one that comes between the two then still sees the thread lingering
        // and sends its wake-up (harmless), instead of being cleared unseen.
        pace.hurried.store(false, Ordering::SeqCst);
        pace.lingering.store(false, Ordering::SeqCst);
    }
    round
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
    pace: Arc<Pace>,
}

/// Observes each flush's duration (for metrics).
pub type FlushObserver = Arc<dyn Fn(Duration) + Send + Sync>;

impl GroupCommit {
    /// `broken` is cancelled when a round fails (see [`super::Store::broken`]).
    pub fn start(
        db: sled::Db,
        dir: &Path,
        ledger: Arc<Mutex<Ledger>>,
        observer: Option<FlushObserver>,
        broken: CancellationToken,
        dir_lock: Arc<DirLock>,
    ) -> io::Result<GroupCommit> {
        let db_file = File::open(dir.join("db"))?;
        // The directory entries of the database files must survive power loss too.
        File::open(dir)?.sync_all()?;
        let mut syncer = Syncer {
            db,
            db_file,
            blobs_dir: dir.join("blobs"),
            synced_blobs: HashSet::new(),
            panicked: false,
            ledger,
            _lock: dir_lock,
        };
        let (queue, requests) = mpsc::channel::<Request>();
        let pace = Arc::new(Pace {
            linger_us: AtomicU64::new(LINGER.as_micros() as u64),
            hurried: AtomicBool::new(false),
            lingering: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
        });
        let thread_pace = Arc::clone(&pace);
        std::thread::Builder::new().name("hookrelay-commit".into()).spawn(move || {
            while let Some((first, was_idle)) = first_request(&requests, &thread_pace) {
                let round = next_round(&requests, first, was_idle, &thread_pace);
                let started = Instant::now();
                let (applied, completions, created) = syncer.apply(round);
                let result = applied.and_then(|()| syncer.make_durable()).map_err(Arc::new);
                if result.is_err() {
                    broken.cancel();
                }
                if let Some(observe) = &observer {
                    observe(started.elapsed());
                }
                for complete in completions {
                    if !survived("A transition's follow-up", || complete(&result)) {
                        broken.cancel();
                    }
                }
                if syncer.panicked {
                    broken.cancel();
                }
                // After the answers: a rewrite of the ledger (once a second at most) need not delay them.
                if result.is_ok() {
                    lock(&syncer.ledger).raise(created);
                }
            }
        })?;
        Ok(GroupCommit { queue, pace })
    }

    /// Queues `writes` for the next round; the ticket resolves once they, and everything written before
    /// this call, are on disk. Requests are applied in the order of their `submit` calls.
    pub fn submit(&self, writes: Writes) -> Result<Ticket, Arc<io::Error>> {
        let (done, ticket) = oneshot::channel();
        self.queue.send(Request::Writes { writes, done }).map_err(|_| stopped())?;
        Ok(Ticket(ticket))
    }

    /// Queues a transition for the next round; its completion runs once the round is durable or failed.
    /// An `unhurried` one's round may linger for company (see the module doc).
    pub fn transition(&self, run: Transition, unhurried: bool) -> Result<(), Arc<io::Error>> {
        self.queue.send(Request::Transition { run, unhurried }).map_err(|_| stopped())
    }

    /// Answers are awaited (a slot cannot start until some are durable): the round that holds them does
    /// not linger, or stops lingering. Costs a request only when the thread lingers.
    pub fn hurry(&self) {
        self.pace.hurried.store(true, Ordering::SeqCst);
        if self.pace.lingering.load(Ordering::SeqCst) {
            // A request in a hurry ends the linger; nobody waits for its ticket.
            let _ = self.submit(Vec::new());
        }
    }

    /// Makes rounds of answers linger this long, at most [`LONGEST_LINGER`]; zero never lingers (tests make
    /// it long enough that only a hurry ends it).
    pub fn set_linger(&self, linger: Duration) {
        let micros = linger.min(LONGEST_LINGER).as_micros() as u64;
        self.pace.linger_us.store(micros, Ordering::SeqCst);
    }

    /// Waits until the thread waits for requests (for tests).
    #[cfg(test)]
    pub fn wait_until_idle(&self) {
        while !self.pace.waiting.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    }

    /// Waits until the thread lingers for company (for tests).
    #[cfg(test)]
    pub fn wait_until_lingering(&self) {
        while !self.pace.lingering.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
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
    /// A transition panicked (a bug): what it did in memory is unknown, so the store counts as broken and
    /// the relay restarts, rebuilding its state from the disk.
    panicked: bool,
    ledger: Arc<Mutex<Ledger>>,
    /// The state directory's lock: this thread may outlive the [`super::Store`] and close the database
    /// last, so it holds the lock too, released after `db` (fields drop in order).
    _lock: Arc<DirLock>,
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

/// Set while a commit waits for a file descriptor (see [`patiently`]): the relay is alive, only starved,
/// and the watchdog must not have it killed for that.
pub static WAITING_FOR_DESCRIPTORS: AtomicBool = AtomicBool::new(false);

/// Runs `work` until it does not fail for want of file descriptors: running out of them is not a broken
/// store (SPEC §7), so the round waits (and with it the writers) until one is free.
fn patiently<T>(mut work: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut warned = false;
    let outcome = loop {
        match work() {
            Err(error) if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                if !warned {
                    tracing::warn!(%error, "Out of file descriptors; the store's commit waits for one.");
                    WAITING_FOR_DESCRIPTORS.store(true, Ordering::Release);
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    WAITING_FOR_DESCRIPTORS.store(false, Ordering::Release);
    outcome
}

/// Runs `work`, catching a panic so that the commit thread (and every writer waiting on it) survives a bug
/// in one transition; logs it and says whether `work` finished.
fn survived(what: &str, work: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(()) => true,
        Err(_) => {
            tracing::error!("{what} panicked on the store's commit thread; the relay restarts on the store.");
            false
        }
    }
}

impl Syncer {
    /// Applies a round's requests in order, writes in sled batches of about [`BATCH_BYTES`]: large enough
    /// to spread sled's per-batch cost, small enough that a round of big requests is not copied all at
    /// once. A request's writes always go in one batch: an event and its deliveries are atomic. Returns
    /// the completions to run once the round's outcome is known; after a failure the remaining requests
    /// are not applied (the store is broken) but still completed, with the error.
    fn apply(&mut self, requests: Vec<Request>) -> (io::Result<()>, Vec<Completion>, u64) {
        let mut round = Round::new(&self.db, &self.ledger);
        let mut completions: Vec<Completion> = Vec::with_capacity(requests.len());
        let mut result = Ok(());
        for request in requests {
            match request {
                Request::Writes { writes, done } => {
                    if result.is_ok() {
                        round.blind_writes(writes);
                    }
                    completions.push(Box::new(move |outcome| {
                        let _ = done.send(outcome.clone());
                    }));
                }
                Request::Transition { run: transition, .. } => {
                    let mut completion: Option<Completion> = None;
                    if survived("A transition", || completion = Some(transition(&mut round))) {
                        completions.extend(completion);
                    } else {
                        // Its caller is told the commit thread stopped; the relay restarts on the store.
                        self.panicked = true;
                    }
                }
            }
            if result.is_ok() && round.bytes >= BATCH_BYTES {
                result = round.apply_batch();
            }
        }
        if result.is_ok() {
            result = round.apply_batch();
        }
        let created = round.created;
        (result.and(round.failure.take().map_or(Ok(()), Err)), completions, created)
    }

    fn make_durable(&mut self) -> io::Result<()> {
        self.db.flush().map_err(io::Error::other)?;
        self.db_file.sync_data()?;
        patiently(|| self.sync_new_blobs())
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

/// The writes of a round not yet applied to sled, as transitions see them: a transition's reads see
/// every write queued before it. Keys written by plain writes are only remembered, not copied: reading
/// one applies the pending batch first (rare: a repeat of an event in the round that accepted it).
pub struct Round<'a> {
    db: &'a sled::Db,
    ledger: &'a Mutex<Ledger>,
    /// New delivery records applied in this round (the ledger is raised by them once it is durable).
    created: u64,
    /// Delivery records the pending batch removes (the ledger is lowered by them before it applies).
    removing: u64,
    batch: sled::Batch,
    bytes: usize,
    /// Transitions' writes not yet applied; `None` is a removal.
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys of plain writes not yet applied.
    blind: HashSet<Vec<u8>>,
    /// A batch that failed to apply while a transition read: the round has failed, nothing more applies.
    failure: Option<io::Error>,
}

impl<'a> Round<'a> {
    fn new(db: &'a sled::Db, ledger: &'a Mutex<Ledger>) -> Round<'a> {
        Round {
            db,
            ledger,
            created: 0,
            removing: 0,
            batch: sled::Batch::default(),
            bytes: 0,
            overlay: HashMap::new(),
            blind: HashSet::new(),
            failure: None,
        }
    }

    fn blind_writes(&mut self, writes: Writes) {
        for (key, value) in writes {
            self.insert_new(key, value);
        }
    }

    /// Writes a key that nothing in the round has read: the value is not kept for later reads.
    pub fn insert_new(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len();
        self.created += u64::from(key.first() == Some(&DELIVERY));
        self.overlay.remove(&key);
        self.blind.insert(key.clone());
        self.batch.insert(key, value);
    }

    fn apply_batch(&mut self) -> io::Result<()> {
        if self.failure.is_some() {
            return Err(io::Error::other("an earlier batch of this round failed"));
        }
        self.overlay.clear();
        self.blind.clear();
        self.bytes = 0;
        if self.removing > 0 {
            // Before sled may write the removals: the ledger on disk never claims more than is there.
            let removing = std::mem::take(&mut self.removing);
            lock(self.ledger).lower(removing);
            if let Err(error) = patiently(|| lock(self.ledger).write_lowered()) {
                self.failure = Some(io::Error::new(error.kind(), error.to_string()));
                return Err(error);
            }
        }
        let result = self.db.apply_batch(std::mem::take(&mut self.batch));
        if let Err(error) = &result {
            self.failure = Some(io::Error::other(error.to_string()));
        }
        result.map_err(io::Error::other)
    }

    /// The value under `key`, counting the writes queued before this transition.
    pub fn get(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        if let Some(value) = self.overlay.get(key) {
            return Ok(value.clone());
        }
        if self.blind.contains(key) {
            self.apply_batch()?;
        }
        Ok(self.db.get(key).map_err(io::Error::other)?.map(|value| value.to_vec()))
    }

    /// Every key that starts with `prefix`, with the queued writes applied first.
    pub fn keys_with_prefix(&mut self, prefix: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        if !self.batch_is_empty() {
            self.apply_batch()?;
        }
        self.db.scan_prefix(prefix).keys().map(|key| key.map(|k| k.to_vec()).map_err(io::Error::other)).collect()
    }

    fn batch_is_empty(&self) -> bool {
        self.overlay.is_empty() && self.blind.is_empty()
    }

    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len();
        self.batch.insert(key.clone(), value.clone());
        self.overlay.insert(key, Some(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.bytes += key.len();
        self.removing += u64::from(key.first() == Some(&DELIVERY));
        self.batch.remove(key.clone());
        self.overlay.insert(key, None);
    }
}
