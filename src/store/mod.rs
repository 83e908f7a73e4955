//! The store: the only source of truth about events and deliveries, in one embedded sled database.
//!
//! # Invariants
//! - Every write goes through the group-commit thread ([`group_commit`]) (format upgrades at open,
//!   [`format`], run before it starts): plain writes, or [`transition`]s, read-modify-writes that run there one after another, each seeing every write queued
//!   before it. A transition's writes land in one sled batch, only if it decides without error, and its
//!   caller is answered once they are durable (flushed and fdatasync'ed). Which transitions there are, and
//!   what each may change, is [`crate::lifecycle`]'s table; nothing else changes a record.
//! - An event and one delivery per subscription it matched are written in one atomic batch
//!   ([`Records::put_accepted`]), and the producer is answered only after that batch is durable: an
//!   answered event is on disk with all its deliveries, an unanswered one may be absent as a whole, never
//!   half-present.
//! - A delivery is `pending` until an attempt finishes it (`delivered` or `failed`), or it is cancelled
//!   (its subscription stayed out of the config for the grace period, or its event was erased). Nothing
//!   marks a delivery as "in flight" on disk: after a crash every pending delivery is due again, so an
//!   attempt cut off by the crash is repeated (at-least-once).
//! - An attempt stays in flight in the scheduler until its result is durable; its slot takes the next
//!   delivery meanwhile, so a crash repeats at most the attempts in flight or being recorded at that
//!   moment (at most `2 × concurrency` per subscription, twice the old value for a while after a reload
//!   lowers it; see [`crate::scheduler`]).
//! - Finished deliveries and their event are removed together, once the event and every one of its
//!   deliveries are older than `relay.retention` and none is queued or in flight; an event with a
//!   pending delivery is never removed. The event record is also the idempotency key, so an id can be
//!   reused after the retention period.
//! - A record that does not decode is moved under the `q` prefix by the first transition that meets it
//!   (quarantine), never deleted; reads outside transitions report it for that. The one exception is
//!   an attempt carried in a delivery record that does not read when its event is erased: it may hold
//!   the receiver's answer, which erase must not keep, so it is dropped.
//! - Reads run on the blocking pool or the commit thread, never on an async worker.
//! - Every failed or cancelled delivery has an entry in the status index ([`status_index`]).
//! - Everything is in one tree; the key layout is in [`keys`].

mod dir_lock;
mod encoding;
mod format;
mod group_commit;
mod key_log;
mod keys;
mod ledger;
mod order_salt;
mod private;
mod records;
mod seal_existing;
mod sealing;
mod state_scan;
mod status_index;
mod transition;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use format::CURRENT as FORMAT;

/// The pause records found at start ([`Store::pauses`]): by subscription, and the keys of damaged ones.
pub type Pauses = (Vec<(String, PauseRecord)>, Vec<Vec<u8>>);
pub use group_commit::{FlushObserver, Writes, LINGER};
pub use keys::delivery_id as delivery_key_id;
pub use private::keep_new_files_private;
pub use records::{
    null, AttemptRecord, DeliveryId, DeliveryRecord, DeliveryState, DeliveryStatus, EmbeddedAttempt, EventRecord,
    PauseReason, PauseRecord,
};
pub use sealing::{KeyId, Keyring, StoreKey};
pub use status_index::status_entries;
pub use transition::{Answer, Change, Records};

pub use encoding::Record;
use group_commit::GroupCommit;

