//! Accepting events: idempotency, routing, capacity, and the durable write that must finish before 202.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tracing::{debug, error};

use crate::backlog::Backlog;
use crate::clock::{now_ms, rfc3339_utc};
use crate::config::Config;
use crate::event::{NewEvent, Submission};
use crate::scheduler::Scheduler;
use crate::store::{Accepted, DeliveryId, DeliveryRecord, DeliveryStatus, Durable, EventRecord, Store, StoreError};

/// Why a submission was refused; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("event id `{0}` was already accepted with a different body")]
    Conflict(String),
    #[error("the relay has {0} unfinished deliveries, its `max_pending`; retry later")]
    Backlogged(u64),
    #[error("the store cannot accept events right now: {0}")]
    Store(#[from] StoreError),
}

/// What the producer is told: 202 when something new was stored, 200 when every event was known.
pub struct Answer {
    /// Events stored by this request (the others were known already).
    pub new_events: usize,
    pub body: Value,
}

pub struct Acceptor {
    pub config: Arc<ArcSwap<Config>>,
    /// Shared with the requests that outlive their producer (see [`Waiting`]).
    shared: Arc<Shared>,
}

/// What accepting needs, and settling after the commit round too.
struct Shared {
    store: Store,
    scheduler: Arc<Scheduler>,
    backlog: Arc<Backlog>,
    /// Serializes "is this id known?" with "queue it for the store", and makes delivery ids strictly
    /// increasing.
    ids: Mutex<Ids>,
}

struct Ids {
    generator: ulid::Generator,
    /// Producer ids queued for the store and not yet durable, with their fingerprint and answer: the store
    /// does not know them yet, and a repeat arriving now must still get the original answer (or a 409).
    in_flight: HashMap<String, (String, Value)>,
}

impl Acceptor {
    pub fn new(config: Arc<ArcSwap<Config>>, store: Store, scheduler: Arc<Scheduler>, backlog: Arc<Backlog>) -> Self {
        let ids = Mutex::new(Ids { generator: ulid::Generator::new(), in_flight: HashMap::new() });
        Acceptor { config, shared: Arc::new(Shared { store, scheduler, backlog, ids }) }
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.shared.scheduler
    }

    pub async fn accept(&self, submission: Submission) -> Result<Answer, Refusal> {
        let config = self.config.load_full();
        // Repeats of known events wait too: their original may be queued but not yet durable, and is
        // durable once a later round is.
        let (answers, fresh, durable) = self.shared.write(&config, submission.events)?;
        let (new_events, known) = (fresh.len(), answers.len() - fresh.len());
        Waiting { shared: Arc::clone(&self.shared), round: Some((durable, fresh)) }.settle().await?;
        debug!(events = new_events, known, "Events accepted.");
        let body =
            if submission.is_batch { Value::Array(answers) } else { answers.into_iter().next().unwrap_or(Value::Null) };
        Ok(Answer { new_events, body })
    }
}

impl Shared {
    /// Decides each event's fate and queues the new ones for the store, all under the id lock, so that a
    /// repeat decided later is answered in the same round or a later one.
    fn write(&self, config: &Config, events: Vec<NewEvent>) -> Result<(Vec<Value>, Vec<Accepted>, Durable), Refusal> {
        let mut ids = self.ids.lock().unwrap();
        let now = now_ms();
        let mut answers: Vec<Value> = Vec::with_capacity(events.len());
        let mut fresh: Vec<Accepted> = Vec::new();
        // Producer id → fingerprint and index in `answers`, for the new events of this request.
        let mut in_this_request: HashMap<String, (String, usize)> = HashMap::new();
        for event in events {
            if let Some(id) = &event.id {
                let earlier = match (in_this_request.get(id), ids.in_flight.get(id)) {
                    (Some((fingerprint, index)), _) => Some((fingerprint.clone(), answers[*index].clone())),
                    (None, Some(queued)) => Some(queued.clone()),
                    (None, None) => self.store.event(id)?.map(|known| (known.fingerprint.clone(), answer(&known))),
                };
                if let Some((fingerprint, earlier_answer)) = earlier {
                    if fingerprint != event.fingerprint {
                        return Err(Refusal::Conflict(id.clone()));
                    }
                    answers.push(earlier_answer);
                    continue;
                }
                in_this_request.insert(id.clone(), (event.fingerprint.clone(), answers.len()));
            }
            let accepted = build_records(config, event, &mut ids.generator, now);
            answers.push(answer(&accepted.event));
            fresh.push(accepted);
        }
        let new_deliveries = fresh.iter().map(|a| a.deliveries.len() as u64).sum();
        if !self.backlog.try_reserve(new_deliveries, config.relay.max_pending) {
            return Err(Refusal::Backlogged(self.backlog.unfinished()));
        }
        let durable = match self.store.submit_accepted(&fresh) {
            Ok(durable) => durable,
            Err(error) => {
                self.backlog.release(new_deliveries);
                return Err(error.into());
            }
        };
        for (id, (fingerprint, index)) in in_this_request {
            ids.in_flight.insert(id, (fingerprint, answers[index].clone()));
        }
        Ok((answers, fresh, durable))
    }

