//! Purge (SPEC §3 `relay.retention`): finished deliveries, their attempts, their event and its
//! idempotency key are removed once all of them are older than the retention period. Candidates are
//! found by a scan on the blocking pool, a slice at a time; each slice's transition checks every event
//! again, so a delivery requeued between the scan and the removal is never purged, nor one whose attempt
//! is still in flight.

use std::sync::Arc;

use super::{blocking, Deliveries, SLICE};
use crate::store::{Change, DeliveryStatus, StoreError};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: usize,
    pub deliveries: usize,
}

impl Deliveries {
    /// Removes every event accepted before `cutoff` (Unix ms) whose deliveries all finished before it.
    pub async fn purge(self: &Arc<Self>, cutoff: u64) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        let mut after: Option<String> = None;
        loop {
            let store = self.store.clone();
            let start = after.clone();
            let (candidates, damaged, last) = blocking(move || {
                let mut candidates = Vec::new();
                let mut damaged = Vec::new();
                let mut last = None;
                for (seen, entry) in store.events_after(start.as_deref()).enumerate() {
                    if seen == SLICE {
                        break;
                    }
                    match entry {
                        Ok(event) => {
                            last = Some(event.id.clone());
                            if event.accepted_at < cutoff {
                                candidates.push(event.id);
                            }
                        }
                        Err(StoreError::Corrupt { key, .. }) => {
                            last = Some(String::from_utf8_lossy(&key[1..]).into_owned());
                            damaged.push(key);
                        }
                        Err(error) => return Err(error),
                    }
                }
                Ok((candidates, damaged, last))
            })
            .await?;
            self.quarantine(damaged).await?;
            if !candidates.is_empty() {
                let slice = self.purge_events(candidates, cutoff).await?;
                purged.events += slice.events;
                purged.deliveries += slice.deliveries;
            }
            match last {
                Some(last) => after = Some(last),
                None => return Ok(purged),
            }
        }
    }

    async fn purge_events(self: &Arc<Self>, ids: Vec<String>, cutoff: u64) -> Result<Purged, StoreError> {
        let owner = Arc::clone(self);
        self.store
            .transition(move |records| {
                let mut purged = Purged::default();
                let mut failed: Vec<String> = Vec::new();
                for id in ids {
                    let Some(event) = records.event_metadata(&id)? else { continue };
                    if event.accepted_at >= cutoff {
                        continue;
                    }
                    let mut deliveries = Vec::with_capacity(event.deliveries.len());
                    for &delivery in &event.deliveries {
                        deliveries.extend(records.delivery(delivery)?);
                    }
                    // A cancelled delivery may still have its attempt in flight: its result is recorded first.
                    let busy = |d: &crate::store::DeliveryRecord| {
                        d.status == DeliveryStatus::Pending
                            || d.updated_at >= cutoff
                            || owner.scheduler.is_held(&d.subscription, d.id)
                    };
                    if deliveries.iter().any(busy) {
                        continue;
                    }
                    records.remove_event(&event)?;
                    failed.extend(
                        deliveries
                            .iter()
                            .filter(|d| d.status == DeliveryStatus::Failed)
                            .map(|d| d.subscription.clone()),
                    );
                    purged.events += 1;
                    purged.deliveries += deliveries.len();
                }
                let owner = Arc::clone(&owner);
                Ok(Change::then(purged, move || {
                    for subscription in failed {
                        owner.metrics.failed(&subscription, -1);
                    }
                }))
            })?
            .wait()
            .await
    }
}