/// sled's page cache. Its default (1 GB) is far more than a relay needs: it reads back mostly what it
/// wrote moments ago. At 16 MiB the relay stays under 64 MiB resident during the end-to-end benchmark;
/// 24 and 32 MiB measured no faster (BENCHMARKS.md).
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled's message is the whole story; its error has no source, so this adds none (a prefix here would
    /// print it twice in a `{:#}` chain).
    #[error(transparent)]
    Database(#[from] sled::Error),
    /// The directory's lock is held: another process, almost always a second relay, uses it.
    #[error(
        "another hookrelay is using this state directory (it holds the lock on {path}): stop that relay first, \
         or give this one its own `state_dir`"
    )]
    Locked { path: String },
    #[error("cannot make writes durable: {0}")]
    Durability(Arc<io::Error>),
    #[error("cannot open the database in {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("damaged record under key {}: {reason}", keys::printable(.key))]
    Corrupt { key: Vec<u8>, reason: String },
    #[error("the store's commit thread has stopped")]
    Stopped,
}

impl StoreError {
    fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt { key: key.to_vec(), reason: reason.into() }
    }
}

/// How many records one key has sealed ([`Store::sealed_with_older_keys`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SealedRecords {
    /// Events whose data it seals.
    pub events: u64,
    pub response_bodies: u64,
    /// Events whose idempotency fingerprint it keys (erased ones included).
    pub fingerprints: u64,
}

/// An event and its deliveries, written together.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub event: EventRecord,
    pub deliveries: Vec<DeliveryRecord>,
}

impl Accepted {
    /// The records' keys and bytes, for [`Records::put_accepted`]: encoded (and the data sealed) by the
    /// caller (ingest, on many tasks at once), so that the commit thread only moves them.
    pub fn encode(&self, keyring: &Keyring) -> group_commit::Writes {
        let mut writes = Vec::with_capacity(1 + self.deliveries.len());
        let event_key = keys::event(&self.event.id);
        let event = self.event.encode(&event_key, keyring);
        writes.push((event_key, event));
        for delivery in &self.deliveries {
            let key = keys::delivery(delivery.id);
            writes.push((key.to_vec(), delivery.encode(&key, keyring)));
        }
        writes
    }
}

#[derive(Clone)]
pub struct Store {
    dir: std::path::PathBuf,
    db: sled::Db,
    committer: GroupCommit,
    broken: CancellationToken,
    /// Damaged records quarantined since the store was opened.
    corrupt: Arc<AtomicU64>,
    ledger: Arc<Mutex<ledger::Ledger>>,
    /// Whether the store had a ledger when it was opened.
    had_ledger: bool,
    /// Seals payloads on the way in, opens them on the way out (SPEC §8).
    keyring: Keyring,
    /// Keys other than the sealing key that may have sealed records here ([`key_log`]).
    older_keys: Vec<KeyId>,
    /// What order keys are hashed with ([`order_salt`]).
    order_salt: [u8; order_salt::BYTES],
    /// This process's lock on the directory ([`dir_lock`]), held as long as any clone is, and by the
    /// commit thread, which may close the database last. Last, so that it is released after `db`.
    _lock: Arc<dir_lock::DirLock>,
}

