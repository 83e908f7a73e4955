//! Flow control (SPEC §6c): pausing a subscription whose receiver keeps failing, probing it, resuming it.
//! Pauses and resumes are transitions like any other: a pause is a record under the subscription's name,
//! written in the same batch as the attempt that caused it (or by `hookrelay pause`), so it survives
//! restarts and reloads. A subscription that leaves the config keeps its pause for the removal grace period
//! (SPEC §7: a config saved in two writes must not unpause a receiver that said 410); the transition that
//! cancels its queued deliveries when the grace period ends removes the pause too.
//!
//! # The rules
//! - A failed attempt adds one to the subscription's streak of consecutive failures; a success ends the
//!   streak. Answers listed in `give_up_on` fail their delivery and leave the streak as it is (the
//!   receiver is up, it refused that event).
//! - The attempt that makes the streak reach `pause_after` pauses the subscription (`failing`). A `410
//!   Gone` pauses it at once (`gone`), until `hookrelay resume`.
//! - A failed attempt recorded while the subscription is paused, or that pauses it, does not count
//!   against its delivery's schedule: the delivery is due again at once and waits for the pause to end.
//!   So an outage costs about `pause_after` attempts plus one probe per `probe_interval`, and every
//!   waiting delivery keeps the rest of its schedule.
//! - While paused for failing, the worker makes one attempt (a probe) per `probe_interval`, and only
//!   when nothing else is in flight; a success resumes the subscription. `gone` and `by_hand` make no
//!   probes.
//! - The streak lives in memory and starts at 0 at each start; the pause itself is on disk.
//!
//! The decisions run inside the attempt's transition on the commit thread and update the in-memory
//! state there, so the next transition sees them; workers read that state through [`Deliveries::gate`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{info, warn};

use super::{blocking, Deliveries};
use crate::clock::{mono_ms, now_ms};
use crate::config::Subscription;
use crate::delivery::backoff::next_delay;
use crate::store::{AttemptRecord, Change, DeliveryRecord, DeliveryStatus, PauseReason, PauseRecord, StoreError};

/// Message of a subscription paused by its failures.
pub const PAUSED_FAILING: &str = "Subscription paused: its receiver keeps failing; one probe per probe_interval.";
/// Message of a subscription paused by a 410 Gone.
pub const PAUSED_GONE: &str =
    "Subscription paused: the receiver answered 410 Gone; no attempt is made until `hookrelay resume`.";
/// Message of `hookrelay pause`.
pub const PAUSED_BY_HAND: &str = "Subscription paused by hand; no attempt is made until `hookrelay resume`.";
/// Message of a subscription resumed by a probe's success.
pub const RESUMED_BY_PROBE: &str = "Subscription resumed: an attempt succeeded while it was paused.";
/// Message of `hookrelay resume`.
pub const RESUMED_BY_HAND: &str = "Subscription resumed by hand.";
/// Message at start for each subscription whose pause is on disk.
pub const STILL_PAUSED: &str = "Subscription still paused from before the restart.";

/// One subscription's flow state.
#[derive(Debug, Default)]
struct Flow {
    /// Consecutive failed attempts (since the last success, or the start).
    streak: u32,
    paused: Option<PauseRecord>,
    /// While paused for failing: when the next probe may start (monotonic ms).
    next_probe_ms: u64,
    /// The last failed attempt's error, and the last success (Unix ms), since the start.
    last_error: Option<String>,
    last_success_at: Option<u64>,
}

/// The subscriptions' flow states, owned by [`Deliveries`].
#[derive(Default)]
pub struct Flows(Mutex<HashMap<String, Flow>>);

impl Flows {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Flow>> {
        // Each change is one assignment under the lock: a poisoned lock still holds a consistent map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a subscription's worker may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Anything due, within concurrency.
    Open,
    /// Paused for failing: one probe, once nothing is in flight, from this time on (monotonic ms).
    Probe(u64),
    /// Paused until resumed: nothing.
    Closed,
}

/// What an attempt's outcome did to its subscription's pause.
#[derive(Debug, Clone)]
pub enum PauseChange {
    Paused(PauseRecord),
    Resumed,
}

/// An attempt's outcome applied to its delivery ([`Deliveries::judge`]).
#[derive(Debug)]
pub struct Judged {
    /// When the delivery is due again, if it is.
    pub retry_at: Option<u64>,
    pub pause: Option<PauseChange>,
    /// Failed at once: the answer is listed in `give_up_on`.
    pub gave_up: bool,
    /// With `pause`: the pause before it, put back if the transition's writes fail.
    pub paused_before: Option<PauseRecord>,
}

/// What a subscription looks like to an operator (`hookrelay subscriptions`).
#[derive(Debug, Clone, Default)]
pub struct FlowView {
    pub paused: Option<PauseRecord>,
    pub last_error: Option<String>,
    pub last_success_at: Option<u64>,
}

impl Deliveries {
    /// What `subscription`'s worker may start now.
    pub fn gate(&self, subscription: &str) -> Gate {
        match self.flows.lock().get(subscription).and_then(|flow| flow.paused.as_ref().map(|p| (p.reason, flow))) {
            None => Gate::Open,
            Some((PauseReason::Failing, flow)) => Gate::Probe(flow.next_probe_ms),
            Some(_) => Gate::Closed,
        }
    }

