//! Transitions: the store's only way to change a record that already exists. Each is a closure run on
//! the commit thread (see [`super::group_commit`]) that reads records as of every earlier write, decides,
//! and writes; its caller gets its answer once the writes are durable, and the in-memory follow-up the
//! closure returns runs then too, on the commit thread, whether or not the caller still waits.
//!
//! A decision's writes are staged and reach the round only when it returns `Ok`: a decision that fails
//! part-way (a read error) changes nothing, and all its writes land in one sled batch.
//!
//! A record that does not decode is quarantined where a transition meets it: moved under the `q` prefix
//! ([`super::keys::quarantined`]), logged at ERROR with its key, counted, and treated as absent.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::error;

use super::encoding::Record;
use super::group_commit::{Completion, Round};
use super::records::{AttemptRecord, DeliveryId, DeliveryRecord, DeliveryStatus, EmbeddedAttempt, EventRecord};
use super::{keys, Keyring, Store, StoreError};

/// The longest attempt a delivery record carries, as stored (a few hundred bytes: an answer with a short
/// body or none, or an error; with `encryption_key` a sealed body is about a third longer, so the longest
/// body carried is shorter). A longer one (a receiver's error page, up to the 4 KiB kept of it) goes to
/// its own key: a delivery record is rewritten at every attempt, and read whole by the scan at every
/// start, which would read a million such answers with a million pending deliveries.
const LONGEST_CARRIED_ATTEMPT: usize = 512;

/// What a transition decided: the answer for its caller and what to do in memory once it is durable.
pub struct Change<T> {
    pub answer: T,
    /// Runs on the commit thread once the writes are durable.
    pub then: Box<dyn FnOnce() + Send>,
    /// Runs on the commit thread instead when the round failed.
    pub otherwise: Box<dyn FnOnce() + Send>,
}

impl<T> Change<T> {
    /// An answer with nothing to do in memory (nothing written, or nothing to follow up).
    pub fn only(answer: T) -> Change<T> {
        Change { answer, then: Box::new(|| {}), otherwise: Box::new(|| {}) }
    }

    pub fn then(answer: T, then: impl FnOnce() + Send + 'static) -> Change<T> {
        Change { answer, then: Box::new(then), otherwise: Box::new(|| {}) }
    }

    /// What to undo in memory if the transition's writes do not become durable.
    pub fn or_else(mut self, otherwise: impl FnOnce() + Send + 'static) -> Change<T> {
        self.otherwise = Box::new(otherwise);
        self
    }
}

/// Resolves to a transition's answer once its writes are durable.
pub struct Answer<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> Answer<T> {
    pub async fn wait(self) -> Result<T, StoreError> {
        self.0.await.unwrap_or_else(|_| Err(StoreError::Stopped))
    }
}

/// The records of a round, as a transition reads and writes them.
pub struct Records<'r, 'a> {
    round: &'r mut Round<'a>,
    store: &'r Store,
    /// This decision's writes; `None` is a removal. Applied to the round on `Ok`.
    staged: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys no read in the round looks up one by one: new events and deliveries
    /// ([`Records::put_accepted`], [`Records::put_new_delivery`]) and attempts moved to or written under
    /// their own keys ([`Records::carry_attempt`]), which only prefix scans read (they apply the round's
    /// writes first).
    staged_new: Vec<(Vec<u8>, Vec<u8>)>,
    /// Records this decision quarantined.
    quarantined: u64,
    /// The status of each delivery this decision read or wrote, as of its latest staged write: what its
    /// status index entry is now ([`super::status_index`]).
    statuses: HashMap<DeliveryId, DeliveryStatus>,
}

impl<'r, 'a> Records<'r, 'a> {
    fn new(round: &'r mut Round<'a>, store: &'r Store) -> Self {
        Records {
            round,
            store,
            staged: HashMap::new(),
            staged_new: Vec::new(),
            quarantined: 0,
            statuses: HashMap::new(),
        }
    }