impl Store {
    /// Opens (or creates) the database in `dir`, sealing payloads with `keyring`'s first key (none: in the
    /// clear). The directory is locked first, so a second relay on the same state directory fails here,
    /// having changed nothing, instead of corrupting it.
    pub fn open(dir: &Path, flush_observer: Option<FlushObserver>, keyring: Keyring) -> Result<Store, StoreError> {
        let open_error = |source| open_failed(dir, source);
        private::create_dir(dir).map_err(open_error)?;
        // Before anything is read or written: a second relay here changes nothing.
        let lock = dir_lock::lock(dir).map_err(|error| match error {
            std::fs::TryLockError::WouldBlock => {
                StoreError::Locked { path: dir.join(dir_lock::LOCK_FILE).display().to_string() }
            }
            std::fs::TryLockError::Error(source) => open_failed(dir, source),
        })?;
        let format = format::check(dir)?;
        if format.is_none() {
            format::record_new(dir)?;
        }
        // After the format check: a store of a newer format is refused untouched.
        private::tighten(dir).map_err(open_error)?;
        let db = open_sled(dir)?;
        // Once the directory is locked (a second relay on it fails above), and before anything is sealed.
        let mut key_log = key_log::read(dir, format.is_none()).map_err(open_error)?;
        note_sealing(dir, &mut key_log, &keyring).map_err(open_error)?;
        if let Some(found) = format {
            format::upgrade(&db, dir, found)?;
        }
        if keyring.sealing_key().is_some() && key_log.clear {
            seal_existing::seal_records_in_the_clear(&db, &keyring)?;
            key_log.clear = false;
            key_log::write(dir, &key_log).map_err(open_error)?;
        }
        let order_salt = order_salt::load(&db, &keyring)?;
        let older_keys = key_log.keys.iter().copied().filter(|&key| Some(key) != keyring.sealing_key()).collect();
        let (ledger, found) = ledger::Ledger::open(dir).map_err(open_error)?;
        let ledger = Arc::new(Mutex::new(ledger));
        let broken = CancellationToken::new();
        let lock = Arc::new(lock);
        let committer =
            GroupCommit::start(db.clone(), dir, Arc::clone(&ledger), flush_observer, broken.clone(), Arc::clone(&lock))
                .map_err(open_error)?;
        let dir = dir.to_path_buf();
        let had_ledger = found.is_some();
        Ok(Store {
            dir,
            db,
            committer,
            broken,
            corrupt: Arc::default(),
            ledger,
            had_ledger,
            keyring,
            older_keys,
            order_salt,
            _lock: lock,
        })
    }

