//! How records are written. Events and attempts are JSON: an event holds the producer's `data` as raw
//! JSON, which only serde_json can carry byte for byte, and both are written once and read rarely.
//! Deliveries are rewritten at every attempt and every one of them is read at each start, so they are a
//! version byte followed by postcard: about a third of the bytes of JSON, and decoded several times
//! faster. Their leading fields are what recovery needs ([`DeliveryState`]), read without the rest; their
//! last field is their latest attempt, as encoded for its own key ([`EmbeddedAttempt`]).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use super::keys;
use super::records::{
    AttemptRecord, DeliveryId, DeliveryRecord, DeliveryRecordV1, DeliveryState, DeliveryStateV1, EmbeddedAttempt,
    EventRecord, PauseRecord,
};
use super::sealing::{Keyring, Unopened};

/// The first byte of a delivery record. A later layout gets a new number and a decoder of its own:
/// 1 had no `order_key` (read as none), 2 has it as the fourth field, 3 adds `latest_attempt` last.
const DELIVERY_FORMAT: u8 = 3;
const DELIVERY_FORMAT_V2: u8 = 2;
const DELIVERY_FORMAT_V1: u8 = 1;

/// A record kept in the store under the key `at`; JSON unless the record says otherwise. Payloads are
/// sealed with `keyring` on the way in and opened on the way out ([`super::sealing`]), so every read and
/// write of a record goes through these two.
pub trait Record: Serialize + DeserializeOwned {
    fn encode(&self, at: &[u8], keyring: &Keyring) -> Vec<u8>;

    fn decode(at: &[u8], bytes: &[u8], keyring: &Keyring) -> Result<Self, String>;
}

fn json<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records always serialize")
}

impl Record for EventRecord {
    /// The data sealed, unless there is no key, it is erased, or it is still sealed with a key that is
    /// not listed (then it is written back as found).
    fn encode(&self, at: &[u8], keyring: &Keyring) -> Vec<u8> {
        if self.sealed.is_none() && self.erased_at.is_none() {
            if let Some(sealed) = keyring.seal(at, self.data.get().as_bytes()) {
                return json(&EventRecord { sealed: Some(sealed), ..self.without_data() });
            }
        }
        json(self)
    }

    fn decode(at: &[u8], bytes: &[u8], keyring: &Keyring) -> Result<Self, String> {
        let mut event: EventRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if let Some(plaintext) = open(at, event.sealed.as_deref(), keyring)? {
            let text = String::from_utf8(plaintext).map_err(|_| "sealed data is not UTF-8")?;
            event.data = RawValue::from_string(text).map_err(|e| format!("sealed data is not JSON: {e}"))?;
            event.sealed = None;
        }
        Ok(event)
    }
}

impl Record for AttemptRecord {
    /// The response body sealed, unless there is no key or it is empty (most receivers answer 2xx with no
    /// body; an empty one holds nothing to protect).
    fn encode(&self, at: &[u8], keyring: &Keyring) -> Vec<u8> {
        if let Some(body) = self.response_body.as_ref().filter(|body| !body.is_empty()) {
            if let Some(sealed) = keyring.seal(at, body.as_bytes()) {
                // Every field but the body, which is not copied only to be dropped.
                return json(&AttemptRecord {
                    n: self.n,
                    started_at: self.started_at,
                    duration_ms: self.duration_ms,
                    status_code: self.status_code,
                    error: self.error.clone(),
                    response_body: None,
                    sealed_response_body: Some(sealed),
                });
            }
        }
        json(self)
    }

    fn decode(at: &[u8], bytes: &[u8], keyring: &Keyring) -> Result<Self, String> {
        let mut attempt: AttemptRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if let Some(plaintext) = open(at, attempt.sealed_response_body.as_deref(), keyring)? {
            attempt.response_body = Some(String::from_utf8(plaintext).map_err(|_| "sealed body is not UTF-8")?);
            attempt.sealed_response_body = None;
        }
        Ok(attempt)
    }
}

/// A sealed value's plaintext; `None` when there is none, or its key is not listed (it stays sealed).
fn open(at: &[u8], sealed: Option<&str>, keyring: &Keyring) -> Result<Option<Vec<u8>>, String> {
    match sealed.map(|sealed| keyring.open(at, sealed)) {
        None | Some(Err(Unopened::KeyNotListed(_))) => Ok(None),
        Some(Ok(plaintext)) => Ok(Some(plaintext)),
        Some(Err(Unopened::Damaged(why))) => Err(why.to_owned()),
    }
}

/// Nothing to seal here: a delivery holds no payload, and its latest attempt is sealed already.
impl Record for DeliveryRecord {
    fn encode(&self, _at: &[u8], _keyring: &Keyring) -> Vec<u8> {
        let mut bytes = vec![DELIVERY_FORMAT];
        postcard::to_io(self, &mut bytes).expect("records always serialize");
        bytes
    }

