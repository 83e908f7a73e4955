//! The records kept in the store; how each is written to disk is in [`super::encoding`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ulid::Ulid;

/// An accepted event: what the producer sent and where it was routed at acceptance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 UTC.
    pub occurred_at: String,
    /// Unix ms.
    pub accepted_at: u64,
    /// See [`crate::event::NewEvent::fingerprint`]; keyed when payloads are sealed ([`super::sealing`]).
    pub fingerprint: String,
    /// Subscription names it was routed to at acceptance (what a repeat of its id is answered).
    pub subscriptions: Vec<String>,
    /// Its deliveries: one per routed subscription, in that order, then any made by `resend`.
    pub deliveries: Vec<DeliveryId>,
    /// Compact JSON, sent byte for byte; `null` once erased.
    pub data: Box<RawValue>,
    /// Unix ms of `hookrelay erase`, if the event's data was erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<u64>,
    /// `data` sealed at rest ([`super::sealing`]), `data` then being `null`. Set in memory when the record
    /// was read without opening its data: its key is not listed, or the reader needs no data
    /// ([`super::Records::event_metadata`]); the record is then written back with the data as found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl EventRecord {
    /// After a read that opens the data ([`super::Store::event`]): the key that sealed it, when that key
    /// is not listed. The data cannot be read then, so the event cannot be delivered until it is.
    pub fn waiting_for_key(&self) -> Option<super::KeyId> {
        self.sealed.as_deref().and_then(super::sealing::sealed_with)
    }

    /// Removes the event's data (erase), whether it could be read or not.
    pub fn forget_data(&mut self) {
        self.data = null();
        self.sealed = None;
    }

    /// Every field but `data` and `sealed`: the record as sealing writes it, before the sealed data.
    pub(super) fn without_data(&self) -> EventRecord {
        EventRecord {
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            occurred_at: self.occurred_at.clone(),
            accepted_at: self.accepted_at,
            fingerprint: self.fingerprint.clone(),
            subscriptions: self.subscriptions.clone(),
            deliveries: self.deliveries.clone(),
            data: null(),
            erased_at: self.erased_at,
            sealed: None,
        }
    }
}

/// JSON `null`, as erased (or still sealed) data reads.
pub fn null() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// Where a delivery stands. `held` is not stored: it is a pending delivery whose subscription is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    Cancelled,
}

impl DeliveryRecord {
    /// A new delivery of an event to a subscription, pending and due at `now_ms`.
    pub fn pending(id: DeliveryId, event_id: &str, event_type: &str, subscription: &str, now_ms: u64) -> Self {
        DeliveryRecord {
            id,
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            subscription: subscription.to_owned(),
            order_key: None,
            status: DeliveryStatus::Pending,
            attempts: 0,
            schedule_start: 0,
            next_attempt_at: Some(now_ms),
            last_status_code: None,
            last_error: None,
            created_at: now_ms,
            updated_at: now_ms,
            latest_attempt: None,
        }
    }

    /// Marks the delivery `cancelled` (its subscription is gone, or its event erased), at `now_ms`.
    pub fn cancel(&mut self, now_ms: u64) {
        self.status = DeliveryStatus::Cancelled;
        self.next_attempt_at = None;
        self.updated_at = now_ms;
    }
}

impl DeliveryStatus {
    /// Pending deliveries still have work ahead of them; the others are finished.
    pub fn is_finished(self) -> bool {
        self != DeliveryStatus::Pending
    }
}

/// One event on its way to one subscription. Stored as postcard ([`super::encoding`]), where fields are
/// positional: the first four are read alone at start ([`DeliveryState`]), so they stay first and in
/// this order; changing the fields means a new layout number (see `DELIVERY_FORMAT`).
///
/// The record carries its latest attempt, so that recording a delivery's first attempt is one write; a
/// later one adds a write when the attempt it carried moves to a key of its own ([`super::keys`]). A long
/// one is not carried but written under its own key ([`super::Records::carry_attempt`]), which is one
/// write more.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub status: DeliveryStatus,
    /// Unix ms; set while pending.
    pub next_attempt_at: Option<u64>,
    pub subscription: String,
    /// With `order_key`: a keyed hash of the event's value at that pointer (never the value: it may be
    /// patient data). Deliveries of a subscription with the same one go one at a time, oldest first.
    pub order_key: Option<u64>,
    pub id: DeliveryId,
    pub event_id: String,
    pub event_type: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts made before the last requeue (`hookrelay retry`): the retry schedule counts from here.
    pub schedule_start: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The latest attempt (layout 3), moved to its own key when the next one is recorded; none when the
    /// latest is long (it is under its own key already). Sealed with that key as associated data, not
    /// this record's ([`super::sealing`]).
    pub latest_attempt: Option<EmbeddedAttempt>,
}

/// An attempt carried in its delivery's record, encoded exactly as under its own key
/// ([`super::keys::attempt`]): JSON, its response body sealed with that key as the associated data. So
/// it moves to that key as it is, with no sealing or opening on the commit thread, and the delivery
/// record holds no response body in the clear when there is a store key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedAttempt {
    pub n: u32,
    /// Read as one slice (postcard writes bytes and a sequence of `u8` alike).
    #[serde(with = "serde_bytes")]
    pub encoded: Vec<u8>,
}