    /// A probe started: the next one waits for `interval`.
    pub fn probe_started(&self, subscription: &str, interval: Duration) {
        if let Some(flow) = self.flows.lock().get_mut(subscription) {
            flow.next_probe_ms = mono_ms().saturating_add(interval.as_millis() as u64);
        }
    }

    pub fn flow_view(&self, subscription: &str) -> FlowView {
        self.flows.lock().get(subscription).map_or_else(FlowView::default, |flow| FlowView {
            paused: flow.paused.clone(),
            last_error: flow.last_error.clone(),
            last_success_at: flow.last_success_at,
        })
    }

    pub fn is_paused(&self, subscription: &str) -> bool {
        self.flows.lock().get(subscription).is_some_and(|flow| flow.paused.is_some())
    }

    /// Applies an attempt's outcome to its pending delivery and to its subscription's flow (see the
    /// module doc). Runs inside the attempt's transition.
    pub(super) fn judge(
        &self,
        subscription: &Subscription,
        delivery: &mut DeliveryRecord,
        attempt: &AttemptRecord,
        retry_after: Option<Duration>,
    ) -> Judged {
        let now = now_ms();
        let settings = &subscription.delivery;
        delivery.attempts = attempt.n;
        delivery.updated_at = now;
        delivery.last_status_code = attempt.status_code;
        delivery.last_error = attempt.error.clone();
        delivery.next_attempt_at = None;
        let mut flows = self.flows.lock();
        let flow = crate::str_map::entry(&mut flows, &subscription.name);
        let mut judged = Judged { retry_at: None, pause: None, gave_up: false, paused_before: None };
        if attempt.status_code.is_some_and(|code| (200..300).contains(&code)) {
            delivery.status = DeliveryStatus::Delivered;
            flow.streak = 0;
            flow.last_success_at = Some(now);
            if flow.paused.as_ref().is_some_and(|p| p.reason == PauseReason::Failing) {
                judged.paused_before = flow.paused.take();
                judged.pause = Some(PauseChange::Resumed);
            }
            return judged;
        }
        flow.last_error = attempt.error.clone();
        let status = attempt.status_code;
        if status.is_some_and(|code| settings.give_up_on.contains(&code)) {
            delivery.status = DeliveryStatus::Failed;
            judged.gave_up = true;
            return judged;
        }
        flow.streak = flow.streak.saturating_add(1);
        let gone = status == Some(410);
        let failing = settings.pause_after > 0 && flow.streak >= settings.pause_after;
        let reason = match &flow.paused {
            Some(paused) if !(gone && paused.reason == PauseReason::Failing) => None,
            _ if gone => Some(PauseReason::Gone),
            None if failing => Some(PauseReason::Failing),
            _ => None,
        };
        if let Some(reason) = reason {
            let pause = PauseRecord { reason, since: now, last_error: attempt.error.clone() };
            judged.paused_before = flow.paused.replace(pause.clone());
            flow.next_probe_ms = mono_ms().saturating_add(settings.probe_interval.as_millis() as u64);
            judged.pause = Some(PauseChange::Paused(pause));
        }
        if flow.paused.is_some() {
            // Not counted against the schedule: due again at once, held by the pause.
            delivery.schedule_start = delivery.schedule_start.saturating_add(1);
            delivery.next_attempt_at = Some(now);
            judged.retry_at = Some(now);
            return judged;
        }
        let nth_of_schedule = attempt.n.saturating_sub(delivery.schedule_start);
        match next_delay(nth_of_schedule, &settings.retry, settings.jitter, retry_after, &mut rand::rng()) {
            Some(delay) => {
                let at = now + delay.as_millis() as u64;
                delivery.next_attempt_at = Some(at);
                judged.retry_at = Some(at);
            }
            None => delivery.status = DeliveryStatus::Failed,
        }
        judged
    }

    /// Puts a subscription's pause back as it was before a transition whose writes failed, so that memory
    /// never says paused (or resumed) when the disk does not. (The streak and the last error or success
    /// are not on disk; what a failed round leaves of them does not matter.)
    pub(super) fn restore_pause(&self, subscription: &str, before: Option<PauseRecord>) {
        crate::str_map::entry(&mut self.flows.lock(), subscription).paused = before;
    }

    fn pause_of(&self, subscription: &str) -> Option<PauseRecord> {
        self.flows.lock().get(subscription).and_then(|flow| flow.paused.clone())
    }