    /// Hands the staged writes to the round.
    fn commit(self) {
        self.store.corrupt.fetch_add(self.quarantined, Ordering::Relaxed);
        for (key, value) in self.staged {
            match value {
                Some(value) => self.round.insert(key, value),
                None => self.round.remove(key),
            }
        }
        for (key, value) in self.staged_new {
            self.round.insert_new(key, value);
        }
    }

    fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.staged.insert(key, value);
    }
}

impl Store {
    /// Runs `decide` on the commit thread after every write queued before this call; see the module doc.
    pub fn transition<T, F>(&self, decide: F) -> Result<Answer<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Records<'_, '_>) -> Result<Change<T>, StoreError> + Send + 'static,
    {
        self.transition_with(decide, false)
    }

    /// [`Store::transition`] for a decision nobody waits on at once (an attempt's result): its round may
    /// linger for company ([`Store::set_linger`]), unless [`Store::hurry`] ends it.
    pub fn transition_unhurried<T, F>(&self, decide: F) -> Result<Answer<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Records<'_, '_>) -> Result<Change<T>, StoreError> + Send + 'static,
    {
        self.transition_with(decide, true)
    }

    /// Makes a lingering round durable now (a worker waits for its results).
    pub fn hurry(&self) {
        self.committer.hurry();
    }

    /// How long a round of only answers may wait for company ([`super::group_commit::LINGER`] unless set;
    /// zero never waits).
    pub fn set_linger(&self, linger: std::time::Duration) {
        self.committer.set_linger(linger);
    }

    /// From now on every answer is made durable at once, and one waiting now is (shutdown waits for them).
    pub fn stop_lingering(&self) {
        self.committer.set_linger(std::time::Duration::ZERO);
        self.committer.hurry();
    }

    fn transition_with<T, F>(&self, decide: F, unhurried: bool) -> Result<Answer<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Records<'_, '_>) -> Result<Change<T>, StoreError> + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let store = self.clone();
        let run: super::group_commit::Transition = Box::new(move |round| -> Completion {
            let mut records = Records::new(round, &store);
            let decided = decide(&mut records);
            if decided.is_ok() {
                records.commit();
            }
            Box::new(move |outcome| match (decided, outcome) {
                (Ok(change), Ok(())) => {
                    (change.then)();
                    let _ = sender.send(Ok(change.answer));
                }
                (Ok(change), Err(error)) => {
                    (change.otherwise)();
                    let _ = sender.send(Err(StoreError::Durability(Arc::clone(error))));
                }
                (Err(error), _) => {
                    let _ = sender.send(Err(error));
                }
            })
        });
        self.committer.transition(run, unhurried).map_err(StoreError::Durability)?;
        Ok(Answer(receiver))
    }
}

impl Records<'_, '_> {
    pub fn delivery(&mut self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let found: Option<DeliveryRecord> = self.read(&keys::delivery(id))?;
        if let Some(delivery) = &found {
            self.statuses.insert(id, delivery.status);
        }
        Ok(found)
    }

    /// An event with its data left as stored (sealed data is not opened: `sealed` is set, `data` null),
    /// for decisions that need only its ids, times and deliveries: no decryption on the commit thread.
    /// Written back with [`Records::put_event`], the data stays as it was.
    pub fn event_metadata(&mut self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.read_with(&keys::event(id), &Keyring::default())
    }

    /// Forgets the response body of every attempt of `delivery` (erase), sealed or not, without opening
    /// any: those under keys of their own are written here; says whether the one `delivery` carries
    /// changed, for the caller to write `delivery`. A carried attempt that does not read is dropped whole:
    /// erase keeps no answer.
    pub fn forget_response_bodies(&mut self, delivery: &mut DeliveryRecord) -> Result<bool, StoreError> {
        for mut attempt in self.own_key_attempts_metadata(delivery.id)? {
            if attempt.forget_response_body() {
                self.put_attempt(delivery.id, &attempt);
            }
        }
        // With no body, nothing is sealed: no key needed.
        match delivery.rewrite_latest_attempt(&Keyring::default(), AttemptRecord::forget_response_body) {
            Ok(changed) => Ok(changed),
            Err(_) => {
                delivery.latest_attempt = None;
                Ok(true)
            }
        }
    }

