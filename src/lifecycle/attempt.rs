//! Attempt results. A worker loads what an attempt needs ([`Deliveries::load`]), makes the HTTP request,
//! and hands the outcome here; the transition applies it to the delivery as it is *now*, so an erase
//! that cancelled the delivery meanwhile is not undone by the attempt that was already out.

use std::sync::Arc;

use tracing::error;

use super::flow::{Judged, PauseChange};
use super::{blocking, Deliveries};
use crate::clock::now_ms;
use crate::config::Subscription;
use crate::store::{AttemptRecord, Change, DeliveryId, DeliveryRecord, DeliveryStatus, EventRecord, KeyId, StoreError};

/// How often a delivery whose event is sealed with a key that is not listed is looked at again. Keys
/// change only with a restart, so this only keeps such a delivery in the queue (and its listings).
const KEY_RECHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// A pending delivery and its event, ready to attempt.
pub struct Loaded {
    pub delivery: DeliveryRecord,
    pub event: EventRecord,
}

/// What [`Deliveries::load`] found.
pub enum Loading {
    Ready(Box<Loaded>),
    /// Nothing to attempt (it finished meanwhile, its event was erased, or a record was damaged and
    /// quarantined); the caller ends the attempt with [`Deliveries::skip_attempt`].
    Nothing,
    /// Its event's data is sealed with a key `encryption_key` no longer lists; the caller sets it aside
    /// with [`Deliveries::wait_for_key`]. Nothing changes on disk: it is delivered once the key is back.
    WaitingForKey(KeyId),
}

/// What an attempt's result did to its delivery.
#[derive(Debug)]
pub struct Attempted {
    /// The delivery as recorded; its status says whether it is finished.
    pub delivery: DeliveryRecord,
    /// When the delivery is due again, if it will be retried.
    pub retry_at: Option<u64>,
    /// Failed at once: the answer is listed in `give_up_on`.
    pub gave_up: bool,
}

impl Deliveries {
    /// Reads a delivery taken from the scheduler, and its event, off the async workers.
    pub async fn load(self: &Arc<Self>, id: DeliveryId) -> Result<Loading, StoreError> {
        let store = self.store.clone();
        let found = blocking(move || {
            let delivery = match store.delivery(id) {
                Ok(Some(delivery)) if delivery.status == DeliveryStatus::Pending => delivery,
                Ok(_) => return Ok(Err(None)),
                Err(StoreError::Corrupt { key, .. }) => return Ok(Err(Some(key))),
                Err(error) => return Err(error),
            };
            match store.event(&delivery.event_id) {
                Ok(Some(event)) if event.erased_at.is_none() => match event.waiting_for_key() {
                    Some(key) => Ok(Ok(Loading::WaitingForKey(key))),
                    None => Ok(Ok(Loading::Ready(Box::new(Loaded { delivery, event })))),
                },
                Ok(_) => Ok(Err(None)),
                Err(StoreError::Corrupt { key, .. }) => Ok(Err(Some(key))),
                Err(error) => Err(error),
            }
        })
        .await?;
        if !matches!(found, Ok(Loading::WaitingForKey(_))) {
            self.no_longer_waiting_for_key(&[id]);
        }
        match found {
            Ok(loading) => Ok(loading),
            Err(damaged) => {
                if let Some(key) = damaged {
                    self.quarantine(vec![key]).await?;
                }
                Ok(Loading::Nothing)
            }
        }
    }

