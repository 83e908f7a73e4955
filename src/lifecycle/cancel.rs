//! Cancellation: the queued deliveries of a subscription that stayed out of the config for the grace
//! period, and erasure of an event's data (right to erasure), which cancels its pending deliveries.
//! Both take the deliveries out of their queues inside the decision, so no worker starts one after it.

use std::sync::Arc;

use tracing::{error, info};

use super::{Deliveries, SLICE};
use crate::clock::now_ms;
use crate::store::{Change, DeliveryStatus, StoreError};

/// `POST /v1/events/{id}/erase`'s answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Erased {
    /// Pending deliveries of the event that became `cancelled`.
    pub cancelled: usize,
}

impl Deliveries {
    /// The grace period of a removal of `subscription` has ended: its queued deliveries are cancelled,
    /// unless the subscription came back meanwhile (a later removal has a grace period of its own).
    pub(super) async fn grace_ended(self: &Arc<Self>, subscription: &str, removal: u64) {
        let owner = Arc::clone(self);
        let name = subscription.to_owned();
        self.cancel_removed_if(subscription, move || {
            let mut graced = owner.graced();
            let current = graced.get(&name) == Some(&removal);
            if current {
                graced.remove(&name);
            }
            current
        })
        .await
    }

    /// Cancels the queued deliveries of `subscription` now if it is not in the config.
    pub async fn cancel_removed(self: &Arc<Self>, subscription: &str) {
        self.cancel_removed_if(subscription, || true).await
    }

    /// Cancels, a slice at a time, the queued deliveries of `subscription` while it is not in the config
    /// and `still_wanted` says so (asked in the first slice's decision). Attempts in flight end on their
    /// own; a retry they schedule starts a new grace period (see [`Deliveries::queue`]).
    async fn cancel_removed_if(
        self: &Arc<Self>,
        subscription: &str,
        still_wanted: impl FnOnce() -> bool + Send + 'static,
    ) {
        let mut still_wanted = Some(still_wanted);
        let mut total = 0;
        loop {
            let owner = Arc::clone(self);
            let name = subscription.to_owned();
            let ask = still_wanted.take();
            let first = ask.is_some();
            let decided = self.store.transition(move |records| {
                if owner.config.load().subscription(&name).is_some() || !ask.is_none_or(|ask| ask()) {
                    return Ok(Change::only(None));
                }
                let now = now_ms();
                let examined = owner.scheduler.queued_ids(&name, SLICE);
                let mut cancelled = 0;
                for &id in &examined {
                    if let Some(mut delivery) = records.delivery(id)?.filter(|d| d.status == DeliveryStatus::Pending) {
                        delivery.cancel(now);
                        records.put_delivery(&delivery);
                        cancelled += 1;
                    }
                }
                // Last, after every read that could fail: no worker takes these any more. The subscription is
                // gone for good: its pause ends with it (decided here, against the config of this moment, so
                // a subscription added back meanwhile keeps its new pause).
                for &id in &examined {
                    owner.scheduler.remove(&name, id);
                }
                let paused_before = if first { owner.end_pause_of_removed(records, &name) } else { None };
                let (undo, undo_name) = (Arc::clone(&owner), name.clone());
                let owner = Arc::clone(&owner);
                let done = examined.len() < SLICE;
                // Every queued delivery counted as unfinished, whether cancelled now or found quarantined.
                let released = examined.len() as u64;
                Ok(Change::then(Some((cancelled, done)), move || {
                    owner.backlog.release(released);
                    owner.no_longer_waiting_for_key(&examined);
                })
                .or_else(move || {
                    if paused_before.is_some() {
                        undo.restore_pause(&undo_name, paused_before);
                    }
                }))
            });
            match decided.map(|answer| answer.wait()) {
                Ok(answer) => match answer.await {
                    Ok(Some((cancelled, done))) => {
                        total += cancelled;
                        if !done {
                            continue;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => error!(subscription, %error, "Cannot cancel a removed subscription's deliveries."),
                },
                Err(error) => error!(subscription, %error, "Cannot cancel a removed subscription's deliveries."),
            }
            break;
        }
        if total > 0 {
            info!(subscription, cancelled = total, "Removed subscription's queued deliveries cancelled.");
        }
    }

    /// Erases an event's data and its deliveries' stored response bodies, and cancels its pending
    /// deliveries; ids, types, times and statuses stay. `None` for an unknown event. Durable when it
    /// returns; erasing twice is harmless.
    pub async fn erase(self: &Arc<Self>, event_id: &str) -> Result<Option<Erased>, StoreError> {
        let owner = Arc::clone(self);
        let event_id = event_id.to_owned();
        self.store
            .transition(move |records| {
                let Some(mut event) = records.event_metadata(&event_id)? else { return Ok(Change::only(None)) };
                let now = now_ms();
                let mut cancelled = Vec::new();
                for &id in &event.deliveries {
                    let Some(mut delivery) = records.delivery(id)? else { continue };
                    let mut changed = false;
                    if delivery.status == DeliveryStatus::Pending {
                        delivery.cancel(now);
                        delivery.last_error = Some("its event was erased".into());
                        cancelled.push((delivery.subscription.clone(), id));
                        changed = true;
                    }
                    changed |= records.forget_response_bodies(&mut delivery)?;
                    if changed {
                        records.put_delivery(&delivery);
                    }
                }
                if event.erased_at.is_none() {
                    event.erased_at = Some(now);
                    event.forget_data();
                    records.put_event(&event);
                }
                // Last, after every read that could fail: no worker takes these any more.
                for (subscription, id) in &cancelled {
                    owner.scheduler.remove(subscription, *id);
                }
                let answer = Some(Erased { cancelled: cancelled.len() });
                let owner = Arc::clone(&owner);
                Ok(Change::then(answer, move || {
                    owner.backlog.release(cancelled.len() as u64);
                    owner.no_longer_waiting_for_key(&cancelled.iter().map(|(_, id)| *id).collect::<Vec<_>>());
                    // An attempt result decided earlier in the same round may have queued one again.
                    for (subscription, id) in &cancelled {
                        owner.scheduler.remove(subscription, *id);
                    }
                }))
            })?
            .wait()
            .await
    }
}
