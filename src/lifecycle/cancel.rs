//! Cancellation: the queued deliveries of a subscription that stayed out of the config for the grace
//! period, and erasure of an event's data (right to erasure), which cancels its pending deliveries.
//! Both take the deliveries out of their queues inside the decision, so no worker starts one after it.

use std::sync::Arc;

use serde_json::value::RawValue;
use tracing::{error, info};

use super::Deliveries;
use crate::clock::now_ms;
use crate::store::{Change, DeliveryStatus, StoreError};

/// `POST /v1/events/{id}/erase`'s answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Erased {
    /// Pending deliveries of the event that became `cancelled`.
    pub cancelled: usize,
}

impl Deliveries {
    /// Cancels the queued deliveries of `subscription` if it is (still) not in the config: called at the
    /// end of its grace period ([`Deliveries::watch_removed`]). Attempts in flight end on their own; a retry they schedule starts a new grace
    /// period (see [`Deliveries::queue`]).
    pub async fn cancel_removed(self: &Arc<Self>, subscription: &str) {
        let owner = Arc::clone(self);
        let name = subscription.to_owned();
        let decided = self.store.transition(move |records| {
            if owner.config.load().subscription(&name).is_some() {
                return Ok(Change::only(0));
            }
            let now = now_ms();
            let mut cancelled = 0;
            for id in owner.scheduler.drain(&name) {
                if let Some(mut delivery) = records.delivery(id)?.filter(|d| d.status == DeliveryStatus::Pending) {
                    delivery.cancel(now);
                    records.put_delivery(&delivery);
                    cancelled += 1;
                }
            }
            let owner = Arc::clone(&owner);
            Ok(Change::then(cancelled, move || owner.backlog.release(cancelled as u64)))
        });
        match decided.map(|answer| answer.wait()) {
            Ok(answer) => match answer.await {
                Ok(0) => {}
                Ok(cancelled) => info!(subscription, cancelled, "Removed subscription's queued deliveries cancelled."),
                Err(error) => error!(subscription, %error, "Cannot cancel a removed subscription's deliveries."),
            },
            Err(error) => error!(subscription, %error, "Cannot cancel a removed subscription's deliveries."),
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
                let Some(mut event) = records.event(&event_id)? else { return Ok(Change::only(None)) };
                let now = now_ms();
                let mut cancelled = Vec::new();
                for &id in &event.deliveries {
                    let Some(mut delivery) = records.delivery(id)? else { continue };
                    if delivery.status == DeliveryStatus::Pending {
                        owner.scheduler.remove(&delivery.subscription, id);
                        delivery.cancel(now);
                        delivery.last_error = Some("its event was erased".into());
                        records.put_delivery(&delivery);
                        cancelled.push(delivery.subscription.clone());
                    }
                    for mut attempt in records.attempts(id)? {
                        if attempt.response_body.take().is_some() {
                            records.put_attempt(id, &attempt);
                        }
                    }
                }
                if event.erased_at.is_none() {
                    event.erased_at = Some(now);
                    event.data = RawValue::from_string("null".to_owned()).map_err(|error| StoreError::Corrupt {
                        key: event_id.clone().into_bytes(),
                        reason: error.to_string(),
                    })?;
                    records.put_event(&event);
                }
                let answer = Some(Erased { cancelled: cancelled.len() });
                let owner = Arc::clone(&owner);
                Ok(Change::then(answer, move || owner.backlog.release(cancelled.len() as u64)))
            })?
            .wait()
            .await
    }
}