    fn decode(_at: &[u8], bytes: &[u8], _keyring: &Keyring) -> Result<Self, String> {
        let bad = |e: postcard::Error| format!("bad delivery record: {e}");
        match delivery_body(bytes)? {
            (DELIVERY_FORMAT_V1, body) => postcard::from_bytes::<DeliveryRecordV1>(body).map(Into::into).map_err(bad),
            (DELIVERY_FORMAT_V2, body) => {
                // Layout 3 is layout 2 followed by the latest attempt: with the byte of an absent one
                // (postcard writes `None` as 0), a layout-2 body reads as layout 3 with no attempt carried.
                let mut padded = Vec::with_capacity(body.len() + 1);
                padded.extend_from_slice(body);
                padded.push(0);
                whole(postcard::take_from_bytes(&padded).map_err(bad)?)
            }
            (_, body) => whole(postcard::take_from_bytes(body).map_err(bad)?),
        }
    }
}

/// A record decoded from a whole body: bytes left over mean the record is not what it says it is.
fn whole(decoded: (DeliveryRecord, &[u8])) -> Result<DeliveryRecord, String> {
    match decoded {
        (record, []) => Ok(record),
        (_, rest) => Err(format!("bad delivery record: {} bytes after its last field", rest.len())),
    }
}

impl DeliveryRecord {
    /// Changes the attempt the record carries, read without opening its body and encoded again with
    /// `seal_with`, if `change` says it changed it; says whether it did. `Err` when the attempt does not
    /// read; `Ok(false)` when the record carries none.
    pub fn rewrite_latest_attempt(
        &mut self,
        seal_with: &Keyring,
        change: impl FnOnce(&mut AttemptRecord) -> bool,
    ) -> Result<bool, String> {
        let Some(latest) = &self.latest_attempt else { return Ok(false) };
        let mut attempt = latest.decode(self.id, &Keyring::default())?;
        if !change(&mut attempt) {
            return Ok(false);
        }
        self.latest_attempt = Some(EmbeddedAttempt::encode(self.id, &attempt, seal_with));
        Ok(true)
    }
}

impl EmbeddedAttempt {
    /// `attempt` of `delivery` as its record carries it, its response body sealed with `keyring`.
    pub fn encode(delivery: DeliveryId, attempt: &AttemptRecord, keyring: &Keyring) -> EmbeddedAttempt {
        EmbeddedAttempt { n: attempt.n, encoded: attempt.encode(&keys::attempt(delivery, attempt.n), keyring) }
    }

    /// The attempt, its body opened with `keyring` (one sealed with a key it does not list stays sealed).
    pub fn decode(&self, delivery: DeliveryId, keyring: &Keyring) -> Result<AttemptRecord, String> {
        AttemptRecord::decode(&keys::attempt(delivery, self.n), &self.encoded, keyring)
    }
}

/// The leading fields of a delivery record, borrowing its subscription name from `bytes`.
pub fn delivery_state(bytes: &[u8]) -> Result<DeliveryState<'_>, String> {
    let bad = |e: postcard::Error| format!("bad delivery record: {e}");
    match delivery_body(bytes)? {
        (DELIVERY_FORMAT_V1, body) => {
            let (old, _rest): (DeliveryStateV1<'_>, _) = postcard::take_from_bytes(body).map_err(bad)?;
            let DeliveryStateV1 { status, next_attempt_at, subscription } = old;
            Ok(DeliveryState { status, next_attempt_at, subscription, order_key: None })
        }
        (_, body) => Ok(postcard::take_from_bytes(body).map_err(bad)?.0),
    }
}

/// The layout number and the postcard body of a delivery record.
fn delivery_body(bytes: &[u8]) -> Result<(u8, &[u8]), String> {
    match bytes.split_first() {
        Some((&layout, body)) if (DELIVERY_FORMAT_V1..=DELIVERY_FORMAT).contains(&layout) => Ok((layout, body)),
        Some((other, _)) => Err(format!("delivery record format {other} is unknown to this version of hookrelay")),
        None => Err("empty delivery record".into()),
    }
}

/// Pause records are JSON: written at a pause or a resume, read at start.
impl Record for PauseRecord {
    fn encode(&self, _at: &[u8], _keyring: &Keyring) -> Vec<u8> {
        json(self)
    }