    /// The attempts of a delivery under keys of their own (every one but the one its record carries, if
    /// any), first to last, their response bodies left as stored (sealed ones are not opened), like
    /// [`Records::event_metadata`].
    fn own_key_attempts_metadata(&mut self, id: DeliveryId) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut attempts = Vec::new();
        for key in self.round.keys_with_prefix(&keys::attempts_of(id)).map_err(io_error)? {
            attempts.extend(self.read_with::<AttemptRecord>(&key, &Keyring::default())?);
        }
        Ok(attempts)
    }

    /// Writes a delivery made by this transition (its key is new: resend). New deliveries are pending,
    /// which the status index does not hold.
    pub fn put_new_delivery(&mut self, delivery: &DeliveryRecord) {
        debug_assert_eq!(delivery.status, DeliveryStatus::Pending);
        let key = keys::delivery(delivery.id);
        self.staged_new.push((key.to_vec(), delivery.encode(&key, &self.store.keyring)));
    }

    /// Writes a delivery, and moves its status index entry along with its status.
    pub fn put_delivery(&mut self, delivery: &DeliveryRecord) {
        let before = self.statuses.insert(delivery.id, delivery.status);
        if before != Some(delivery.status) {
            match before {
                Some(before) => self.unindex(before, delivery.id),
                // Not read by this decision: its entry, if any, may be under any indexed status.
                None => self.unindex_all(delivery.id),
            }
            self.index(delivery.status, delivery.id);
        }
        let key = keys::delivery(delivery.id);
        self.stage(key.to_vec(), Some(delivery.encode(&key, &self.store.keyring)));
    }

    /// Adds a delivery's status index entry under `status`, if that status is indexed.
    fn index(&mut self, status: DeliveryStatus, id: DeliveryId) {
        if let Some(entry) = keys::status_entry(status, id) {
            self.stage(entry.to_vec(), Some(Vec::new()));
        }
    }

    /// Removes a delivery's status index entry under `status`, if that status is indexed.
    fn unindex(&mut self, status: DeliveryStatus, id: DeliveryId) {
        if let Some(entry) = keys::status_entry(status, id) {
            self.stage(entry.to_vec(), None);
        }
    }

    /// Removes whatever status index entry a delivery has.
    fn unindex_all(&mut self, id: DeliveryId) {
        for entry in super::status_index::status_entries(id) {
            self.stage(entry, None);
        }
    }

    /// Corrects the status index (at start, see [`super::status_index`]): adds and removes entries.
    pub fn fix_status_index(&mut self, add: &[(DeliveryStatus, DeliveryId)], remove: &[(DeliveryStatus, DeliveryId)]) {
        for &(status, id) in remove {
            self.unindex(status, id);
        }
        for &(status, id) in add {
            self.index(status, id);
        }
    }

    /// Records that a subscription is paused (replacing an earlier pause of it).
    pub fn put_pause(&mut self, subscription: &str, pause: &super::PauseRecord) {
        let key = keys::pause(subscription);
        let value = pause.encode(&key, &self.store.keyring);
        self.stage(key, Some(value));
    }

    /// Ends a subscription's pause, if it had one.
    pub fn remove_pause(&mut self, subscription: &str) {
        self.stage(keys::pause(subscription), None);
    }

    pub fn put_event(&mut self, event: &EventRecord) {
        let key = keys::event(&event.id);
        let value = event.encode(&key, &self.store.keyring);
        self.stage(key, Some(value));
    }

    /// Makes an attempt encoded by the caller ([`Store::encode_attempt`]) the one `delivery` carries, which
    /// the caller then writes ([`Records::put_delivery`]): recording a first attempt is one write. The
    /// attempt it carried before (an earlier number) goes to its own key now, as encoded. An attempt longer
    /// than [`LONGEST_CARRIED_ATTEMPT`] goes to its own key at once, and the delivery then carries none.
    /// Attempt numbers only grow (a delivery has one attempt in flight at most, numbered from what is
    /// recorded), which [`Store::attempts`] relies on. Attempts under their own keys are only read by prefix scans, which apply the
    /// round's writes first, so those bytes are not copied for reads in the round.
    pub fn carry_attempt(&mut self, delivery: &mut DeliveryRecord, attempt: EmbeddedAttempt) {
        let n = attempt.n;
        let carried = if attempt.encoded.len() > LONGEST_CARRIED_ATTEMPT {
            self.staged_new.push((keys::attempt(delivery.id, n).to_vec(), attempt.encoded));
            delivery.latest_attempt.take()
        } else {
            delivery.latest_attempt.replace(attempt)
        };
        if let Some(earlier) = carried.filter(|earlier| earlier.n != n) {
            self.staged_new.push((keys::attempt(delivery.id, earlier.n).to_vec(), earlier.encoded));
        }
    }

    fn put_attempt(&mut self, id: DeliveryId, attempt: &AttemptRecord) {
        let key = keys::attempt(id, attempt.n);
        self.stage(key.to_vec(), Some(attempt.encode(&key, &self.store.keyring)));
    }

    /// Removes an event with its deliveries and their attempts.
    pub fn remove_event(&mut self, event: &EventRecord) -> Result<(), StoreError> {
        self.stage(keys::event(&event.id), None);
        for &delivery in &event.deliveries {
            self.stage(keys::delivery(delivery).to_vec(), None);
            self.unindex_all(delivery);
            for key in self.round.keys_with_prefix(&keys::attempts_of(delivery)).map_err(io_error)? {
                self.stage(key, None);
            }
        }
        Ok(())
    }

    /// Writes a new event with its deliveries, encoded by [`super::Accepted::encode`]; their keys are new,
    /// so nothing is read back (the bytes are not copied for later reads in the round).
    pub fn put_accepted(&mut self, encoded: super::group_commit::Writes) {
        self.staged_new.extend(encoded);
    }

    /// Quarantines the record under `key` if it does not decode (found so by a read outside a
    /// transition); says whether it did.
    pub fn quarantine_if_damaged(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let before = self.quarantined;
        match key.first() {
            Some(&keys::EVENT) => drop(self.read::<EventRecord>(key)?),
            Some(&keys::DELIVERY) => drop(self.read::<DeliveryRecord>(key)?),
            Some(&keys::ATTEMPT) => drop(self.read::<AttemptRecord>(key)?),
            Some(&keys::PAUSE) => drop(self.read::<super::PauseRecord>(key)?),
            _ => {}
        }
        Ok(self.quarantined > before)
    }

    fn read<T: Record>(&mut self, key: &[u8]) -> Result<Option<T>, StoreError> {
        let keyring = self.store.keyring.clone();
        self.read_with(key, &keyring)
    }

    fn read_with<T: Record>(&mut self, key: &[u8], keyring: &Keyring) -> Result<Option<T>, StoreError> {
        let value = match self.staged.get(key) {
            Some(value) => value.clone(),
            None => self.round.get(key).map_err(io_error)?,
        };
        let Some(value) = value else { return Ok(None) };
        match T::decode(key, &value, keyring) {
            Ok(record) => Ok(Some(record)),
            Err(reason) => {
                error!(
                    key = %keys::printable(key), %reason,
                    "Damaged record quarantined; the relay goes on without it. Inspect it with `GET /v1/quarantine`."
                );
                self.stage(key.to_vec(), None);
                self.stage(keys::quarantined(key), Some(value));
                if let Some(id) = keys::delivery_id(key) {
                    self.unindex_all(id);
                }
                self.quarantined += 1;
                Ok(None)
            }
        }
    }
}

