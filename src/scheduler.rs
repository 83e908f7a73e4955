//! Which deliveries are due, per subscription: an in-memory index over the store's pending deliveries.
//!
//! # Invariants
//! - Every entry is a delivery that is `pending` on disk, or was when the lifecycle owner
//!   ([`crate::lifecycle`]) put it here; only the owner adds or removes entries, always after the
//!   transition that justifies it is durable (or, for removals, decided), and in the order of those
//!   transitions.
//! - A delivery is here at most once: queued (in `by_id` and `by_due`, with the same due time in both)
//!   or in flight, never both, never twice. [`Scheduler::enqueue`] of a queued delivery moves it to its
//!   new due time; of a delivery in flight it is refused, so no delivery is ever attempted twice at once.
//! - A delivery taken by [`Scheduler::next`] is in flight until [`Scheduler::finished`]. Between the two
//!   it may be *recording* ([`Scheduler::answered`]): its receiver has answered and the result is being
//!   committed. A recording attempt holds no slot of `concurrency`, so the slot starts its next attempt
//!   during the commit: at most `concurrency` attempts are sending, and at most `2 × concurrency` are in
//!   flight (sending or recording), which is what a crash can repeat (after a reload that lowers
//!   `concurrency`, twice the old value until those attempts end). An ordered subscription and an order key
//!   wait for the recording attempt to finish: the next delivery must not pass a retry.
//! - Queues of subscriptions not in the config may hold deliveries: the lifecycle owner cancels them
//!   after the removal grace period (SPEC §7), and their worker takes nothing from them meanwhile.
//!
//! - Due times here are on the monotonic clock ([`crate::clock::mono_ms`]); the lifecycle owner converts
//!   the stored wall-clock times when it queues a delivery.
//!
//! The store stays the source of truth: this index is rebuilt from it at start.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::store::DeliveryId;
use crate::str_map::entry;

/// What a subscription's worker should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Attempt this delivery now; call [`Scheduler::finished`] when done.
    Start(DeliveryId),
    /// Nothing is due before this time (monotonic ms).
    WaitUntil(u64),
    /// Nothing to do until notified (empty queue, or the concurrency limit is reached).
    Wait,
    /// Nothing may start until an attempt being recorded is finished ([`Scheduler::answered`]): the
    /// worker asks the store to commit now rather than let the round linger, then waits to be notified.
    WaitForCommit,
}

#[derive(Default)]
struct Queue {
    /// Due time → delivery, for unordered subscriptions: the queued deliveries that may start (those
    /// whose order key has an earlier unfinished delivery wait in `by_id` only).
    by_due: BTreeSet<(u64, DeliveryId)>,
    /// Delivery → due time: every queued delivery; ids sort in acceptance order, for ordered subscriptions.
    by_id: BTreeMap<DeliveryId, u64>,
    in_flight: BTreeSet<DeliveryId>,
    /// Of `in_flight`, the attempts answered whose result is being committed (see the invariants).
    recording: HashSet<DeliveryId>,
    /// `order_key`: the unfinished deliveries (queued or in flight) of each key.
    keys: OrderKeys,
    wake: Arc<Notify>,
}

/// Deliveries by order key (SPEC §6c `order_key`): of a key's unfinished deliveries only the oldest
/// (its head) may start, and only while none of the key is in flight (a requeued older delivery becomes
/// the head while a younger one is out: it waits for that one). When a delivery leaves for good the next
/// becomes the head.
#[derive(Default)]
struct OrderKeys {
    key_of: HashMap<DeliveryId, u64>,
    /// Each key's unfinished deliveries, queued or in flight.
    members: HashMap<u64, BTreeSet<DeliveryId>>,
    /// The keys with a delivery in flight (never more than one each: see `may_start`).
    busy: HashSet<u64>,
}

impl OrderKeys {
    fn head(&self, key: u64) -> Option<DeliveryId> {
        self.members.get(&key).and_then(|m| m.first().copied())
    }