    fn decode(_at: &[u8], bytes: &[u8], _keyring: &Keyring) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("bad pause record: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::sealing::Keyring;
    use super::*;
    use crate::store::{DeliveryId, DeliveryStatus};

    fn delivery() -> DeliveryRecord {
        DeliveryRecord {
            id: DeliveryId(ulid::Ulid::new()),
            event_id: "evt_01J".into(),
            event_type: "lab.completed".into(),
            subscription: "vetigen".into(),
            order_key: Some(0x0123_4567_89ab_cdef),
            status: DeliveryStatus::Pending,
            attempts: 2,
            schedule_start: 1,
            next_attempt_at: Some(1_795_000_000_000),
            last_status_code: Some(503),
            last_error: Some("receiver answered 503 Service Unavailable".into()),
            created_at: 1_794_000_000_000,
            updated_at: 1_794_500_000_000,
            latest_attempt: None,
        }
    }

    #[test]
    fn a_delivery_round_trips_and_is_smaller_than_json() {
        let record = delivery();
        let bytes = record.encode(b"d", &Keyring::default());
        assert_eq!(
            format!("{:?}", DeliveryRecord::decode(b"d", &bytes, &Keyring::default()).unwrap()),
            format!("{record:?}")
        );
        assert!(bytes.len() * 2 < serde_json::to_vec(&record).unwrap().len(), "{} bytes", bytes.len());
    }

    #[test]
    fn the_state_is_read_from_the_leading_fields() {
        let bytes = delivery().encode(b"d", &Keyring::default());
        let state = delivery_state(&bytes).unwrap();
        assert_eq!(state.subscription, "vetigen");
        assert_eq!(state.status, DeliveryStatus::Pending);
        assert_eq!(state.next_attempt_at, Some(1_795_000_000_000));
        assert!(matches!(state.subscription, std::borrow::Cow::Borrowed(_)), "no copy");
        assert_eq!(state.order_key, Some(0x0123_4567_89ab_cdef));
    }

    /// Records written before `order_key` (layout 1) still read, with no order key.
    #[test]
    fn a_layout_1_record_reads_without_an_order_key() {
        #[derive(serde::Serialize)]
        struct V1<'a> {
            status: DeliveryStatus,
            next_attempt_at: Option<u64>,
            subscription: &'a str,
            id: DeliveryId,
            event_id: &'a str,
            event_type: &'a str,
            attempts: u32,
            schedule_start: u32,
            last_status_code: Option<u16>,
            last_error: Option<&'a str>,
            created_at: u64,
            updated_at: u64,
        }
        let now = delivery();
        let old = V1 {
            status: now.status,
            next_attempt_at: now.next_attempt_at,
            subscription: &now.subscription,
            id: now.id,
            event_id: &now.event_id,
            event_type: &now.event_type,
            attempts: now.attempts,
            schedule_start: now.schedule_start,
            last_status_code: now.last_status_code,
            last_error: now.last_error.as_deref(),
            created_at: now.created_at,
            updated_at: now.updated_at,
        };
        let mut bytes = vec![DELIVERY_FORMAT_V1];
        postcard::to_io(&old, &mut bytes).unwrap();
        let read = DeliveryRecord::decode(b"d", &bytes, &Keyring::default()).unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", DeliveryRecord { order_key: None, ..now }));
        let state = delivery_state(&bytes).unwrap();
        assert_eq!((state.subscription.as_ref(), state.order_key), ("vetigen", None));
    }

    /// Records written before `latest_attempt` (layout 2) still read, carrying no attempt; one of layout 3
    /// carries its attempt as encoded, and bytes past its last field make it damaged.
    #[test]
    fn a_layout_2_record_reads_carrying_no_attempt() {
        let now = delivery();
        let bytes = now.encode(b"d", &Keyring::default());
        assert_eq!(bytes.last(), Some(&0), "an absent latest attempt is postcard's None");
        let mut old = bytes[..bytes.len() - 1].to_vec();
        old[0] = DELIVERY_FORMAT_V2;
        let read = DeliveryRecord::decode(b"d", &old, &Keyring::default()).unwrap();
        assert_eq!(format!("{read:?}"), format!("{now:?}"));
        assert_eq!(delivery_state(&old).unwrap().order_key, now.order_key);

        let attempt = AttemptRecord {
            n: 3,
            started_at: 1,
            duration_ms: 2,
            status_code: Some(200),
            error: None,
            response_body: Some("ANSWER".into()),
            sealed_response_body: None,
        };
        let carrying = DeliveryRecord {
            latest_attempt: Some(EmbeddedAttempt::encode(now.id, &attempt, &Keyring::default())),
            ..now
        };
        let bytes = carrying.encode(b"d", &Keyring::default());
        let read = DeliveryRecord::decode(b"d", &bytes, &Keyring::default()).unwrap();
        assert_eq!(read.latest_attempt, carrying.latest_attempt);
        let latest = read.latest_attempt.unwrap().decode(carrying.id, &Keyring::default()).unwrap();
        assert_eq!((latest.n, latest.response_body.as_deref()), (3, Some("ANSWER")));
        assert!(!format!("{carrying:?}").contains("ANSWER"), "a record's Debug shows no answer");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(DeliveryRecord::decode(b"d", &longer, &Keyring::default()).unwrap_err().contains("after its last"));
    }

    #[test]
    fn an_unknown_format_or_damaged_record_is_an_error_not_a_panic() {
        let mut bytes = delivery().encode(b"d", &Keyring::default());
        bytes[0] = 9;
        assert!(DeliveryRecord::decode(b"d", &bytes, &Keyring::default()).unwrap_err().contains("format 9"));
        assert!(DeliveryRecord::decode(b"d", &[], &Keyring::default()).is_err());
        let good = delivery().encode(b"d", &Keyring::default());
        for cut in 0..good.len() {
            let _ = DeliveryRecord::decode(b"d", &good[..cut], &Keyring::default());
            let _ = delivery_state(&good[..cut]);
        }
        assert!(DeliveryRecord::decode(b"d", &good[..good.len() - 1], &Keyring::default()).is_err());
    }
}
