//! `hookrelay retry`: putting finished deliveries back in the queue with a fresh retry schedule.

use super::Dispatcher;
use crate::clock::now_ms;
use crate::store::{DeliveryId, DeliveryStatus, StoreError};

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
}

impl Dispatcher {
    /// Makes a failed or cancelled delivery pending again, due now; its attempts go on counting but the
    /// retry schedule starts over. Durable before it returns.
    pub async fn requeue(&self, id: DeliveryId) -> Result<Result<(), NotRequeued>, StoreError> {
        let Some(mut delivery) = self.store.delivery(id)? else { return Ok(Err(NotRequeued::Unknown(id))) };
        match delivery.status {
            DeliveryStatus::Failed | DeliveryStatus::Cancelled => {}
            DeliveryStatus::Pending => return Ok(Err(NotRequeued::NotFinished(id, "pending"))),
            DeliveryStatus::Delivered => return Ok(Err(NotRequeued::Delivered(id))),
        }
        if self.config.load().subscription(&delivery.subscription).is_none() {
            let subscription = delivery.subscription.clone();
            return Ok(Err(NotRequeued::NoSubscription { id, subscription }));
        }
        let was_failed = delivery.status == DeliveryStatus::Failed;
        let now = now_ms();
        delivery.status = DeliveryStatus::Pending;
        delivery.schedule_start = delivery.attempts;
        delivery.next_attempt_at = Some(now);
        delivery.updated_at = now;
        self.store.put_delivery(&delivery)?;
        self.store.commit().await?;
        if was_failed {
            self.metrics.failed(&delivery.subscription, -1);
        }
        self.backlog.add(1);
        self.scheduler.enqueue(&delivery.subscription, id, now);
        Ok(Ok(()))
    }
}