    /// How many records are sealed with each key other than the sealing key that has sealed records here
    /// (an older key still listed, or one no longer listed). Reads every event, attempt and delivery (for
    /// the attempt it carries), but only when there is such a key (a rotation under way, or a key gone),
    /// so not at a common start.
    pub fn sealed_with_older_keys(&self) -> Result<BTreeMap<KeyId, SealedRecords>, StoreError> {
        let mut counts: BTreeMap<KeyId, SealedRecords> =
            self.older_keys.iter().map(|&key| (key, SealedRecords::default())).collect();
        if counts.is_empty() {
            return Ok(counts);
        }
        /// The fields of an event or an attempt a key seals or keys, read without the rest.
        #[derive(serde::Deserialize)]
        struct SealedFields<'a> {
            #[serde(borrow)]
            sealed: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            sealed_response_body: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            fingerprint: Option<std::borrow::Cow<'a, str>>,
        }
        let mut count = |prefix: u8, json: &[u8]| {
            let Ok(fields) = serde_json::from_slice::<SealedFields<'_>>(json) else { return };
            // An erased event's fingerprint is still keyed: its key is needed to answer a repeat.
            let keyed = fields.fingerprint.as_deref().and_then(sealing::fingerprint_key);
            if let Some(count) = keyed.and_then(|key| counts.get_mut(&key)) {
                count.fingerprints += 1;
            }
            let Some(sealed) = fields.sealed.or(fields.sealed_response_body) else { return };
            if let Some(count) = sealing::sealed_with(&sealed).and_then(|key| counts.get_mut(&key)) {
                match prefix {
                    keys::EVENT => count.events += 1,
                    _ => count.response_bodies += 1,
                }
            }
        };
        for prefix in [keys::EVENT, keys::ATTEMPT] {
            for entry in self.db.scan_prefix([prefix]) {
                count(prefix, &entry?.1);
            }
        }
        // A delivery's record may carry an attempt (its latest, unless that one is long).
        for entry in self.db.scan_prefix([keys::DELIVERY]) {
            let (key, value) = entry?;
            let Ok(delivery) = DeliveryRecord::decode(&key, &value, &Keyring::default()) else { continue };
            if let Some(latest) = &delivery.latest_attempt {
                count(keys::ATTEMPT, &latest.encoded);
            }
        }
        Ok(counts)
    }

    /// Whether the key log named `key` at open (the sealing key, or an older one).
    pub fn logged_key(&self, key: KeyId) -> bool {
        self.keyring.sealing_key() == Some(key) || self.older_keys.contains(&key)
    }

    /// Drops keys that seal no record any more from the key log ([`key_log`]).
    pub fn forget_sealing_keys(&self, gone: &[KeyId]) -> Result<(), StoreError> {
        if gone.is_empty() {
            return Ok(());
        }
        let open_error = |source| open_failed(&self.dir, source);
        let mut log = key_log::read(&self.dir, false).map_err(open_error)?;
        log.keys.retain(|key| !gone.contains(key));
        key_log::write(&self.dir, &log).map_err(open_error)
    }

    /// The secret order keys are hashed with ([`order_salt`]).
    pub fn order_salt(&self) -> &[u8; order_salt::BYTES] {
        &self.order_salt
    }

    /// The keys payloads are sealed and opened with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// An attempt as its delivery's record carries it, its response body sealed: encoded by the worker,
    /// off the commit thread.
    pub fn encode_attempt(&self, id: DeliveryId, attempt: &AttemptRecord) -> EmbeddedAttempt {
        EmbeddedAttempt::encode(id, attempt, &self.keyring)
    }

    /// Whether a commit is waiting for a file descriptor (the process is out of them) right now.
    pub fn waiting_for_descriptors(&self) -> bool {
        group_commit::WAITING_FOR_DESCRIPTORS.load(Ordering::Acquire)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many delivery records the store should hold at least, by its ledger ([`ledger`]); `None` for a
    /// store that had no ledger yet. Compare with what the start-up scan found.
    pub fn expected_deliveries(&self) -> Option<u64> {
        self.had_ledger.then(|| self.lock_ledger().count())
    }

    /// Takes what the start-up scan found as the ledger's bound from now on (a store new to the ledger, or
    /// damage the operator accepted).
    pub fn reset_ledger(&self, found: u64) -> Result<(), StoreError> {
        self.lock_ledger().reset(found).map_err(|error| StoreError::Durability(Arc::new(error)))
    }

    /// Writes the ledger's bound now (at shutdown, after the last commit).
    pub fn flush_ledger(&self) -> Result<(), StoreError> {
        self.lock_ledger().flush().map_err(|error| StoreError::Durability(Arc::new(error)))
    }

    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, ledger::Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancelled once a commit has failed (a full disk, a file-size limit, an I/O error). There is no way
    /// back without reopening the database: sled refuses every write after its first I/O error, and after
    /// a failed fdatasync nobody knows what of the page cache reached the disk (PostgreSQL's "fsyncgate").
    pub fn broken(&self) -> CancellationToken {
        self.broken.clone()
    }

    /// Waits until every write made before the call is durable (flushed and fdatasync'ed).
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.committer.commit().await.map_err(StoreError::Durability)
    }

    pub fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.get(&keys::event(id))
    }

    pub fn delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        self.get(&keys::delivery(id))
    }

    /// Takes back accepted events whose commit failed (their records' keys), so that a refused event
    /// leaves nothing, as far as a failing store still writes. Never raised in the ledger, so not lowered.
    pub fn remove_keys(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in keys {
            batch.remove(key.as_slice());
        }
        Ok(self.db.apply_batch(batch)?)
    }

    /// Damaged records quarantined since the store was opened.
    pub fn corrupt_records(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Every quarantined record: its original key (printable) and its size in bytes.
    pub fn quarantined(&self) -> Result<Vec<(String, usize)>, StoreError> {
        self.db
            .scan_prefix([keys::QUARANTINE])
            .map(|entry| {
                let (key, value) = entry?;
                Ok((keys::printable(&key[1..]), value.len()))
            })
            .collect()
    }

    /// Every paused subscription's pause record; a damaged one is skipped with its key (the pause is
    /// lost, never the start).
    pub fn pauses(&self) -> Result<Pauses, StoreError> {
        let (mut found, mut damaged) = (Vec::new(), Vec::new());
        for entry in self.db.scan_prefix([keys::PAUSE]) {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            match PauseRecord::decode(&key, &value, &self.keyring) {
                Ok(pause) => found.push((name, pause)),
                Err(_) => damaged.push(key.to_vec()),
            }
        }
        Ok((found, damaged))
    }

    /// Every delivery, in acceptance order.
    pub fn deliveries(&self) -> impl Iterator<Item = Result<DeliveryRecord, StoreError>> + '_ {
        self.db.scan_prefix([keys::DELIVERY]).map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value, &self.keyring)
        })
    }

    /// Calls `visit` with every delivery's id and state, on up to `threads` threads, each folding into its
    /// own accumulator made by `start`. Much cheaper than [`Store::deliveries`]: recovery reads every
    /// delivery at each start (see [`state_scan`]). Also returns the keys of records that did not decode.
    pub fn scan_delivery_states<T: Send>(
        &self,
        threads: usize,
        start: impl Fn() -> T + Sync,
        visit: impl Fn(&mut T, DeliveryId, DeliveryState<'_>) + Sync,
    ) -> Result<(Vec<T>, Vec<Vec<u8>>), StoreError> {
        state_scan::scan(&self.db, threads, start, visit)
    }

    /// Deliveries in acceptance order, starting after `after` (a paging cursor) or at the first.
    pub fn deliveries_after(
        &self,
        after: Option<DeliveryId>,
    ) -> impl Iterator<Item = Result<DeliveryRecord, StoreError>> + '_ {
        use std::ops::Bound::{Excluded, Included};
        let start = match after {
            Some(id) => Excluded(keys::delivery(id).to_vec()),
            None => Included(vec![keys::DELIVERY]),
        };
        self.db.range::<Vec<u8>, _>((start, Excluded(keys::DELIVERIES_END.to_vec()))).map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value, &self.keyring)
        })
    }

    /// Events in key order, starting after the event `after` (a paging cursor) or at the first, with their
    /// data left as stored (sealed data is not opened; see [`Records::event_metadata`]).
    pub fn events_after(&self, after: Option<&str>) -> impl Iterator<Item = Result<EventRecord, StoreError>> + '_ {
        use std::ops::Bound::{Excluded, Included};
        let start = match after {
            Some(id) => Excluded(keys::event(id)),
            None => Included(vec![keys::EVENT]),
        };
        self.db.range::<Vec<u8>, _>((start, Excluded(vec![keys::EVENT + 1]))).map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value, &Keyring::default())
        })
    }

    /// A delivery's attempts, first to last: those under keys of their own, then the one its record
    /// carries. The keys of damaged ones go to `damaged` instead; a damaged attempt in the record is left
    /// out (the delivery itself reads, so it is not quarantined for it).
    pub fn attempts(
        &self,
        delivery: &DeliveryRecord,
        damaged: &mut Vec<Vec<u8>>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut attempts = Vec::new();
        for entry in self.db.scan_prefix(keys::attempts_of(delivery.id)) {
            let (key, value) = entry?;
            match decode(&key, &value, &self.keyring) {
                Ok(attempt) => attempts.push(attempt),
                Err(_) => damaged.push(key.to_vec()),
            }
        }
        // Read after `delivery`: a later attempt recorded meanwhile has moved this one under its own key.
        // What is under its own key was read later, so it wins: an erase may have forgotten its body since.
        // (Attempt numbers only grow: the same number under both is always such a move.)
        let moved = |latest: &EmbeddedAttempt| attempts.last().is_some_and(|last: &AttemptRecord| last.n >= latest.n);
        if let Some(latest) = delivery.latest_attempt.as_ref().filter(|latest| !moved(latest)) {
            match latest.decode(delivery.id, &self.keyring) {
                Ok(attempt) => attempts.push(attempt),
                // The reason is not logged: a JSON error may quote the stored answer.
                Err(_) => warn!(
                    delivery_id = %delivery.id, attempt = latest.n,
                    "A delivery's latest attempt does not read; it is left out of the view."
                ),
            }
        }
        Ok(attempts)
    }

    fn get<T: Record>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(key)? {
            Some(value) => decode(key, &value, &self.keyring).map(Some),
            None => Ok(None),
        }
    }
}

