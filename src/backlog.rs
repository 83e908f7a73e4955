//! The count of unfinished deliveries (pending, held, in flight), kept in memory for `max_pending`.
//!
//! Ingest reserves room before writing and delivery releases it when a delivery finishes; the count is
//! rebuilt from the store at start.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Backlog {
    unfinished: AtomicU64,
}

impl Backlog {
    pub fn new(unfinished: u64) -> Backlog {
        Backlog { unfinished: AtomicU64::new(unfinished) }
    }

    /// Counts `n` more unfinished deliveries unless that would pass `max`.
    pub fn try_reserve(&self, n: u64, max: u64) -> bool {
        self.unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                current.checked_add(n).filter(|total| *total <= max)
            })
            .is_ok()
    }

    /// Counts `n` more unfinished deliveries whatever the maximum (requeued by an operator).
    pub fn add(&self, n: u64) {
        self.unfinished.fetch_add(n, Ordering::AcqRel);
    }

    /// `n` deliveries finished, or a reservation was not used.
    pub fn release(&self, n: u64) {
        let _ = self.unfinished.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some(c.saturating_sub(n)));
    }

    pub fn unfinished(&self) -> u64 {
        self.unfinished.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_maximum() {
        let backlog = Backlog::new(8);
        assert!(backlog.try_reserve(2, 10));
        assert!(!backlog.try_reserve(1, 10), "10 + 1 would pass 10");
        backlog.release(3);
        assert_eq!(backlog.unfinished(), 7);
        assert!(backlog.try_reserve(3, 10));
        assert!(backlog.try_reserve(0, 10));
    }
}
