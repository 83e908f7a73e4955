//! Create: accepted events and their deliveries. The idempotency check runs in the transition, so a
//! repeat of an id is decided against everything accepted before it, durable or not, without a lock of
//! ingest's own and without a store read on an async worker.

use std::sync::Arc;

use super::Deliveries;
use crate::store::{Accepted, Answer, Change, EventRecord, StoreError};

/// An event ingest has built the records for.
pub struct Candidate {
    pub accepted: Accepted,
    /// `accepted` encoded ([`Accepted::encode`]), by ingest's task rather than the commit thread.
    pub encoded: crate::store::Writes,
    /// The producer gave the id: a known event under it is answered instead of stored again.
    pub producer_id: bool,
}

/// What became of a request's events.
#[derive(Debug)]
pub enum Created {
    /// For each candidate, in order: `None` when stored now, or the event already known under its id.
    Stored(Vec<Option<EventRecord>>),
    /// This id is known with a different body; nothing was stored.
    Conflict(String),
    /// Storing them would pass `max_pending` (the count of unfinished deliveries); nothing was stored.
    Backlogged(u64),
}

impl Deliveries {
    /// Stores the new events among `candidates` with their deliveries, all or nothing, and queues the
    /// deliveries once durable. Durable when the answer resolves.
    pub fn create(
        self: &Arc<Self>,
        candidates: Vec<Candidate>,
        max_pending: u64,
    ) -> Result<Answer<Created>, StoreError> {
        let owner = Arc::clone(self);
        self.store.transition(move |records| {
            let mut known = Vec::with_capacity(candidates.len());
            for candidate in &candidates {
                let event = &candidate.accepted.event;
                let earlier = if candidate.producer_id { records.event(&event.id)? } else { None };
                if let Some(earlier) = &earlier {
                    if earlier.fingerprint != event.fingerprint {
                        return Ok(Change::only(Created::Conflict(event.id.clone())));
                    }
                }
                known.push(earlier);
            }
            let new_deliveries: u64 = candidates
                .iter()
                .zip(&known)
                .filter(|(_, known)| known.is_none())
                .map(|(candidate, _)| candidate.accepted.deliveries.len() as u64)
                .sum();
            // Nothing new to count (repeats, events no subscription takes) is never refused for capacity.
            if new_deliveries > 0 && !owner.backlog.try_reserve(new_deliveries, max_pending) {
                return Ok(Change::only(Created::Backlogged(owner.backlog.unfinished())));
            }
            let mut fresh: Vec<Accepted> = Vec::with_capacity(candidates.len());
            for (candidate, known) in candidates.into_iter().zip(&known) {
                if known.is_none() {
                    records.put_accepted(candidate.encoded);
                    fresh.push(candidate.accepted);
                }
            }
            let fresh = Arc::new(fresh);
            let (queued, taken_back) = (Arc::clone(&owner), Arc::clone(&owner));
            let (to_queue, to_take_back) = (Arc::clone(&fresh), fresh);
            Ok(Change {
                answer: Created::Stored(known),
                then: Box::new(move || {
                    for delivery in to_queue.iter().flat_map(|a| &a.deliveries) {
                        queued.queue(&delivery.subscription, delivery.id, delivery.created_at);
                    }
                }),
                otherwise: Box::new(move || {
                    // Not durable: take the events back, so that a refused event leaves nothing.
                    taken_back.backlog.release(new_deliveries);
                    if let Err(error) = taken_back.store.remove_accepted(&to_take_back) {
                        tracing::error!(
                            %error,
                            "Cannot take back events whose commit failed; they may be delivered after a restart."
                        );
                    }
                }),
            })
        })
    }
}