    /// Whether `id` may start as far as its key goes.
    fn may_start(&self, id: DeliveryId) -> bool {
        self.key_of.get(&id).is_none_or(|&key| self.head(key) == Some(id) && !self.busy.contains(&key))
    }
}

impl Queue {
    fn remove(&mut self, id: DeliveryId) -> bool {
        match self.by_id.remove(&id) {
            Some(due) => {
                self.by_due.remove(&(due, id));
                self.release_key(id);
                true
            }
            None => false,
        }
    }

    /// Queues `id` due at `due_ms`, moving it if it is queued already; refuses one in flight. `key` is its
    /// order key (a delivery handed back after an attempt keeps the one it has).
    fn insert(&mut self, id: DeliveryId, due_ms: u64, key: Option<u64>) -> bool {
        if self.in_flight.contains(&id) {
            return false;
        }
        if let Some(earlier) = self.by_id.insert(id, due_ms) {
            self.by_due.remove(&(earlier, id));
        }
        if let Some(key) = key {
            self.take_key(id, key);
        }
        if self.keys.may_start(id) {
            self.by_due.insert((due_ms, id));
        }
        true
    }

    /// Takes the queued delivery `id` (due at `due`) out to start it; it keeps its order key.
    fn start(&mut self, due: u64, id: DeliveryId) {
        self.by_id.remove(&id);
        self.by_due.remove(&(due, id));
        self.in_flight.insert(id);
        if let Some(&key) = self.keys.key_of.get(&id) {
            self.keys.busy.insert(key);
        }
    }

    /// Ends the attempt of `id`: back in the queue due at `retry_at`, or gone for good.
    fn finish(&mut self, id: DeliveryId, retry_at: Option<u64>) {
        self.recording.remove(&id);
        let was_in_flight = self.in_flight.remove(&id);
        let key = self.keys.key_of.get(&id).copied();
        if let Some(key) = key.filter(|_| was_in_flight) {
            self.keys.busy.remove(&key);
        }
        match retry_at {
            Some(due) => {
                self.insert(id, due, None);
            }
            None => self.release_key(id),
        }
        if let Some(key) = key {
            self.wake_head(key);
        }
    }

    /// Counts `id` among its key's unfinished deliveries; an older delivery of the key (a requeued one)
    /// becomes its head, and the head it replaces waits again unless it is in flight.
    fn take_key(&mut self, id: DeliveryId, key: u64) {
        if self.keys.key_of.insert(id, key).is_some() {
            return;
        }
        let before = self.keys.head(key);
        self.keys.members.entry(key).or_default().insert(id);
        if let Some(before) = before.filter(|&before| before != id && self.keys.head(key) == Some(id)) {
            if let Some(&due) = self.by_id.get(&before) {
                self.by_due.remove(&(due, before));
            }
        }
    }

    /// `id` is finished (or taken out): its key's next delivery may start.
    fn release_key(&mut self, id: DeliveryId) {
        let Some(key) = self.keys.key_of.remove(&id) else { return };
        let Some(members) = self.keys.members.get_mut(&key) else { return };
        members.remove(&id);
        if members.is_empty() {
            self.keys.members.remove(&key);
        }
        self.wake_head(key);
    }

    /// Lets the head of `key` start if it is queued and nothing of the key is in flight.
    fn wake_head(&mut self, key: u64) {
        if let Some(head) = self.keys.head(key).filter(|&head| self.keys.may_start(head)) {
            if let Some(&due) = self.by_id.get(&head) {
                self.by_due.insert((due, head));
            }
        }
    }