/// Brings the key log up to date before anything is written: `keyring`'s sealing key is added before it
/// seals a record, and a start without a key notes that records in the clear may follow.
fn note_sealing(dir: &Path, log: &mut key_log::KeyLog, keyring: &Keyring) -> io::Result<()> {
    let before = log.clone();
    match keyring.sealing_key() {
        Some(key) => drop(log.keys.insert(key)),
        None => log.clear = true,
    }
    if *log != before {
        key_log::write(dir, log)?;
    }
    Ok(())
}

fn open_failed(dir: &Path, source: io::Error) -> StoreError {
    StoreError::Open { path: dir.display().to_string(), source }
}

/// Opens sled; a damaged file can make sled panic (e.g. garbage at the start of `db`), which becomes an
/// error here instead of a crash with a backtrace.
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = crate::logging::while_opening_the_store(|| {
        std::panic::catch_unwind(|| {
            sled::Config::new().path(dir).cache_capacity(CACHE_CAPACITY_BYTES).flush_every_ms(Some(1000)).open()
        })
    });
    std::panic::set_hook(hook);
    match opened {
        Ok(result) => Ok(result?),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(StoreError::Open {
                path: dir.display().to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the database is damaged: sled failed reading it ({what})"),
                ),
            })
        }
    }
}