    /// Sets aside a delivery whose event is sealed with a key that is not listed (see
    /// [`Loading::WaitingForKey`]): it stays pending, and is counted in
    /// `hookrelay_deliveries_waiting_for_key`.
    /// A key the start did not report (the store's key log lost it) is reported here, once.
    pub fn wait_for_key(self: &Arc<Self>, subscription: &str, id: DeliveryId, key: KeyId) {
        if !self.store.logged_key(key) && self.unlogged_keys.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            error!(%key, "{}", crate::relay::UNLISTED_KEY);
        }
        let waiting = {
            let mut waiting = self.waiting_for_key.lock().unwrap_or_else(|p| p.into_inner());
            waiting.insert(id);
            waiting.len()
        };
        self.metrics.waiting_for_key(waiting);
        self.retry_later(subscription, id, now_ms() + KEY_RECHECK.as_millis() as u64);
    }

    /// Ends the count of deliveries that wait for their key for these (loaded, erased or cancelled).
    pub(super) fn no_longer_waiting_for_key(&self, ids: &[DeliveryId]) {
        let mut waiting = self.waiting_for_key.lock().unwrap_or_else(|p| p.into_inner());
        let before = waiting.len();
        for id in ids {
            waiting.remove(id);
        }
        if waiting.len() != before {
            self.metrics.waiting_for_key(waiting.len());
        }
    }

    /// Ends an attempt that was not made (see [`Deliveries::load`]). A pending delivery whose event is
    /// gone cannot be delivered: it fails, with the reason, so that an operator sees it; returns true then.
    pub async fn skip_attempt(self: &Arc<Self>, subscription: &str, id: DeliveryId) -> Result<bool, StoreError> {
        let owner = Arc::clone(self);
        let name = subscription.to_owned();
        self.store
            .transition(move |records| {
                let failed = match records.delivery(id)? {
                    Some(mut delivery) if delivery.status == DeliveryStatus::Pending => {
                        let event = records.event_metadata(&delivery.event_id)?;
                        if event.is_some_and(|event| event.erased_at.is_none()) {
                            // Pending with its event: loaded before a concurrent change; try again now.
                            return Ok(Change::then(false, move || owner.retry_later(&name, id, now_ms())));
                        }
                        delivery.status = DeliveryStatus::Failed;
                        delivery.next_attempt_at = None;
                        delivery.updated_at = now_ms();
                        delivery.last_error = Some("the delivery's event record is missing or damaged".into());
                        records.put_delivery(&delivery);
                        true
                    }
                    Some(_) => false,
                    None => {
                        // Quarantined (damaged) while held: it was counted as unfinished until now.
                        let owner = Arc::clone(&owner);
                        return Ok(Change::then(false, move || {
                            owner.scheduler.finished(&name, id, None);
                            owner.backlog.release(1);
                        }));
                    }
                };
                Ok(Change::then(failed, move || {
                    owner.scheduler.finished(&name, id, None);
                    if failed {
                        owner.backlog.release(1);
                        owner.metrics.failed(&name, 1);
                    }
                }))
            })?
            .wait()
            .await
    }

    /// Records an attempt of a loaded delivery and applies its outcome ([`Deliveries::judge`]: the retry
    /// schedule, `give_up_on`, pauses) to the delivery as it is now; a delivery cancelled meanwhile keeps
    /// its cancellation (the attempt is recorded). A pause or resume it causes is written in the same
    /// batch. Durable when it returns; the attempt's slot is free from the call on.
    pub async fn record_attempt(
        self: &Arc<Self>,
        subscription: &Arc<Subscription>,
        id: DeliveryId,
        mut attempt: AttemptRecord,
        retry_after: Option<std::time::Duration>,
    ) -> Result<Option<Attempted>, StoreError> {
        let owner = Arc::clone(self);
        let duration = std::time::Duration::from_millis(attempt.duration_ms);
        let subscription = Arc::clone(subscription);
        // Encoded here, on the worker's task, not on the commit thread.
        let encoded = self.store.encode_attempt(id, &attempt);
        // The slot starts its next attempt while this result is committed (pipelined slots: see
        // [`crate::scheduler`]); the delivery stays in flight until the follow-up below ends it.
        self.scheduler.answered(&subscription.name, id);
        self.store
            .transition_unhurried(move |records| {
                let name = subscription.name.clone();
                let Some(mut delivery) = records.delivery(id)? else {
                    // Quarantined while the attempt was out: nothing to record it on; it was counted as
                    // unfinished until now.
                    return Ok(Change::then(None, move || {
                        owner.scheduler.finished(&name, id, None);
                        owner.backlog.release(1);
                    }));
                };
                let was_pending = delivery.status == DeliveryStatus::Pending;
                let (judged, encoded) = if was_pending {
                    (owner.judge(&subscription, &mut delivery, &attempt, retry_after), encoded)
                } else {
                    // Cancelled (erased) while the attempt was out: keep the cancellation; an erased event
                    // keeps no response body either (and with none, nothing is sealed here).
                    delivery.attempts = attempt.n;
                    attempt.forget_response_body();
                    let judged = Judged { retry_at: None, pause: None, gave_up: false, paused_before: None };
                    (judged, owner.store.encode_attempt(id, &attempt))
                };
                records.carry_attempt(&mut delivery, encoded);
                records.put_delivery(&delivery);
                match &judged.pause {
                    Some(PauseChange::Paused(pause)) => records.put_pause(&name, pause),
                    Some(PauseChange::Resumed) => records.remove_pause(&name),
                    None => {}
                }
                let recorded = delivery.status;
                let Judged { retry_at, pause, gave_up, paused_before } = judged;
                let (undo, undo_name, changed) = (Arc::clone(&owner), name.clone(), pause.is_some());
                let otherwise = move || {
                    if changed {
                        undo.restore_pause(&undo_name, paused_before);
                    }
                };
                let answer = Some(Attempted { delivery, retry_at, gave_up });
                Ok(Change::then(answer, move || {
                    owner.metrics.attempt(&name, attempt.status_code, duration);
                    owner.end_attempt(&name, id, retry_at);
                    if was_pending && recorded.is_finished() {
                        owner.backlog.release(1);
                    }
                    if was_pending && recorded == DeliveryStatus::Failed {
                        owner.metrics.failed(&name, 1);
                    }
                    if let Some(change) = pause {
                        owner.pause_changed(&name, &change, false);
                    }
                })
                .or_else(otherwise))
            })?
            .wait()
            .await
    }

    /// Hands a delivery in flight back to its queue, due at `at_ms`, when nothing was recorded (the store
    /// failed while the attempt was being recorded, or the delivery changed under the load); on disk it
    /// is still pending.
    pub fn retry_later(self: &Arc<Self>, subscription: &str, id: DeliveryId, at_ms: u64) {
        self.end_attempt(subscription, id, Some(at_ms));
    }
}