    /// Checks the order-key bookkeeping against its definition (for the model test): `by_due` holds exactly
    /// the queued deliveries that may start, each key's members are its queued and in-flight deliveries,
    /// and its busy count is its deliveries in flight.
    fn check(&self) -> Result<(), String> {
        for (&id, &due) in &self.by_id {
            let listed = self.by_due.contains(&(due, id));
            if listed != self.keys.may_start(id) {
                return Err(format!("{id}: in by_due {listed}, may start {}", self.keys.may_start(id)));
            }
        }
        if let Some(id) = self.recording.iter().find(|id| !self.in_flight.contains(id)) {
            return Err(format!("{id} is recording but not in flight"));
        }
        if self.by_due.len() > self.by_id.len() {
            return Err("by_due holds a delivery that is not queued".into());
        }
        for (&key, members) in &self.keys.members {
            for id in members {
                if !self.by_id.contains_key(id) && !self.in_flight.contains(id) {
                    return Err(format!("{id} holds key {key} but is neither queued nor in flight"));
                }
            }
            let busy = members.iter().filter(|id| self.in_flight.contains(id)).count();
            if busy > 1 {
                return Err(format!("key {key}: {busy} deliveries in flight at once"));
            }
            if (busy == 1) != self.keys.busy.contains(&key) {
                return Err(format!("key {key}: {busy} in flight, marked busy {}", self.keys.busy.contains(&key)));
            }
        }
        Ok(())
    }
}

/// Per-subscription queues of pending deliveries.
#[derive(Default)]
pub struct Scheduler {
    queues: Mutex<HashMap<String, Queue>>,
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // Nothing under this lock can leave a queue half-changed, so a poisoned lock is still consistent.
        self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a pending delivery due at `due_ms` and wakes the subscription's worker. Returns false, and
    /// changes nothing, if the delivery is in flight (see the invariants).
    /// `order_key` is the delivery's order key, if it has one.
    pub fn enqueue(&self, subscription: &str, id: DeliveryId, due_ms: u64, order_key: Option<u64>) -> bool {
        self.enqueue_all(subscription, [(id, due_ms, order_key)]) == 1
    }

    /// [`Scheduler::enqueue`] for many deliveries of one subscription at once; returns how many it took.
    pub fn enqueue_all(
        &self,
        subscription: &str,
        deliveries: impl IntoIterator<Item = (DeliveryId, u64, Option<u64>)>,
    ) -> usize {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        let taken = deliveries.into_iter().filter(|&(id, due_ms, key)| queue.insert(id, due_ms, key)).count();
        queue.wake.notify_one();
        taken
    }

    /// Takes the next delivery to attempt, if one is due and a slot is free. Unordered subscriptions take
    /// the earliest due; ordered ones take the oldest accepted and run one at a time.
    pub fn next(&self, subscription: &str, concurrency: usize, ordered: bool, now_ms: u64) -> Next {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        // An ordered subscription's next delivery waits for the one being recorded too (it may retry first).
        let (sending_limit, unrecorded_limit) = if ordered { (1, 1) } else { (concurrency, 2 * concurrency) };
        let sending = queue.in_flight.len() - queue.recording.len();
        if sending >= sending_limit {
            return Next::Wait;
        }
        let head = if ordered {
            queue.by_id.first_key_value().map(|(&id, &due)| (due, id))
        } else {
            queue.by_due.first().copied()
        };
        match head {
            // Queued deliveries wait behind their order keys, maybe behind one being recorded.
            None if !queue.recording.is_empty() && queue.by_id.len() > queue.by_due.len() => Next::WaitForCommit,
            None => Next::Wait,
            Some((due, _)) if due > now_ms => Next::WaitUntil(due),
            // Due, but the attempts being recorded fill what may be unrecorded at once.
            Some(_) if queue.in_flight.len() >= unrecorded_limit => Next::WaitForCommit,
            Some((due, id)) => {
                queue.start(due, id);
                Next::Start(id)
            }
        }
    }

    /// Ends an attempt started by [`Scheduler::next`]; `retry_at` puts the delivery back, due then.
    pub fn finished(&self, subscription: &str, id: DeliveryId, retry_at: Option<u64>) {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        queue.finish(id, retry_at);
        queue.wake.notify_one();
    }

