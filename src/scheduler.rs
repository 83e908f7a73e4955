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
//! - A delivery taken by [`Scheduler::next`] is in flight until [`Scheduler::finished`].
//! - Queues of subscriptions not in the config may hold deliveries: the lifecycle owner cancels them
//!   after the removal grace period (SPEC §7), and their worker takes nothing from them meanwhile.
//!
//! - Due times here are on the monotonic clock ([`crate::clock::mono_ms`]); the lifecycle owner converts
//!   the stored wall-clock times when it queues a delivery.
//!
//! The store stays the source of truth: this index is rebuilt from it at start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
}

#[derive(Default)]
struct Queue {
    /// Due time → delivery, for unordered subscriptions.
    by_due: BTreeSet<(u64, DeliveryId)>,
    /// Delivery → due time; ids sort in acceptance order, for ordered subscriptions.
    by_id: BTreeMap<DeliveryId, u64>,
    in_flight: BTreeSet<DeliveryId>,
    wake: Arc<Notify>,
}

impl Queue {
    fn remove(&mut self, id: DeliveryId) -> bool {
        match self.by_id.remove(&id) {
            Some(due) => {
                self.by_due.remove(&(due, id));
                true
            }
            None => false,
        }
    }

    /// Queues `id` due at `due_ms`, moving it if it is queued already; refuses one in flight.
    fn insert(&mut self, id: DeliveryId, due_ms: u64) -> bool {
        if self.in_flight.contains(&id) {
            return false;
        }
        if let Some(earlier) = self.by_id.insert(id, due_ms) {
            self.by_due.remove(&(earlier, id));
        }
        self.by_due.insert((due_ms, id));
        true
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
    pub fn enqueue(&self, subscription: &str, id: DeliveryId, due_ms: u64) -> bool {
        self.enqueue_all(subscription, [(id, due_ms)]) == 1
    }

    /// [`Scheduler::enqueue`] for many deliveries of one subscription at once; returns how many it took.
    pub fn enqueue_all(&self, subscription: &str, deliveries: impl IntoIterator<Item = (DeliveryId, u64)>) -> usize {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        let taken = deliveries.into_iter().filter(|&(id, due_ms)| queue.insert(id, due_ms)).count();
        queue.wake.notify_one();
        taken
    }

    /// Takes the next delivery to attempt, if one is due and a slot is free. Unordered subscriptions take
    /// the earliest due; ordered ones take the oldest accepted and run one at a time.
    pub fn next(&self, subscription: &str, concurrency: usize, ordered: bool, now_ms: u64) -> Next {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        let limit = if ordered { 1 } else { concurrency };
        if queue.in_flight.len() >= limit {
            return Next::Wait;
        }
        let head = if ordered {
            queue.by_id.first_key_value().map(|(&id, &due)| (due, id))
        } else {
            queue.by_due.first().copied()
        };
        match head {
            None => Next::Wait,
            Some((due, _)) if due > now_ms => Next::WaitUntil(due),
            Some((_, id)) => {
                queue.remove(id);
                queue.in_flight.insert(id);
                Next::Start(id)
            }
        }
    }

    /// Ends an attempt started by [`Scheduler::next`]; `retry_at` puts the delivery back, due then.
    pub fn finished(&self, subscription: &str, id: DeliveryId, retry_at: Option<u64>) {
        let mut queues = self.lock();
        let queue = entry(&mut queues, subscription);
        queue.in_flight.remove(&id);
        if let Some(due) = retry_at {
            queue.insert(id, due);
        }
        queue.wake.notify_one();
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

    /// Whether a delivery is queued or in flight, and how often it is held (0 or 1 while the invariants
    /// hold): for the model test.
    pub fn holds(&self, subscription: &str, id: DeliveryId) -> usize {
        let queues = self.lock();
        let Some(queue) = queues.get(subscription) else { return 0 };
        let queued = queue.by_due.iter().filter(|(_, queued)| *queued == id).count();
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
        scheduler.enqueue("s", id[0], 300);
        scheduler.enqueue("s", id[1], 100);
        scheduler.enqueue("s", id[2], 200);
        assert_eq!(scheduler.next("s", 2, false, 50), Next::WaitUntil(100));
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Start(id[1]));
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Start(id[2]));
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Wait, "concurrency 2 reached");
        scheduler.finished("s", id[1], None);
        assert_eq!(scheduler.next("s", 2, false, 1000), Next::Start(id[0]));
    }

    #[test]
    fn ordered_waits_for_the_oldest_even_when_later_ones_are_due() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 100);
        scheduler.enqueue("s", id[1], 100);
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
        scheduler.enqueue_all("a", [(id[0], 9), (id[3], 1)]);
        scheduler.enqueue_all("b", [(id[1], 5), (id[4], 0), (id[2], 3)]);
        scheduler.enqueue_all("c", [(id[5], 0)]);
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
            scheduler.enqueue("s", delivery, 0);
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
        assert!(scheduler.enqueue("s", id, 10));
        assert!(scheduler.enqueue("s", id, 20), "a queued delivery moves to its new due time");
        assert_eq!(scheduler.holds("s", id), 1);
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Start(id));
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Wait, "no stale entry starts it again");
        assert!(!scheduler.enqueue("s", id, 30), "a delivery in flight is not queued besides");
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Wait);
        assert_eq!(scheduler.holds("s", id), 1);
        scheduler.finished("s", id, Some(40));
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Start(id));
    }

    #[test]
    fn remove_takes_a_queued_delivery_but_not_one_in_flight() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 0);
        scheduler.enqueue("s", id[1], 5);
        assert_eq!(scheduler.next("s", 8, false, 1), Next::Start(id[0]));
        assert!(!scheduler.remove("s", id[0]));
        assert!(scheduler.remove("s", id[1]));
        assert_eq!(scheduler.next("s", 8, false, 100), Next::Wait);
        assert!(!scheduler.remove("unknown", id[1]));
    }

    #[test]
    fn queues_are_per_subscription() {
        let scheduler = Scheduler::default();
        let id = ids(1);
        scheduler.enqueue("a", id[0], 0);
        assert_eq!(scheduler.next("b", 1, false, 10), Next::Wait);
        assert_eq!(scheduler.queued("a"), 1);
        assert_eq!(scheduler.next("a", 1, false, 10), Next::Start(id[0]));
        assert_eq!(scheduler.queued("a"), 0);
    }
}
