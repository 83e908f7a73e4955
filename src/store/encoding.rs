//! How records are written. Events and attempts are JSON: an event holds the producer's `data` as raw
//! JSON, which only serde_json can carry byte for byte, and both are written once and read rarely.
//! Deliveries are rewritten at every attempt and every one of them is read at each start, so they are a
//! version byte followed by postcard: about a third of the bytes of JSON, and decoded several times
//! faster. Their leading fields are what recovery needs ([`DeliveryState`]), read without the rest.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::records::{AttemptRecord, DeliveryRecord, DeliveryState, EventRecord};

/// The first byte of a delivery record. A later layout gets a new number and a decoder of its own.
const DELIVERY_FORMAT: u8 = 1;

/// A record kept in the store; JSON unless the record says otherwise.
pub trait Record: Serialize + DeserializeOwned {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records always serialize")
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

impl Record for EventRecord {}

impl Record for AttemptRecord {}

impl Record for DeliveryRecord {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![DELIVERY_FORMAT];
        postcard::to_io(self, &mut bytes).expect("records always serialize");
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(delivery_body(bytes)?).map_err(|e| format!("bad delivery record: {e}"))
    }
}

/// The leading fields of a delivery record, borrowing its subscription name from `bytes`.
pub fn delivery_state(bytes: &[u8]) -> Result<DeliveryState<'_>, String> {
    let (state, _rest) =
        postcard::take_from_bytes(delivery_body(bytes)?).map_err(|e| format!("bad delivery record: {e}"))?;
    Ok(state)
}

fn delivery_body(bytes: &[u8]) -> Result<&[u8], String> {
    match bytes.split_first() {
        Some((&DELIVERY_FORMAT, body)) => Ok(body),
        Some((other, _)) => Err(format!("delivery record format {other} is unknown to this version of hookrelay")),
        None => Err("empty delivery record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeliveryId, DeliveryStatus};

    fn delivery() -> DeliveryRecord {
        DeliveryRecord {
            id: DeliveryId(ulid::Ulid::new()),
            event_id: "evt_01J".into(),
            event_type: "lab.completed".into(),
            subscription: "vetigen".into(),
            status: DeliveryStatus::Pending,
            attempts: 2,
            schedule_start: 1,
            next_attempt_at: Some(1_795_000_000_000),
            last_status_code: Some(503),
            last_error: Some("receiver answered 503 Service Unavailable".into()),
            created_at: 1_794_000_000_000,
            updated_at: 1_794_500_000_000,
        }
    }

    #[test]
    fn a_delivery_round_trips_and_is_smaller_than_json() {
        let record = delivery();
        let bytes = record.encode();
        assert_eq!(format!("{:?}", DeliveryRecord::decode(&bytes).unwrap()), format!("{record:?}"));
        assert!(bytes.len() * 2 < serde_json::to_vec(&record).unwrap().len(), "{} bytes", bytes.len());
    }

    #[test]
    fn the_state_is_read_from_the_leading_fields() {
        let bytes = delivery().encode();
        let state = delivery_state(&bytes).unwrap();
        assert_eq!(state.subscription, "vetigen");
        assert_eq!(state.status, DeliveryStatus::Pending);
        assert_eq!(state.next_attempt_at, Some(1_795_000_000_000));
        assert!(matches!(state.subscription, std::borrow::Cow::Borrowed(_)), "no copy");
    }

    #[test]
    fn an_unknown_format_or_damaged_record_is_an_error_not_a_panic() {
        let mut bytes = delivery().encode();
        bytes[0] = 9;
        assert!(DeliveryRecord::decode(&bytes).unwrap_err().contains("format 9"));
        assert!(DeliveryRecord::decode(&[]).is_err());
        let good = delivery().encode();
        for cut in 0..good.len() {
            let _ = DeliveryRecord::decode(&good[..cut]);
            let _ = delivery_state(&good[..cut]);
        }
        assert!(DeliveryRecord::decode(&good[..good.len() - 1]).is_err());
    }
}