    /// The receiver of an attempt in flight has answered and its result is being committed: its slot may
    /// start the next attempt meanwhile (see the invariants). The delivery stays in flight until
    /// [`Scheduler::finished`].
    pub fn answered(&self, subscription: &str, id: DeliveryId) {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        if queue.in_flight.contains(&id) && queue.recording.insert(id) {
            queue.wake.notify_one();
        }
    }

    /// Takes a queued delivery out (its event was erased); says whether it was queued. One in flight
    /// stays in flight: its attempt's result finds the delivery cancelled.
    pub fn remove(&self, subscription: &str, id: DeliveryId) -> bool {
        self.lock().get_mut(subscription).is_some_and(|queue| queue.remove(id))
    }

    /// The signal a subscription's worker waits on.
    pub fn wake_signal(&self, subscription: &str) -> Arc<Notify> {
        let mut queues = self.lock();
        entry(&mut queues, subscription).wake.clone()
    }

    /// Up to `limit` queued (not in flight) deliveries of a subscription, oldest first.
    pub fn queued_ids(&self, subscription: &str, limit: usize) -> Vec<DeliveryId> {
        let queues = self.lock();
        queues.get(subscription).map_or_else(Vec::new, |queue| queue.by_id.keys().take(limit).copied().collect())
    }

    /// Up to `limit` deliveries queued or in flight, of the subscriptions `wanted` accepts, with ids after
    /// `after`, oldest first: the pending deliveries an operator lists (every one of them is here).
    pub fn unfinished_after(
        &self,
        after: Option<DeliveryId>,
        limit: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<DeliveryId> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        let queues = self.lock();
        let mut ids: Vec<DeliveryId> = queues
            .iter()
            .filter(|(name, _)| wanted(name))
            .flat_map(|(_, queue)| {
                let queued = queue.by_id.range((from, Unbounded)).map(|(&id, _)| id).take(limit);
                queued.chain(queue.in_flight.range((from, Unbounded)).copied().take(limit))
            })
            .collect();
        drop(queues);
        ids.sort_unstable();
        ids.truncate(limit);
        ids
    }

    /// Makes a subscription's worker look at its queue again (its pause began or ended).
    pub fn wake(&self, subscription: &str) {
        if let Some(queue) = self.lock().get(subscription) {
            queue.wake.notify_one();
        }
    }

    /// Attempts of a subscription in flight: sending, or answered and being recorded.
    pub fn in_flight(&self, subscription: &str) -> usize {
        self.lock().get(subscription).map_or(0, |queue| queue.in_flight.len())
    }

    /// Makes every worker look at its queue again, e.g. after a config change of concurrency or `enabled`.
    pub fn wake_all(&self) {
        for queue in self.lock().values() {
            queue.wake.notify_one();
        }
    }

    /// Per subscription: deliveries queued or in flight, and the oldest one's creation time (Unix ms, from
    /// its ULID).
    pub fn unfinished(&self) -> Vec<(String, usize, Option<u64>)> {
        let queues = self.lock();
        let mut all: Vec<_> = queues
            .iter()
            .map(|(name, queue)| {
                let oldest = [queue.by_id.keys().next(), queue.in_flight.first()].into_iter().flatten().min();
                (name.clone(), queue.by_id.len() + queue.in_flight.len(), oldest.map(|id| id.0.timestamp_ms()))
            })
            .collect();
        all.sort();
        all
    }

    /// Deliveries waiting (not in flight) for a subscription.
    pub fn queued(&self, subscription: &str) -> usize {
        self.lock().get(subscription).map_or(0, |q| q.by_id.len())
    }

    /// Whether a delivery is queued or in flight.
    pub fn is_held(&self, subscription: &str, id: DeliveryId) -> bool {
        let queues = self.lock();
        queues.get(subscription).is_some_and(|queue| queue.by_id.contains_key(&id) || queue.in_flight.contains(&id))
    }