    /// After a request's round: queue its events for delivery (durable) or take them back (failed), and
    /// forget their ids either way.
    fn finish(&self, outcome: Result<(), StoreError>, fresh: &[Accepted]) -> Result<(), StoreError> {
        if outcome.is_err() {
            self.take_back(fresh);
        }
        // Durable, so the store answers for these ids now; or taken back, so they are unknown again.
        let mut ids = self.ids.lock().unwrap();
        for accepted in fresh {
            ids.in_flight.remove(&accepted.event.id);
        }
        drop(ids);
        outcome?;
        let now = now_ms();
        for delivery in fresh.iter().flat_map(|a| &a.deliveries) {
            self.scheduler.enqueue(&delivery.subscription, delivery.id, now);
        }
        Ok(())
    }

    /// Undoes a write whose commit failed, so that the refused events leave nothing behind.
    fn take_back(&self, fresh: &[Accepted]) {
        let deliveries = fresh.iter().map(|a| a.deliveries.len() as u64).sum();
        self.backlog.release(deliveries);
        if let Err(error) = self.store.remove_accepted(fresh) {
            error!(%error, "Cannot take back events whose commit failed; they may be delivered after a restart.");
        }
    }
}

/// A request waiting for its round. The producer may hang up meanwhile, which drops the wait; the round
/// still ends, so settling moves to a task of its own rather than being lost (events durable but never
/// queued until a restart, ids stuck in flight).
struct Waiting {
    shared: Arc<Shared>,
    /// Until settled.
    round: Option<(Durable, Vec<Accepted>)>,
}

impl Waiting {
    async fn settle(mut self) -> Result<(), StoreError> {
        let (durable, _) = self.round.as_mut().expect("present until settled");
        let outcome = durable.wait().await;
        let (_, fresh) = self.round.take().expect("present until settled");
        self.shared.finish(outcome, &fresh)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some((mut durable, fresh)) = self.round.take() else { return };
        let shared = Arc::clone(&self.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let outcome = durable.wait().await;
                    let _ = shared.finish(outcome, &fresh);
                });
            }
            Err(_) => error!("A request was dropped outside the runtime; its events are queued at the next start."),
        }
    }
}

fn build_records(config: &Config, event: NewEvent, ids: &mut ulid::Generator, now: u64) -> Accepted {
    let mut next_ulid = || ids.generate().unwrap_or_else(|_| ulid::Ulid::new());
    let id = event.id.unwrap_or_else(|| format!("evt_{}", next_ulid()));
    let subscriptions: Vec<String> = config.router.route(&event.event_type).into_iter().map(str::to_owned).collect();
    let deliveries: Vec<DeliveryRecord> = subscriptions
        .iter()
        .map(|subscription| DeliveryRecord {
            id: DeliveryId(next_ulid()),
            event_id: id.clone(),
            event_type: event.event_type.clone(),
            subscription: subscription.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            schedule_start: 0,
            next_attempt_at: Some(now),
            last_status_code: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let occurred_at = match event.occurred_at {
        Some(at) => rfc3339_utc(at),
        None => crate::clock::ms_to_rfc3339(now),
    };
    let data = RawValue::from_string(event.data).expect("data was validated as JSON");
    let record = EventRecord {
        id,
        event_type: event.event_type,
        occurred_at,
        accepted_at: now,
        fingerprint: event.fingerprint,
        subscriptions,
        deliveries: deliveries.iter().map(|d| d.id).collect(),
        data,
    };
    Accepted { event: record, deliveries }
}

/// `{"id": ..., "subscriptions": [...]}`, the same for the first answer and any repeat.
fn answer(event: &EventRecord) -> Value {
    json!({ "id": event.id, "subscriptions": event.subscriptions })
}