fn decode<T: Record>(key: &[u8], value: &[u8], keyring: &Keyring) -> Result<T, StoreError> {
    T::decode(key, value, keyring).map_err(|reason| StoreError::corrupt(key, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `n` as the attempt the delivery `id` carries (creating the delivery if need be).
    async fn record(store: &Store, id: DeliveryId, n: u32) {
        record_answer(store, id, n, format!("answer {n}")).await;
    }

    /// Records attempt `n` of the delivery `id`, answered with `body` (creating the delivery if need be).
    async fn record_answer(store: &Store, id: DeliveryId, n: u32, body: String) {
        let carried = store.encode_attempt(id, &AttemptRecord::failed_with(n, &body));
        store
            .write_now(move |records| {
                let found = records.delivery(id).unwrap();
                let mut delivery =
                    found.unwrap_or_else(|| DeliveryRecord::pending(id, "evt", "lab.completed", "vet", 1));
                records.carry_attempt(&mut delivery, carried);
                records.put_delivery(&delivery);
            })
            .await;
    }

    /// A view lists each attempt once, first to last, also when the delivery it read was overtaken by a
    /// later attempt before it read the attempts under their own keys.
    #[tokio::test]
    async fn a_view_of_a_delivery_read_before_its_next_attempt_lists_each_attempt_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None, Keyring::default()).unwrap();
        let id = DeliveryId(ulid::Ulid(7));
        let listed = |delivery: &DeliveryRecord| -> Vec<(u32, Option<String>)> {
            let attempts = store.attempts(delivery, &mut Vec::new()).unwrap();
            attempts.into_iter().map(|attempt| (attempt.n, attempt.response_body)).collect()
        };
        record(&store, id, 1).await;
        let before = store.delivery(id).unwrap().unwrap();
        assert_eq!(listed(&before), [(1, Some("answer 1".into()))]);
        record(&store, id, 2).await;
        record(&store, id, 3).await;
        let now = store.delivery(id).unwrap().unwrap();
        let all: Vec<_> = (1..=3).map(|n| (n, Some(format!("answer {n}")))).collect();
        assert_eq!(listed(&now), all);
        assert_eq!(listed(&before), all[..2], "what it carried is under its own key now, listed once");
    }

    /// A long answer (a receiver's error page) goes to a key of its own, so that the delivery record the
    /// start-up scan reads stays small; a short one is carried; the attempts read back in order, each once.
    #[tokio::test]
    async fn a_long_answer_is_not_carried_and_the_attempts_still_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None, Keyring::default()).unwrap();
        let id = DeliveryId(ulid::Ulid(7));
        let page = |n: u32| format!("<html>{}</html>", n.to_string().repeat(4000));
        let under_own_keys = || store.db.scan_prefix(keys::attempts_of(id)).count();
        record_answer(&store, id, 1, page(1)).await;
        let delivery = store.delivery(id).unwrap().unwrap();
        assert!(delivery.latest_attempt.is_none(), "{delivery:?}");
        assert!(store.db.get(keys::delivery(id)).unwrap().unwrap().len() < 100);
        assert_eq!(under_own_keys(), 1);
        record(&store, id, 2).await;
        assert_eq!(store.delivery(id).unwrap().unwrap().latest_attempt.map(|carried| carried.n), Some(2));
        assert_eq!(under_own_keys(), 1);
        record_answer(&store, id, 3, page(3)).await;
        let delivery = store.delivery(id).unwrap().unwrap();
        assert!(delivery.latest_attempt.is_none(), "the short one it carried moved to its own key too");
        assert_eq!(under_own_keys(), 3);
        let attempts = store.attempts(&delivery, &mut Vec::new()).unwrap();
        let listed: Vec<_> = attempts.into_iter().map(|attempt| (attempt.n, attempt.response_body)).collect();
        assert_eq!(listed, [(1, Some(page(1))), (2, Some("answer 2".into())), (3, Some(page(3)))]);
    }

    /// A view that read a delivery before its next attempt moved the attempt it carried to its own key,
    /// and before an erase forgot the answers, lists that attempt as it is now: without the answer.
    #[tokio::test]
    async fn a_view_that_read_a_delivery_before_an_erase_lists_no_erased_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None, Keyring::default()).unwrap();
        let id = DeliveryId(ulid::Ulid(7));
        record(&store, id, 1).await;
        let before = store.delivery(id).unwrap().unwrap();
        record(&store, id, 2).await;
        store
            .write_now(move |records| {
                let mut delivery = records.delivery(id).unwrap().unwrap();
                records.forget_response_bodies(&mut delivery).unwrap();
                records.put_delivery(&delivery);
            })
            .await;
        let attempts = store.attempts(&before, &mut Vec::new()).unwrap();
        let listed: Vec<_> = attempts.into_iter().map(|attempt| (attempt.n, attempt.response_body)).collect();
        assert_eq!(listed, [(1, None)], "the copy read before the erase still carries the answer");
    }

    /// A key that seals only an answer carried in a delivery's record is still in use: a start must not
    /// tell the operator it can go, nor drop it from the key log.
    #[tokio::test]
    async fn a_response_body_carried_in_a_delivery_record_keeps_its_key_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let (older, newer) = (StoreKey::new(&[1; 32]), StoreKey::new(&[2; 32]));
        let logged = key_log::KeyLog { keys: [older.id(), newer.id()].into(), clear: false };
        key_log::write(dir.path(), &logged).unwrap();
        let store = Store::open(dir.path(), None, Keyring::new(vec![newer, older.clone()])).unwrap();
        let id = DeliveryId(ulid::Ulid(7));
        let carried =
            EmbeddedAttempt::encode(id, &AttemptRecord::failed_with(1, "ANSWER"), &Keyring::new(vec![older.clone()]));
        store
            .write_now(move |records| {
                let mut delivery = DeliveryRecord::pending(id, "evt", "lab.completed", "vet", 1);
                records.carry_attempt(&mut delivery, carried);
                records.put_delivery(&delivery);
            })
            .await;
        let counts = store.sealed_with_older_keys().unwrap();
        let expected = SealedRecords { events: 0, response_bodies: 1, fingerprints: 0 };
        assert_eq!(counts.get(&older.id()), Some(&expected));
    }
}
