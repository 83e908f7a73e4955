//! Recovery at start: the queues, the backlog count and the failed gauge are rebuilt from the store, and
//! the store's status index is checked against the statuses found.
//! Every pending delivery is queued again at its due time; those whose attempt was in flight at a crash
//! are due at once (their due time is in the past). Deliveries of a subscription that is not in the
//! config wait for it for the removal grace period, as after a reload.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tracing::warn;

use super::{blocking, Deliveries};
use crate::store::{Change, DeliveryId, DeliveryStatus, StoreError};
use crate::str_map::entry;

#[derive(Debug, Default)]
pub struct Recovered {
    /// Unfinished deliveries, queued again.
    pub pending: u64,
    /// Of those, the ones whose subscription is not in the config.
    pub unconfigured: u64,
    /// Damaged delivery records moved aside.
    pub quarantined: usize,
    /// Delivery records found, whatever their status (for the ledger check).
    pub deliveries: u64,
}

impl Deliveries {
    /// Rebuilds the in-memory state from the store; call once, before any other transition.
    pub async fn recover(self: &Arc<Self>) -> Result<Recovered, StoreError> {
        /// One scan thread's findings, merged once all are done (no shared locks while scanning).
        #[derive(Default)]
        struct Found {
            pending: HashMap<String, Vec<(DeliveryId, u64, Option<u64>)>>,
            failed: HashMap<String, i64>,
            /// Failed and cancelled deliveries: what the status index must hold.
            indexed: Vec<(DeliveryStatus, DeliveryId)>,
            deliveries: u64,
        }
        let store = self.store.clone();
        let (found, damaged) = blocking(move || {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
            store.scan_delivery_states(threads, Found::default, |found, id, state| {
                found.deliveries += 1;
                let subscription = state.subscription.as_ref();
                match state.status {
                    DeliveryStatus::Failed => {
                        *entry(&mut found.failed, subscription) += 1;
                        found.indexed.push((DeliveryStatus::Failed, id));
                    }
                    DeliveryStatus::Cancelled => found.indexed.push((DeliveryStatus::Cancelled, id)),
                    DeliveryStatus::Pending => {
                        let due = state.next_attempt_at.unwrap_or(0);
                        entry(&mut found.pending, subscription).push((id, due, state.order_key));
                    }
                    DeliveryStatus::Delivered => {}
                }
            })
        })
        .await?;
        let mut recovered = Recovered { quarantined: self.quarantine(damaged).await?, ..Recovered::default() };
        let paused_unconfigured = self.recover_pauses().await?;
        let config = self.config.load_full();
        let to_mono = crate::clock::ToMono::now();
        // Grace periods start once every scan thread's findings are queued: a short one must not end
        // while part of a queue is still to come.
        let mut unconfigured: HashSet<String> = paused_unconfigured.into_iter().collect();
        let mut indexed = HashSet::new();
        for found in found {
            recovered.deliveries += found.deliveries;
            indexed.extend(found.indexed);
            for (subscription, deliveries) in found.pending {
                let deliveries = deliveries.into_iter().map(|(id, due_ms, key)| (id, to_mono.convert(due_ms), key));
                let count = self.scheduler.enqueue_all(&subscription, deliveries) as u64;
                recovered.pending += count;
                if config.subscription(&subscription).is_none() {
                    recovered.unconfigured += count;
                    unconfigured.insert(subscription);
                }
            }
            for (subscription, count) in found.failed {
                self.metrics.failed(&subscription, count);
            }
        }
        self.fix_status_index(indexed).await?;
        self.backlog.add(recovered.pending);
        for subscription in unconfigured {
            self.watch_removed(&subscription);
        }
        Ok(recovered)
    }
}

/// Index corrections per transition (normally there are none).
const INDEX_FIXES_PER_TRANSITION: usize = 4096;

impl Deliveries {
    /// Makes the status index hold exactly `expected` (see [`crate::store`]'s status index invariants).
    async fn fix_status_index(&self, expected: HashSet<(DeliveryStatus, DeliveryId)>) -> Result<(), StoreError> {
        let store = self.store.clone();
        let entries: HashSet<_> = blocking(move || store.status_index_entries()).await?.into_iter().collect();
        let add: Vec<_> = expected.difference(&entries).copied().collect();
        let remove: Vec<_> = entries.difference(&expected).copied().collect();
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        // Entries are written with their records, and built by the format upgrade for older stores: a
        // difference means something else changed the store.
        warn!(
            added = add.len(),
            removed = remove.len(),
            "Status index of failed and cancelled deliveries corrected: it did not match the deliveries."
        );
        let fixes = add.chunks(INDEX_FIXES_PER_TRANSITION).map(|add| (add.to_vec(), Vec::new()));
        let fixes = fixes.chain(remove.chunks(INDEX_FIXES_PER_TRANSITION).map(|remove| (Vec::new(), remove.to_vec())));
        for (add, remove) in fixes {
            self.store
                .transition(move |records| {
                    records.fix_status_index(&add, &remove);
                    Ok(Change::only(()))
                })?
                .wait()
                .await?;
        }
        Ok(())
    }
}