    /// Logs a pause change once it is durable and wakes the worker (the gauge reads the flows when scraped).
    pub(super) fn pause_changed(&self, subscription: &str, change: &PauseChange, by_hand: bool) {
        match change {
            PauseChange::Paused(pause) => {
                let error = pause.last_error.as_deref().unwrap_or("");
                match pause.reason {
                    PauseReason::Failing => warn!(subscription, last_error = error, "{}", PAUSED_FAILING),
                    PauseReason::Gone => warn!(subscription, last_error = error, "{}", PAUSED_GONE),
                    PauseReason::ByHand => warn!(subscription, "{}", PAUSED_BY_HAND),
                }
            }
            PauseChange::Resumed => {
                if by_hand {
                    info!(subscription, "{}", RESUMED_BY_HAND);
                } else {
                    info!(subscription, "{}", RESUMED_BY_PROBE);
                }
            }
        }
        self.scheduler.wake(subscription);
    }

    /// `hookrelay pause`: no attempt of the subscription starts until it is resumed. Durable when it returns.
    /// Pausing a subscription paused by hand already changes nothing.
    pub async fn pause_by_hand(self: &Arc<Self>, subscription: &str) -> Result<(), StoreError> {
        let (owner, name) = (Arc::clone(self), subscription.to_owned());
        self.store
            .transition(move |records| {
                let before = owner.pause_of(&name);
                if before.as_ref().is_some_and(|p| p.reason == PauseReason::ByHand) {
                    return Ok(Change::only(()));
                }
                let pause = PauseRecord { reason: PauseReason::ByHand, since: now_ms(), last_error: None };
                records.put_pause(&name, &pause);
                crate::str_map::entry(&mut owner.flows.lock(), &name).paused = Some(pause.clone());
                let (done, undo, undo_name) = (Arc::clone(&owner), Arc::clone(&owner), name.clone());
                Ok(Change {
                    answer: (),
                    then: Box::new(move || done.pause_changed(&name, &PauseChange::Paused(pause), true)),
                    otherwise: Box::new(move || undo.restore_pause(&undo_name, before)),
                })
            })?
            .wait()
            .await
    }

    /// `hookrelay resume`: ends any pause of the subscription, and its streak. Durable when it returns.
    pub async fn resume(self: &Arc<Self>, subscription: &str) -> Result<(), StoreError> {
        let (owner, name) = (Arc::clone(self), subscription.to_owned());
        self.store
            .transition(move |records| {
                let before = {
                    let mut flows = owner.flows.lock();
                    let flow = crate::str_map::entry(&mut flows, &name);
                    flow.streak = 0;
                    flow.paused.take()
                };
                let was_paused = before.is_some();
                if was_paused {
                    records.remove_pause(&name);
                }
                let (done, undo, undo_name) = (Arc::clone(&owner), Arc::clone(&owner), name.clone());
                Ok(Change {
                    answer: (),
                    then: Box::new(move || {
                        if was_paused {
                            done.pause_changed(&name, &PauseChange::Resumed, true);
                        }
                    }),
                    otherwise: Box::new(move || undo.restore_pause(&undo_name, before)),
                })
            })?
            .wait()
            .await
    }

    /// At start: the pauses on disk are in force again (a paused-for-failing subscription probes at once).
    /// Those of subscriptions not in the config wait, like their queued deliveries, for the removal grace
    /// period, and end with it. A damaged pause record is quarantined (the subscription is then active).
    /// Returns the paused subscriptions that are not configured: the caller starts their grace periods once
    /// the queues are rebuilt.
    pub(super) async fn recover_pauses(self: &Arc<Self>) -> Result<Vec<String>, StoreError> {
        let store = self.store.clone();
        let (found, damaged) = blocking(move || store.pauses()).await?;
        let config = self.config.load_full();
        let mut unconfigured = Vec::new();
        for (name, pause) in found {
            warn!(subscription = %name, reason = pause.reason.as_str(), "{}", STILL_PAUSED);
            {
                let mut flows = self.flows.lock();
                let flow = crate::str_map::entry(&mut flows, &name);
                flow.paused = Some(pause);
                flow.next_probe_ms = mono_ms();
            }
            if config.subscription(&name).is_none() {
                unconfigured.push(name);
            }
        }
        self.quarantine(damaged).await?;
        Ok(unconfigured)
    }

    /// In the transition that cancels a removed subscription's queued deliveries once its grace period is
    /// over: its pause ends too. Returns the pause it ended, if any (to put back if the writes fail).
    pub(super) fn end_pause_of_removed(
        &self,
        records: &mut crate::store::Records<'_, '_>,
        subscription: &str,
    ) -> Option<PauseRecord> {
        records.remove_pause(subscription);
        self.flows.lock().remove(subscription).and_then(|flow| flow.paused)
    }
}
