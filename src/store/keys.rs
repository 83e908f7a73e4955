//! Key layout of the single sled tree. One tree, so that an event and its deliveries go in one atomic
//! batch (sled batches are atomic within a tree).
//!
//! | key | value |
//! |---|---|
//! | `e` `<event id bytes>` | [`EventRecord`](super::EventRecord) |
//! | `d` `<delivery ULID, 16 bytes big-endian>` | [`DeliveryRecord`](super::DeliveryRecord), carrying its latest attempt unless that one is long |
//! | `a` `<delivery ULID, 16 bytes>` `<attempt n, u32 big-endian>` | [`AttemptRecord`](super::AttemptRecord): every attempt but the one its delivery carries (the latest, unless it is long) |
//! | `q` `<the damaged record's key>` | the damaged record's bytes, as found ([`super::transition`]) |
//! | `s` `<status: f or c>` `<delivery ULID, 16 bytes>` | empty: the index of failed and cancelled deliveries ([`super::status_index`]) |
//! | `p` `<subscription name>` | [`PauseRecord`](super::PauseRecord): the subscription is paused (SPEC §6c) |
//! | `m` `order-key-salt` | the secret order keys are hashed with ([`super::order_salt`]) |
//!
//! Big-endian ULIDs make a prefix scan of `d` walk deliveries in acceptance order, and `a` keys list a
//! delivery's attempts in order, the one its record carries (if any) last. So a delivered event is written
//! twice when the first attempt succeeds with a short answer (most do): accepted (`e` and `d` in one
//! batch), then answered (`d`); a long answer adds its `a` key.

use super::{DeliveryId, DeliveryStatus};

pub const EVENT: u8 = b'e';
pub const DELIVERY: u8 = b'd';
pub const ATTEMPT: u8 = b'a';
pub const QUARANTINE: u8 = b'q';
pub const STATUS: u8 = b's';
pub const PAUSE: u8 = b'p';

pub fn pause(subscription: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + subscription.len());
    key.push(PAUSE);
    key.extend_from_slice(subscription.as_bytes());
    key
}

pub fn event(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(EVENT);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The delivery id in a `d` key.
pub fn delivery_id(key: &[u8]) -> Option<DeliveryId> {
    let bytes: [u8; 16] = key.strip_prefix(&[DELIVERY])?.try_into().ok()?;
    Some(DeliveryId(ulid::Ulid(u128::from_be_bytes(bytes))))
}

pub fn delivery(id: DeliveryId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = DELIVERY;
    key[1..].copy_from_slice(&id.0 .0.to_be_bytes());
    key
}

pub fn attempt(id: DeliveryId, n: u32) -> [u8; 21] {
    let mut key = [0u8; 21];
    key[0] = ATTEMPT;
    key[1..17].copy_from_slice(&id.0 .0.to_be_bytes());
    key[17..].copy_from_slice(&n.to_be_bytes());
    key
}

/// The prefix under which all attempts of one delivery live.
pub fn attempts_of(id: DeliveryId) -> [u8; 17] {
    let mut key = delivery(id);
    key[0] = ATTEMPT;
    key
}

/// The first key after every delivery key: the end of a range over deliveries.
pub const DELIVERIES_END: [u8; 1] = [DELIVERY + 1];

/// The byte a status has in the status index; only the statuses indexed have one.
fn status_byte(status: DeliveryStatus) -> Option<u8> {
    match status {
        DeliveryStatus::Failed => Some(b'f'),
        DeliveryStatus::Cancelled => Some(b'c'),
        DeliveryStatus::Pending | DeliveryStatus::Delivered => None,
    }
}

/// A delivery's entry in the status index, if its status is indexed.
pub fn status_entry(status: DeliveryStatus, id: DeliveryId) -> Option<[u8; 18]> {
    let mut key = [0u8; 18];
    key[0] = STATUS;
    key[1] = status_byte(status)?;
    key[2..].copy_from_slice(&id.0 .0.to_be_bytes());
    Some(key)
}

/// The prefix of every index entry of `status`, if it is indexed.
pub fn status_prefix(status: DeliveryStatus) -> Option<[u8; 2]> {
    Some([STATUS, status_byte(status)?])
}

/// The delivery id in a status index entry.
pub fn status_entry_id(key: &[u8]) -> Option<DeliveryId> {
    let bytes: [u8; 16] = key.get(2..)?.try_into().ok()?;
    Some(DeliveryId(ulid::Ulid(u128::from_be_bytes(bytes))))
}

/// Where a damaged record under `key` is kept aside.
pub fn quarantined(key: &[u8]) -> Vec<u8> {
    let mut moved = Vec::with_capacity(1 + key.len());
    moved.push(QUARANTINE);
    moved.extend_from_slice(key);
    moved
}

/// A key as an operator reads it: `e:<event id>`, `d:dlv_<ULID>`, `a:dlv_<ULID>/<n>`, `q:` + the
/// quarantined key; anything else as hex.
pub fn printable(key: &[u8]) -> String {
    let id = |bytes: &[u8]| -> Option<DeliveryId> {
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        Some(DeliveryId(ulid::Ulid(u128::from_be_bytes(bytes))))
    };
    let known = match key.split_first() {
        Some((&EVENT, rest)) => Some(format!("e:{}", String::from_utf8_lossy(rest))),
        Some((&DELIVERY, rest)) => id(rest).map(|id| format!("d:{id}")),
        Some((&ATTEMPT, rest)) if rest.len() == 20 => {
            let n = u32::from_be_bytes([rest[16], rest[17], rest[18], rest[19]]);
            id(&rest[..16]).map(|id| format!("a:{id}/{n}"))
        }
        Some((&QUARANTINE, rest)) => Some(format!("q:{}", printable(rest))),
        Some((&PAUSE, rest)) => Some(format!("p:{}", String::from_utf8_lossy(rest))),
        Some((&STATUS, [status @ (b'f' | b'c'), rest @ ..])) => {
            id(rest).map(|id| format!("s:{}/{id}", if *status == b'f' { "failed" } else { "cancelled" }))
        }
        _ => None,
    };
    known.unwrap_or_else(|| format!("hex:{}", hex::encode(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_as_operators_read_them() {
        let id = DeliveryId(ulid::Ulid(7));
        assert_eq!(printable(&event("evt_1")), "e:evt_1");
        assert_eq!(printable(&delivery(id)), format!("d:{id}"));
        assert_eq!(printable(&attempt(id, 3)), format!("a:{id}/3"));
        assert_eq!(printable(&quarantined(&event("x"))), "q:e:x");
        assert_eq!(printable(&status_entry(DeliveryStatus::Failed, id).unwrap()), format!("s:failed/{id}"));
        assert_eq!(printable(&status_entry(DeliveryStatus::Cancelled, id).unwrap()), format!("s:cancelled/{id}"));
        assert_eq!(status_entry(DeliveryStatus::Delivered, id), None);
        assert_eq!(status_entry_id(&status_entry(DeliveryStatus::Failed, id).unwrap()), Some(id));
        assert_eq!(printable(&[b'd', 1]), "hex:6401");
        assert_eq!(printable(&[]), "hex:");
    }
}
