//! Accepting events: records built from the request, then the lifecycle owner's create transition, which
//! decides idempotency, checks capacity and makes everything durable before 202.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tracing::debug;

use crate::clock::{now_ms, rfc3339_utc};
use crate::config::Config;
use crate::event::{NewEvent, Submission};
use crate::lifecycle::{Candidate, Created, Deliveries};
use crate::store::{Accepted, DeliveryId, DeliveryRecord, EventRecord, StoreError};

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
    /// Of those, the events no subscription takes (stored, delivered nowhere).
    pub unrouted: usize,
    pub body: Value,
}

pub struct Acceptor {
    pub config: Arc<ArcSwap<Config>>,
    deliveries: Arc<Deliveries>,
    /// Makes event and delivery ids strictly increasing.
    ids: std::sync::Mutex<ulid::Generator>,
}

impl Acceptor {
    pub fn new(config: Arc<ArcSwap<Config>>, deliveries: Arc<Deliveries>) -> Self {
        Acceptor { config, deliveries, ids: std::sync::Mutex::new(ulid::Generator::new()) }
    }

    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    pub async fn accept(&self, submission: Submission) -> Result<Answer, Refusal> {
        let config = self.config.load_full();
        let Built { candidates, slots, unrouted } = self.candidates(&config, submission.events)?;
        let created = self.deliveries.create(candidates, config.relay.max_pending)?.wait().await?;
        let known = match created {
            Created::Stored(known) => known,
            Created::Conflict(id) => return Err(Refusal::Conflict(id)),
            Created::Backlogged(unfinished) => return Err(Refusal::Backlogged(unfinished)),
        };
        let new_events = known.iter().filter(|k| k.is_none()).count();
        // A repeat of a known id was reported when it was first stored.
        let unrouted: Vec<Unrouted> =
            unrouted.into_iter().filter(|event| known.get(event.candidate).is_some_and(Option::is_none)).collect();
        for event in &unrouted {
            debug!(event_id = %event.event_id, event_type = %event.event_type, "Event matched no subscription.");
        }
        let answers: Vec<Value> = slots
            .into_iter()
            .map(|slot| match &known[slot.candidate] {
                Some(earlier) => answer(earlier),
                None => slot.answer,
            })
            .collect();
        debug!(events = new_events, known = answers.len() - new_events, "Events accepted.");
        let body =
            if submission.is_batch { Value::Array(answers) } else { answers.into_iter().next().unwrap_or(Value::Null) };
        Ok(Answer { new_events, unrouted: unrouted.len(), body })
    }

    /// Builds the records of a request's events. An id given twice in one request is one candidate (a
    /// different body under it is a conflict); the store decides whether a candidate is known.
    fn candidates(&self, config: &Config, events: Vec<NewEvent>) -> Result<Built, Refusal> {
        let now = now_ms();
        // The id lock is held for one id at a time, not while records are built and encoded.
        let mut next_ulid = || {
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            ids.generate().unwrap_or_else(|_| ulid::Ulid::new())
        };
        let mut candidates: Vec<Candidate> = Vec::with_capacity(events.len());
        let mut slots: Vec<Slot> = Vec::with_capacity(events.len());
        let mut unrouted: Vec<Unrouted> = Vec::new();
        // Producer id → index in `candidates`, for this request.
        let mut in_this_request: HashMap<String, usize> = HashMap::new();
        for event in events {
            if let Some(id) = &event.id {
                if let Some(&index) = in_this_request.get(id) {
                    if candidates[index].fingerprint != event.fingerprint {
                        return Err(Refusal::Conflict(id.clone()));
                    }
                    let first = slots.iter().find(|slot| slot.candidate == index).map(|slot| slot.answer.clone());
                    slots.push(Slot { candidate: index, answer: first.unwrap_or(Value::Null) });
                    continue;
                }
                in_this_request.insert(id.clone(), candidates.len());
            }
            let producer_id = event.id.is_some();
            let mut accepted = build_records(config, event, &mut next_ulid, now)?;
            crate::order_key::assign(&mut accepted, config, self.deliveries.store().order_salt());
            if accepted.deliveries.is_empty() {
                let (event_id, event_type) = (accepted.event.id.clone(), accepted.event.event_type.clone());
                unrouted.push(Unrouted { candidate: candidates.len(), event_id, event_type });
            }
            slots.push(Slot { candidate: candidates.len(), answer: answer(&accepted.event) });
            candidates.push(Candidate::new(accepted, producer_id, self.deliveries.keyring()));
        }
        Ok(Built { candidates, slots, unrouted })
    }
}

/// A request's events, built: the candidates of the create transition, one slot per event, and the
/// candidates no subscription takes.
struct Built {
    candidates: Vec<Candidate>,
    slots: Vec<Slot>,
    unrouted: Vec<Unrouted>,
}

/// A candidate that matched no subscription: reported (id and type only, never data) once stored.
struct Unrouted {
    candidate: usize,
    event_id: String,
    event_type: String,
}

/// One event of the request, in order: which candidate answers for it, and its answer if that candidate
/// is stored now.
struct Slot {
    candidate: usize,
    answer: Value,
}

fn build_records(
    config: &Config,
    event: NewEvent,
    next_ulid: &mut impl FnMut() -> ulid::Ulid,
    now: u64,
) -> Result<Accepted, Refusal> {
    let id = event.id.unwrap_or_else(|| format!("evt_{}", next_ulid()));
    let subscriptions: Vec<String> = config.router.route(&event.event_type).into_iter().map(str::to_owned).collect();
    let deliveries: Vec<DeliveryRecord> = subscriptions
        .iter()
        .map(|subscription| DeliveryRecord::pending(DeliveryId(next_ulid()), &id, &event.event_type, subscription, now))
        .collect();
    let occurred_at = match event.occurred_at {
        Some(at) => rfc3339_utc(at),
        None => crate::clock::ms_to_rfc3339(now),
    };
    let data = RawValue::from_string(event.data).map_err(|error| StoreError::Corrupt {
        key: id.clone().into_bytes(),
        reason: format!("the event's data is not JSON after validation: {error}"),
    })?;
    let record = EventRecord {
        id,
        event_type: event.event_type,
        occurred_at,
        accepted_at: now,
        fingerprint: event.fingerprint,
        subscriptions,
        deliveries: deliveries.iter().map(|d| d.id).collect(),
        data,
        erased_at: None,
        sealed: None,
    };
    Ok(Accepted { event: record, deliveries })
}

/// `{"id": ..., "subscriptions": [...]}`, the same for the first answer and any repeat.
fn answer(event: &EventRecord) -> Value {
    json!({ "id": event.id, "subscriptions": event.subscriptions })
}
