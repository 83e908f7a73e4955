//! Requeue (`hookrelay retry`) and resend: a finished delivery goes again, with a fresh schedule.

use std::sync::Arc;

use super::{Deliveries, SLICE};
use crate::clock::now_ms;
use crate::store::{Change, DeliveryId, DeliveryRecord, DeliveryStatus, StoreError};

/// Why a delivery was not requeued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotRequeued {
    #[error("no delivery {0}")]
    Unknown(DeliveryId),
    #[error("delivery {0} is {1}; only failed and cancelled deliveries can be retried")]
    NotFinished(DeliveryId, &'static str),
    #[error("delivery {0} was delivered already")]
    Delivered(DeliveryId),
    #[error("delivery {id}'s subscription `{subscription}` is not in the config")]
    NoSubscription { id: DeliveryId, subscription: String },
    #[error("delivery {0}'s event was erased")]
    Erased(DeliveryId),
}

/// Why a delivery was not resent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotResent {
    #[error("no delivery {0}")]
    Unknown(DeliveryId),
    #[error("delivery {0} is {1}; only delivered and failed deliveries can be resent")]
    NotFinished(DeliveryId, &'static str),
    #[error("delivery {id}'s subscription `{subscription}` is not in the config")]
    NoSubscription { id: DeliveryId, subscription: String },
    #[error("delivery {0}'s event was erased or is missing")]
    Erased(DeliveryId),
}

impl Deliveries {
    /// Makes failed or cancelled deliveries pending again, due now; their attempts go on counting but the
    /// retry schedule starts over. A transition per slice of [`SLICE`] deliveries, in a task of its own:
    /// once called, every slice is carried out even if the caller stops waiting. Durable when it returns.
    pub async fn requeue(self: &Arc<Self>, ids: Vec<DeliveryId>) -> Result<Vec<Result<(), NotRequeued>>, StoreError> {
        let owner = Arc::clone(self);
        let task = self.runtime.spawn(async move {
            let mut results = Vec::with_capacity(ids.len());
            for slice in ids.chunks(SLICE) {
                results.extend(owner.requeue_slice(slice.to_vec()).await?);
            }
            Ok(results)
        });
        task.await.unwrap_or(Err(StoreError::Stopped))
    }

    async fn requeue_slice(self: &Arc<Self>, ids: Vec<DeliveryId>) -> Result<Vec<Result<(), NotRequeued>>, StoreError> {
        let owner = Arc::clone(self);
        self.store
            .transition(move |records| {
                let config = owner.config.load_full();
                let now = now_ms();
                let mut results = Vec::with_capacity(ids.len());
                let mut requeued: Vec<(DeliveryRecord, bool)> = Vec::new();
                for id in ids {
                    let Some(mut delivery) = records.delivery(id)? else {
                        results.push(Err(NotRequeued::Unknown(id)));
                        continue;
                    };
                    let refusal = match delivery.status {
                        DeliveryStatus::Failed | DeliveryStatus::Cancelled => None,
                        DeliveryStatus::Pending => Some(NotRequeued::NotFinished(id, "pending")),
                        DeliveryStatus::Delivered => Some(NotRequeued::Delivered(id)),
                    };
                    let refusal = refusal.or_else(|| {
                        config
                            .subscription(&delivery.subscription)
                            .is_none()
                            .then(|| NotRequeued::NoSubscription { id, subscription: delivery.subscription.clone() })
                    });
                    let refusal = match refusal {
                        None if records.event_metadata(&delivery.event_id)?.is_none_or(|e| e.erased_at.is_some()) => {
                            Some(NotRequeued::Erased(id))
                        }
                        other => other,
                    };
                    if let Some(refusal) = refusal {
                        results.push(Err(refusal));
                        continue;
                    }
                    let was_failed = delivery.status == DeliveryStatus::Failed;
                    delivery.status = DeliveryStatus::Pending;
                    delivery.schedule_start = delivery.attempts;
                    delivery.next_attempt_at = Some(now);
                    delivery.updated_at = now;
                    records.put_delivery(&delivery);
                    requeued.push((delivery, was_failed));
                    results.push(Ok(()));
                }
                let owner = Arc::clone(&owner);
                Ok(Change::then(results, move || {
                    owner.backlog.add(requeued.len() as u64);
                    for (delivery, was_failed) in requeued {
                        if was_failed {
                            owner.metrics.failed(&delivery.subscription, -1);
                        }
                        owner.queue(&delivery.subscription, delivery.id, now, delivery.order_key);
                    }
                }))
            })?
            .wait()
            .await
    }

    /// Sends a delivered or failed delivery's event again to the same subscription: a new delivery with
    /// the same `webhook-id` and a fresh schedule. Durable when it returns.
    pub async fn resend(self: &Arc<Self>, id: DeliveryId) -> Result<Result<DeliveryId, NotResent>, StoreError> {
        let owner = Arc::clone(self);
        self.store
            .transition(move |records| {
                let Some(original) = records.delivery(id)? else {
                    return Ok(Change::only(Err(NotResent::Unknown(id))));
                };
                match original.status {
                    DeliveryStatus::Delivered | DeliveryStatus::Failed => {}
                    DeliveryStatus::Pending => return Ok(Change::only(Err(NotResent::NotFinished(id, "pending")))),
                    DeliveryStatus::Cancelled => {
                        return Ok(Change::only(Err(NotResent::NotFinished(id, "cancelled"))));
                    }
                }
                if owner.config.load().subscription(&original.subscription).is_none() {
                    let subscription = original.subscription.clone();
                    return Ok(Change::only(Err(NotResent::NoSubscription { id, subscription })));
                }
                let Some(mut event) = records.event_metadata(&original.event_id)?.filter(|e| e.erased_at.is_none())
                else {
                    return Ok(Change::only(Err(NotResent::Erased(id))));
                };
                let now = now_ms();
                let fresh_id = {
                    let mut ids = owner.ids.lock().unwrap_or_else(|p| p.into_inner());
                    DeliveryId(ids.generate().unwrap_or_else(|_| ulid::Ulid::new()))
                };
                let fresh = DeliveryRecord {
                    order_key: original.order_key,
                    ..DeliveryRecord::pending(
                        fresh_id,
                        &original.event_id,
                        &original.event_type,
                        &original.subscription,
                        now,
                    )
                };
                event.deliveries.push(fresh_id);
                records.put_event(&event);
                records.put_new_delivery(&fresh);
                let owner = Arc::clone(&owner);
                Ok(Change::then(Ok(fresh_id), move || {
                    owner.backlog.add(1);
                    owner.queue(&fresh.subscription, fresh_id, now, fresh.order_key);
                }))
            })?
            .wait()
            .await
    }
}
