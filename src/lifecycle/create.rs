//! Create: accepted events and their deliveries. The idempotency check runs in the transition, so a
//! repeat of an id is decided against everything accepted before it, durable or not, without a lock of
//! ingest's own and without a store read on an async worker.

use std::sync::Arc;

use super::Deliveries;
use crate::store::{Accepted, Answer, Change, DeliveryId, EventRecord, Keyring, StoreError, Writes};

/// An event ingest has built the records for: what the transition needs of them, and their bytes.
pub struct Candidate {
    pub event_id: String,
    /// As [`crate::event::NewEvent::fingerprint`] computed it (the stored one may be keyed).
    pub fingerprint: String,
    /// The producer gave the id: a known event under it is answered instead of stored again.
    pub producer_id: bool,
    /// Its deliveries, to queue once durable: subscription, id, due time (Unix ms), order key.
    pub deliveries: Vec<(String, DeliveryId, u64, Option<u64>)>,
    /// The records, encoded by ingest's task rather than the commit thread.
    pub encoded: Writes,
}

impl Candidate {
    /// Encodes `accepted` (sealing its data with `keyring`) and keeps only what the transition needs; the
    /// payload lives on in the bytes only.
    pub fn new(mut accepted: Accepted, producer_id: bool, keyring: &Keyring) -> Candidate {
        let fingerprint = keyring.keyed_fingerprint(&accepted.event.fingerprint);
        let fingerprint = std::mem::replace(&mut accepted.event.fingerprint, fingerprint);
        let encoded = accepted.encode(keyring);
        let deliveries =
            accepted.deliveries.into_iter().map(|d| (d.subscription, d.id, d.created_at, d.order_key)).collect();
        let Accepted { event, .. } = accepted;
        Candidate { event_id: event.id, fingerprint, producer_id, deliveries, encoded }
    }
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
                let earlier = if candidate.producer_id { records.event_metadata(&candidate.event_id)? } else { None };
                if let Some(earlier) = &earlier {
                    if !owner.keyring().same_fingerprint(&earlier.fingerprint, &candidate.fingerprint) {
                        return Ok(Change::only(Created::Conflict(candidate.event_id.clone())));
                    }
                }
                known.push(earlier);
            }
            let new_deliveries: u64 = candidates
                .iter()
                .zip(&known)
                .filter(|(_, known)| known.is_none())
                .map(|(candidate, _)| candidate.deliveries.len() as u64)
                .sum();
            // Nothing new to count (repeats, events no subscription takes) is never refused for capacity.
            if new_deliveries > 0 && !owner.backlog.try_reserve(new_deliveries, max_pending) {
                return Ok(Change::only(Created::Backlogged(owner.backlog.unfinished())));
            }
            let mut to_queue = Vec::new();
            let mut to_take_back = Vec::new();
            for (candidate, known) in candidates.into_iter().zip(&known) {
                if known.is_none() {
                    to_take_back.extend(candidate.encoded.iter().map(|(key, _)| key.clone()));
                    records.put_accepted(candidate.encoded);
                    to_queue.extend(candidate.deliveries);
                }
            }
            let (queued, taken_back) = (Arc::clone(&owner), Arc::clone(&owner));
            Ok(Change {
                answer: Created::Stored(known),
                then: Box::new(move || {
                    for (subscription, id, due_ms, order_key) in &to_queue {
                        queued.queue(subscription, *id, *due_ms, *order_key);
                    }
                }),
                otherwise: Box::new(move || {
                    let mut to_take_back = to_take_back;
                    // Not durable: take the events back, so that a refused event leaves nothing.
                    taken_back.backlog.release(new_deliveries);
                    // An erase later in the same failed round may have indexed a delivery as cancelled.
                    let entries: Vec<_> =
                        to_take_back.iter().filter_map(|key| crate::store::delivery_key_id(key)).collect();
                    to_take_back.extend(entries.into_iter().flat_map(crate::store::status_entries));
                    if let Err(error) = taken_back.store.remove_keys(&to_take_back) {
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