/// Without the bytes: they may hold a receiver's answer, which is never logged.
impl std::fmt::Debug for EmbeddedAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedAttempt {{ n: {}, {} bytes }}", self.n, self.encoded.len())
    }
}

/// What recovery needs of a delivery record, read without copying its strings: every delivery is read at
/// each start, before the relay is ready, and there may be a million of them.
#[derive(Debug, Deserialize)]
pub struct DeliveryState<'a> {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<u64>,
    #[serde(borrow)]
    pub subscription: Cow<'a, str>,
    pub order_key: Option<u64>,
}

/// A delivery record of layout 1 (before `order_key`), read as found and converted.
#[derive(Deserialize)]
pub(super) struct DeliveryRecordV1 {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<u64>,
    pub subscription: String,
    pub id: DeliveryId,
    pub event_id: String,
    pub event_type: String,
    pub attempts: u32,
    pub schedule_start: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl From<DeliveryRecordV1> for DeliveryRecord {
    fn from(old: DeliveryRecordV1) -> DeliveryRecord {
        DeliveryRecord {
            status: old.status,
            next_attempt_at: old.next_attempt_at,
            subscription: old.subscription,
            order_key: None,
            id: old.id,
            event_id: old.event_id,
            event_type: old.event_type,
            attempts: old.attempts,
            schedule_start: old.schedule_start,
            last_status_code: old.last_status_code,
            last_error: old.last_error,
            created_at: old.created_at,
            updated_at: old.updated_at,
            latest_attempt: None,
        }
    }
}

/// The leading fields of a layout-1 delivery record.
#[derive(Deserialize)]
pub(super) struct DeliveryStateV1<'a> {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<u64>,
    #[serde(borrow)]
    pub subscription: Cow<'a, str>,
}

/// Why a subscription is paused (SPEC §6c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// `pause_after` consecutive failed attempts; probes resume it.
    Failing,
    /// The receiver answered 410 Gone; only `hookrelay resume` resumes it.
    Gone,
    /// `hookrelay pause`; only `hookrelay resume` resumes it.
    ByHand,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Failing => "failing",
            PauseReason::Gone => "gone",
            PauseReason::ByHand => "by_hand",
        }
    }
}

/// A paused subscription, stored under its name (`p` keys) so that the pause survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    pub reason: PauseReason,
    /// Unix ms.
    pub since: u64,
    /// The failed attempt's error that paused it, if one did.
    pub last_error: Option<String>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1-based, as sent in `x-hookrelay-attempt`.
    pub n: u32,
    pub started_at: u64,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 4 KiB), for operators debugging a rejection.
    pub response_body: Option<String>,
    /// `response_body` sealed at rest ([`super::sealing`]); set in memory as `EventRecord::sealed` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_response_body: Option<String>,
}

impl AttemptRecord {
    /// Removes the stored answer (erase), whether it could be read or not; says whether there was one.
    pub fn forget_response_body(&mut self) -> bool {
        let had = self.response_body.is_some() || self.sealed_response_body.is_some();
        self.response_body = None;
        self.sealed_response_body = None;
        had
    }
}

/// A delivery's identity: a ULID, so ids sort in acceptance order. Shown as `dlv_<ULID>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryId(pub Ulid);

impl DeliveryId {
    const PREFIX: &'static str = "dlv_";

    pub fn parse(text: &str) -> Option<DeliveryId> {
        let ulid = text.strip_prefix(Self::PREFIX)?;
        Ulid::from_string(ulid).ok().map(DeliveryId)
    }
}

impl std::fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

/// `dlv_<ULID>` in JSON (events list their deliveries so); the 128-bit number in binary records.
impl Serialize for DeliveryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u128(self.0 .0)
        }
    }
}

impl<'de> Deserialize<'de> for DeliveryId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return u128::deserialize(deserializer).map(|n| DeliveryId(Ulid(n)));
        }
        let text = String::deserialize(deserializer)?;
        DeliveryId::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid delivery id `{text}`")))
    }
}

#[cfg(test)]
impl AttemptRecord {
    /// A failed attempt (a 500) that `body` answered: the store's unit tests' fixture.
    pub(super) fn failed_with(n: u32, body: &str) -> AttemptRecord {
        AttemptRecord {
            n,
            started_at: 1,
            duration_ms: 1,
            status_code: Some(500),
            error: None,
            response_body: Some(body.to_owned()),
            sealed_response_body: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_round_trip_and_sort_by_creation() {
        let mut generator = ulid::Generator::new();
        let first = DeliveryId(generator.generate().unwrap());
        let second = DeliveryId(generator.generate().unwrap());
        assert!(first < second);
        assert_eq!(DeliveryId::parse(&first.to_string()), Some(first));
        assert_eq!(DeliveryId::parse("evt_x"), None);
    }
}