    /// Checks every queue's order-key bookkeeping (see `Queue::check`), for the model test.
    pub fn check_order_keys(&self) -> Result<(), String> {
        self.lock().iter().try_for_each(|(name, queue)| queue.check().map_err(|e| format!("{name}: {e}")))
    }

    /// Whether a delivery is queued or in flight, and how often it is held (0 or 1 while the invariants
    /// hold): for the model test.
    pub fn holds(&self, subscription: &str, id: DeliveryId) -> usize {
        let queues = self.lock();
        let Some(queue) = queues.get(subscription) else { return 0 };
        let mut queued = queue.by_due.iter().filter(|(_, queued)| *queued == id).count();
        if queued == 0 && queue.by_id.contains_key(&id) {
            queued = 1; // waiting behind an earlier delivery of its order key
        }
        queued + usize::from(queue.in_flight.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<DeliveryId> {
        let mut generator = ulid::Generator::new();
        (0..n).map(|_| DeliveryId(generator.generate().unwrap())).collect()
    }

    #[test]
    fn unordered_takes_earliest_due_within_concurrency() {
        let scheduler = Scheduler::default();
        let id = ids(3);
        scheduler.enqueue("s", id[0], 300, None);
        scheduler.enqueue("s", id[1], 100, None);
        scheduler.enqueue("s", id[2], 200, None);
        assert_eq!(scheduler.next("s", 2, false, 50), Next::WaitUntil(100));
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Start(id[1]));
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Start(id[2]));
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Wait, "concurrency 2 reached");
        scheduler.finished("s", id[1], None);
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Start(id[0]));
    }

    /// Pipelined slots: an answered attempt frees its slot while its result is committed, and no more than
    /// twice `concurrency` are in flight (sending or recording).
    #[test]
    fn an_answered_attempt_frees_its_slot_within_twice_the_concurrency() {
        let scheduler = Scheduler::default();
        let id = ids(6);
        for &delivery in &id {
            scheduler.enqueue("s", delivery, 0, None);
        }
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Start(id[0]));
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Start(id[1]));
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Wait, "both slots sending");
        scheduler.answered("s", id[0]);
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Start(id[2]), "id[0]'s slot goes on while it records");
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Wait);
        scheduler.answered("s", id[1]);
        scheduler.answered("s", id[1]);
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Start(id[3]));
        scheduler.answered("s", id[2]);
        assert_eq!(scheduler.next("s", 2, false, 1), Next::WaitForCommit, "three recording, one sending: not a fifth");
        assert_eq!(scheduler.in_flight("s"), 4);
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Start(id[4]));
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Wait, "two sending");
        scheduler.answered("s", id[5]);
        assert_eq!(scheduler.in_flight("s"), 4, "answered for a delivery not in flight changes nothing");
        scheduler.check_order_keys().expect("nothing recording that is not in flight");
        scheduler.finished("s", id[1], Some(0));
        assert!(scheduler.is_held("s", id[1]), "a retry is queued again, its recording mark gone");
        assert_eq!(scheduler.next("s", 2, false, 1), Next::Wait, "id[3] and id[4] sending");
    }

    #[test]
    fn an_ordered_subscription_waits_for_the_attempt_being_recorded() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 0, None);
        scheduler.enqueue("s", id[1], 0, None);
        assert_eq!(scheduler.next("s", 8, true, 1), Next::Start(id[0]));
        scheduler.answered("s", id[0]);
        assert_eq!(scheduler.next("s", 8, true, 1), Next::WaitForCommit, "its result may be a retry that goes first");
        scheduler.finished("s", id[0], Some(0));
        assert_eq!(scheduler.next("s", 8, true, 1), Next::Start(id[0]));
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 8, true, 1), Next::Start(id[1]));
        scheduler.answered("s", id[1]);
        assert_eq!(scheduler.next("s", 8, true, 1), Next::Wait, "nothing queued: no hurry, the answer may linger");
    }

    #[test]
    fn an_order_key_waits_for_the_attempt_being_recorded() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 0, Some(3));
        scheduler.enqueue("s", id[1], 0, Some(3));
        assert_eq!(scheduler.next("s", 8, false, 1), Next::Start(id[0]));
        scheduler.answered("s", id[0]);
        assert_eq!(scheduler.next("s", 8, false, 1), Next::WaitForCommit);
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 8, false, 1), Next::Start(id[1]));
    }

    #[test]
    fn ordered_waits_for_the_oldest_even_when_later_ones_are_due() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 100, None);
        scheduler.enqueue("s", id[1], 100, None);
        assert_eq!(scheduler.next("s", 8, true, 100), Next::Start(id[0]));
        assert_eq!(scheduler.next("s", 8, true, 100), Next::Wait, "one at a time");
        scheduler.finished("s", id[0], Some(500));
        assert_eq!(scheduler.next("s", 8, true, 200), Next::WaitUntil(500), "the retry blocks the next one");
        assert_eq!(scheduler.next("s", 8, true, 500), Next::Start(id[0]));
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 8, true, 500), Next::Start(id[1]));
    }

    #[test]
    fn unfinished_after_pages_through_every_queue_in_id_order() {
        let scheduler = Scheduler::default();
        let id: Vec<DeliveryId> = (1..=6).map(|n| DeliveryId(ulid::Ulid(n))).collect();
        scheduler.enqueue_all("a", [(id[0], 9, None), (id[3], 1, None)]);
        scheduler.enqueue_all("b", [(id[1], 5, None), (id[4], 0, None), (id[2], 3, None)]);
        scheduler.enqueue_all("c", [(id[5], 0, None)]);
        assert_eq!(scheduler.next("b", 8, false, 10), Next::Start(id[4]));
        let wanted = |name: &str| name != "c";
        assert_eq!(scheduler.unfinished_after(None, 3, wanted), vec![id[0], id[1], id[2]]);
        assert_eq!(scheduler.unfinished_after(Some(id[2]), 3, wanted), vec![id[3], id[4]]);
        assert_eq!(scheduler.unfinished_after(Some(id[4]), 3, wanted), vec![]);
        assert_eq!(scheduler.unfinished_after(None, 9, |name| name == "c"), vec![id[5]]);
    }

    #[test]
    fn queued_ids_lists_the_waiting_deliveries_but_not_those_in_flight() {
        let scheduler = Scheduler::default();
        let id = ids(3);
        for &delivery in &id {
            scheduler.enqueue("s", delivery, 0, None);
        }
        assert_eq!(scheduler.next("s", 1, false, 10), Next::Start(id[0]));
        assert_eq!(scheduler.queued_ids("s", 8), vec![id[1], id[2]]);
        assert_eq!(scheduler.queued_ids("s", 1), vec![id[1]]);
        assert!(scheduler.queued_ids("unknown", 8).is_empty());
    }

    /// Regression: `enqueue_all` of a queued id left its old `(due, id)` entry behind, and `next` later
    /// started the delivery a second time from that stale entry while the first attempt was in flight.
    #[test]
    fn enqueue_twice_start_once_regression() {
        let scheduler = Scheduler::default();
        let id = ids(1)[0];
        assert!(scheduler.enqueue("s", id, 10, None));
        assert!(scheduler.enqueue("s", id, 20, None), "a queued delivery moves to its new due time");
        assert_eq!(scheduler.holds("s", id), 1);
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Start(id));
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Wait, "no stale entry starts it again");
        assert!(!scheduler.enqueue("s", id, 30, None), "a delivery in flight is not queued besides");
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Wait);
        assert_eq!(scheduler.holds("s", id), 1);
        scheduler.finished("s", id, Some(40));
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Start(id));
    }

    #[test]
    fn remove_takes_a_queued_delivery_but_not_one_in_flight() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 0, None);
        scheduler.enqueue("s", id[1], 5, None);
        assert_eq!(scheduler.next("s", 8, false, 1), Next::Start(id[0]));
        assert!(!scheduler.remove("s", id[0]));
        assert!(scheduler.remove("s", id[1]));
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Wait);
        assert!(!scheduler.remove("unknown", id[1]));
    }

    #[test]
    fn an_order_key_runs_one_at_a_time_in_acceptance_order_and_other_keys_pass() {
        let scheduler = Scheduler::default();
        let id = ids(5);
        // Accepted in id order; queued out of order, as recovery's parallel scan does.
        scheduler.enqueue("s", id[2], 0, Some(7));
        scheduler.enqueue("s", id[0], 0, Some(7));
        scheduler.enqueue("s", id[1], 0, Some(9));
        scheduler.enqueue("s", id[3], 0, Some(7));
        scheduler.enqueue("s", id[4], 0, None);
        let mut started = Vec::new();
        while let Next::Start(next) = scheduler.next("s", 8, false, 10) {
            started.push(next);
        }
        started.sort();
        assert_eq!(started, vec![id[0], id[1], id[4]], "the heads of keys 7 and 9, and the unkeyed one");
        scheduler.finished("s", id[0], Some(50));
        assert_eq!(scheduler.next("s", 8, false, 10), Next::WaitUntil(50), "a retrying head holds its key back");
        assert_eq!(scheduler.next("s", 8, false, 50), Next::Start(id[0]));
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 8, false, 50), Next::Start(id[2]), "the next of key 7");
        assert_eq!(scheduler.next("s", 8, false, 50), Next::Wait);
        assert_eq!(scheduler.holds("s", id[3]), 1, "waiting behind its key is still queued");
        assert!(scheduler.remove("s", id[3]));
        scheduler.finished("s", id[2], None);
        assert_eq!(scheduler.next("s", 8, false, 50), Next::Wait);
    }

    #[test]
    fn a_requeued_older_delivery_becomes_its_keys_head() {
        let scheduler = Scheduler::default();
        let id = ids(3);
        scheduler.enqueue("s", id[1], 0, Some(1));
        scheduler.enqueue("s", id[2], 0, Some(1));
        // id[0] failed earlier and is requeued: it is the oldest unfinished delivery of the key.
        scheduler.enqueue("s", id[0], 0, Some(1));
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Start(id[0]));
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Wait, "id[1] waits for it");
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Start(id[1]));
        scheduler.check_order_keys().unwrap();
    }

    #[test]
    fn an_older_delivery_requeued_while_a_younger_one_is_out_waits_for_it() {
        let scheduler = Scheduler::default();
        let id = ids(3);
        scheduler.enqueue("s", id[1], 0, Some(1));
        scheduler.enqueue("s", id[2], 0, Some(1));
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Start(id[1]));
        scheduler.enqueue("s", id[0], 0, Some(1));
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Wait, "one of the key at a time");
        scheduler.check_order_keys().unwrap();
        scheduler.finished("s", id[1], Some(20));
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Start(id[0]), "the oldest goes first");
        assert_eq!(scheduler.next("s", 8, false, 30), Next::Wait, "id[1] retries after it");
        scheduler.finished("s", id[0], None);
        assert_eq!(scheduler.next("s", 8, false, 30), Next::Start(id[1]));
        scheduler.finished("s", id[1], None);
        assert_eq!(scheduler.next("s", 8, false, 30), Next::Start(id[2]));
        scheduler.check_order_keys().unwrap();
    }

    #[test]
    fn queues_are_per_subscription() {
        let scheduler = Scheduler::default();
        let id = ids(1);
        scheduler.enqueue("a", id[0], 0, None);
        assert_eq!(scheduler.next("b", 1, false, 10), Next::Wait);
        assert_eq!(scheduler.queued("a"), 1);
        assert_eq!(scheduler.next("a", 1, false, 10), Next::Start(id[0]));
        assert_eq!(scheduler.queued("a"), 0);
    }
}
