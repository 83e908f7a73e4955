//! Which deliveries are due, per subscription: an in-memory index over the store's pending deliveries.
//!
//! The store stays the source of truth; this index is rebuilt from it at start, and every entry here is a
//! pending delivery on disk. A delivery taken by a worker leaves the index until its attempt ends, so no
//! delivery is ever attempted twice at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::store::DeliveryId;
use crate::str_map::entry;

/// What a subscription's worker should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Attempt this delivery now; call [`Scheduler::finished`] when done.
    Start(DeliveryId),
    /// Nothing is due before this time (Unix ms).
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
    /// Drained because its subscription was removed: an attempt ending now must not put its delivery back
    /// (see [`Scheduler::finished`]). [`Scheduler::open`] clears it when the subscription comes back.
    closed: bool,
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
}

/// Per-subscription queues of pending deliveries.
#[derive(Default)]
pub struct Scheduler {
    queues: Mutex<HashMap<String, Queue>>,
}

impl Scheduler {
    /// Adds a pending delivery due at `due_ms` and wakes the subscription's worker.
    pub fn enqueue(&self, subscription: &str, id: DeliveryId, due_ms: u64) {
        self.enqueue_all(subscription, [(id, due_ms)]);
    }

    /// [`Scheduler::enqueue`] for many deliveries of one subscription at once (recovery at start).
    pub fn enqueue_all(&self, subscription: &str, deliveries: impl IntoIterator<Item = (DeliveryId, u64)>) {
        let mut queues = self.queues.lock().unwrap();
        let queue = entry(&mut queues, subscription);
        for (id, due_ms) in deliveries {
            queue.by_due.insert((due_ms, id));
            queue.by_id.insert(id, due_ms);
        }
        queue.wake.notify_one();
    }

    /// Takes the next delivery to attempt, if one is due and a slot is free. Unordered subscriptions take
    /// the earliest due; ordered ones take the oldest accepted and run one at a time.
    pub fn next(&self, subscription: &str, concurrency: usize, ordered: bool, now_ms: u64) -> Next {
        let mut queues = self.queues.lock().unwrap();
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
    /// Returns false when it could not: the queue was drained meanwhile (its subscription removed), and
    /// the caller must cancel the delivery, as the drain did the queued ones.
    #[must_use]
    pub fn finished(&self, subscription: &str, id: DeliveryId, retry_at: Option<u64>) -> bool {
        let mut queues = self.queues.lock().unwrap();
        let queue = entry(&mut queues, subscription);
        queue.in_flight.remove(&id);
        queue.wake.notify_one();
        match retry_at {
            Some(_) if queue.closed => false,
            Some(due) => {
                queue.by_due.insert((due, id));
                queue.by_id.insert(id, due);
                true
            }
            None => true,
        }
    }

    /// Lets a subscription's queue take deliveries again after a [`Scheduler::drain`] (the subscription
    /// is configured again).
    pub fn open(&self, subscription: &str) {
        entry(&mut self.queues.lock().unwrap(), subscription).closed = false;
    }

    /// The signal a subscription's worker waits on.
    pub fn wake_signal(&self, subscription: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap();
        entry(&mut queues, subscription).wake.clone()
    }

    /// Takes every waiting delivery of a subscription out of its queue and closes it (a removed
    /// subscription's work is cancelled); attempts in flight end on their own, and cannot come back.
    pub fn drain(&self, subscription: &str) -> Vec<DeliveryId> {
        let mut queues = self.queues.lock().unwrap();
        let Some(queue) = queues.get_mut(subscription) else { return Vec::new() };
        queue.closed = true;
        queue.by_due.clear();
        std::mem::take(&mut queue.by_id).into_keys().collect()
    }

    /// Makes every worker look at its queue again, e.g. after a config change of concurrency or `enabled`.
    pub fn wake_all(&self) {
        for queue in self.queues.lock().unwrap().values() {
            queue.wake.notify_one();
        }
    }

    /// Per subscription: deliveries queued or in flight, and the oldest one's creation time (Unix ms, from
    /// its ULID).
    pub fn unfinished(&self) -> Vec<(String, usize, Option<u64>)> {
        let queues = self.queues.lock().unwrap();
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
        self.queues.lock().unwrap().get(subscription).map_or(0, |q| q.by_id.len())
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
        assert!(scheduler.finished("s", id[1], None));
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
        assert!(scheduler.finished("s", id[0], Some(500)));
        assert_eq!(scheduler.next("s", 8, true, 200), Next::WaitUntil(500), "the retry blocks the next one");
        assert_eq!(scheduler.next("s", 8, true, 500), Next::Start(id[0]));
        assert!(scheduler.finished("s", id[0], None));
        assert_eq!(scheduler.next("s", 8, true, 500), Next::Start(id[1]));
    }

    #[test]
    fn drain_takes_the_waiting_deliveries_but_not_those_in_flight() {
        let scheduler = Scheduler::default();
        let id = ids(3);
        for &delivery in &id {
            scheduler.enqueue("s", delivery, 0);
        }
        assert_eq!(scheduler.next("s", 1, false, 10), Next::Start(id[0]));
        assert_eq!(scheduler.drain("s"), vec![id[1], id[2]]);
        assert_eq!(scheduler.queued("s"), 0);
        assert_eq!(scheduler.next("s", 8, false, 10), Next::Wait);
        assert!(scheduler.drain("unknown").is_empty());
    }

    #[test]
    fn an_attempt_ending_after_a_drain_cannot_put_its_delivery_back_until_the_queue_reopens() {
        let scheduler = Scheduler::default();
        let id = ids(2);
        scheduler.enqueue("s", id[0], 0);
        assert_eq!(scheduler.next("s", 1, false, 10), Next::Start(id[0]));
        assert!(scheduler.drain("s").is_empty());
        assert!(!scheduler.finished("s", id[0], Some(20)), "the caller must cancel it");
        assert_eq!(scheduler.queued("s"), 0);

        scheduler.open("s");
        scheduler.enqueue("s", id[1], 0);
        assert_eq!(scheduler.next("s", 1, false, 10), Next::Start(id[1]));
        assert!(scheduler.finished("s", id[1], Some(20)), "a reopened queue takes retries again");
        assert_eq!(scheduler.queued("s"), 1);
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