fn io_error(error: std::io::Error) -> StoreError {
    StoreError::Durability(Arc::new(error))
}

#[cfg(test)]
impl Store {
    /// Runs `change` as a transition and waits until its writes are durable: how the store's unit tests
    /// write records.
    pub(super) async fn write_now(&self, change: impl FnOnce(&mut Records<'_, '_>) + Send + 'static) {
        let answer = self.transition(move |records| {
            change(records);
            Ok(Change::only(()))
        });
        answer.unwrap().wait().await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use super::super::{FlushObserver, Store};
    use super::Change;

    /// Long enough that only company or a hurry ends a linger within a test's patience.
    const LONG_LINGER: Duration = Duration::from_secs(600);
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A store whose rounds are counted and whose rounds of answers linger [`LONG_LINGER`].
    fn counted() -> (tempfile::TempDir, Store, Arc<AtomicUsize>) {
        let dir = tempfile::tempdir().unwrap();
        let rounds = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&rounds);
        let observer: FlushObserver = Arc::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let store = Store::open(dir.path(), Some(observer), Default::default()).unwrap();
        store.committer.set_linger(LONG_LINGER);
        (dir, store, rounds)
    }

    async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("{what}: no answer in {PATIENCE:?}"))
    }

    /// An answer queued while the commit thread is idle, once its round lingers for company.
    fn lingering_answer(store: &Store, n: usize) -> super::Answer<usize> {
        store.committer.wait_until_idle();
        let answer = store.transition_unhurried(move |_| Ok(Change::only(n))).unwrap();
        store.committer.wait_until_lingering();
        answer
    }

    /// An answer that finds the commit thread idle lingers for the next request in a hurry (here one
    /// queued only once the answer's round has begun) and is made durable in its round: one flush for both.
    #[tokio::test]
    async fn an_unhurried_transition_lingers_for_the_next_hurried_request() {
        let (_dir, store, rounds) = counted();
        let unhurried = lingering_answer(&store, 1);
        let hurried = store.transition(|_| Ok(Change::only(2))).unwrap();
        assert_eq!(within("the answer", unhurried.wait()).await.unwrap(), 1);
        assert_eq!(hurried.wait().await.unwrap(), 2);
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
    }

    /// A slot that waits for its answers hurries them: while the round lingers, and also when the hurry
    /// comes before the answer reaches the commit thread.
    #[tokio::test]
    async fn a_hurry_ends_a_linger_and_is_kept_for_an_answer_still_to_come() {
        let (_dir, store, _rounds) = counted();
        let unhurried = lingering_answer(&store, 1);
        store.hurry();
        assert_eq!(within("the lingering answer", unhurried.wait()).await.unwrap(), 1);
        store.committer.wait_until_idle();
        store.hurry();
        let unhurried = store.transition_unhurried(|_| Ok(Change::only(2))).unwrap();
        assert_eq!(within("the answer hurried before it came", unhurried.wait()).await.unwrap(), 2);
    }

    /// Holds the commit thread in a round of its own until the returned sender is dropped, so that what is
    /// queued meanwhile is all there when the next round begins.
    fn hold_the_commit_thread(store: &Store) -> mpsc::Sender<()> {
        let (running, is_running) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        drop(store.transition(move |_| {
            running.send(()).unwrap();
            let _ = released.recv();
            Ok(Change::only(()))
        }));
        is_running.recv().unwrap();
        release
    }

    /// A busy commit thread does not linger: answers queued during a round go in the next one at once, in
    /// order, together.
    #[tokio::test]
    async fn answers_queued_while_the_commit_thread_is_busy_do_not_linger() {
        let (_dir, store, rounds) = counted();
        let held = hold_the_commit_thread(&store);
        let answers: Vec<_> =
            (0..3).map(|n| store.transition_unhurried(move |_| Ok(Change::only(n))).unwrap()).collect();
        drop(held);
        for (n, answer) in answers.into_iter().enumerate() {
            assert_eq!(within("an answer", answer.wait()).await.unwrap(), n);
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2, "the held round, then the three together");
    }
}
