//! Seals the records a store holds in the clear, at the first start with a key after starts without one
//! ([`super::key_log`]), so that from then on no payload of the store is in its files in the clear
//! (SPEC §8; sled may keep old copies of freed pages until it reuses them).
//!
//! It runs at open, before the commit thread starts (like the format upgrades), writes sled directly in
//! batches and flushes; interrupted by a crash, it runs again at the next start, and seals only what is
//! still in the clear, so repeating it is safe. Damaged records are left for the transitions to
//! quarantine.

use std::time::Instant;

use tracing::info;

use super::encoding::Record;
use super::records::{AttemptRecord, DeliveryRecord, EventRecord};
use super::sealing::Keyring;
use super::{keys, StoreError};

const BATCH: usize = 1024;

/// Seals every event's data and fingerprint and every attempt's response body still in the clear; returns
/// how many events and attempts it rewrote.
pub fn seal_records_in_the_clear(db: &sled::Db, keyring: &Keyring) -> Result<(u64, u64), StoreError> {
    let started = Instant::now();
    let events = reseal(db, keys::EVENT, keyring, |event: &mut EventRecord| {
        let clear = event.sealed.is_none() && event.erased_at.is_none();
        let plain_fingerprint = super::sealing::fingerprint_key(&event.fingerprint).is_none();
        if plain_fingerprint {
            event.fingerprint = keyring.keyed_fingerprint(&event.fingerprint);
        }
        clear || plain_fingerprint
    })?;
    let under_own_keys = reseal(db, keys::ATTEMPT, keyring, |attempt: &mut AttemptRecord| body_in_the_clear(attempt))?;
    // The attempt a delivery's record carries, if any (its latest, unless that one is long). Sealing may
    // take it a little past the length carried ones are kept to; it moves to its own key with the next.
    let carried = reseal(db, keys::DELIVERY, keyring, |delivery: &mut DeliveryRecord| {
        delivery.rewrite_latest_attempt(keyring, |attempt| body_in_the_clear(attempt)).unwrap_or(false)
    })?;
    let attempts = under_own_keys + carried;
    db.flush()?;
    if events + attempts > 0 {
        info!(
            events,
            attempts,
            ms = started.elapsed().as_millis() as u64,
            "Records stored before encryption_key was set are sealed now."
        );
    }
    Ok((events, attempts))
}

fn body_in_the_clear(attempt: &AttemptRecord) -> bool {
    attempt.response_body.as_ref().is_some_and(|body| !body.is_empty()) && attempt.sealed_response_body.is_none()
}

/// Rewrites, sealed, each record under `prefix` for which `in_the_clear` says so (it may also change the
/// record); returns how many.
fn reseal<T: Record>(
    db: &sled::Db,
    prefix: u8,
    keyring: &Keyring,
    mut in_the_clear: impl FnMut(&mut T) -> bool,
) -> Result<u64, StoreError> {
    let mut sealed = 0;
    let mut batch = sled::Batch::default();
    let mut batched = 0;
    for entry in db.scan_prefix([prefix]) {
        let (key, value) = entry?;
        // Read without opening anything: what is sealed already stays as it is.
        let Ok(mut record) = T::decode(&key, &value, &Keyring::default()) else { continue };
        if !in_the_clear(&mut record) {
            continue;
        }
        batch.insert(&key, record.encode(&key, keyring));
        batched += 1;
        sealed += 1;
        if batched == BATCH {
            db.apply_batch(std::mem::take(&mut batch))?;
            batched = 0;
        }
    }
    db.apply_batch(batch)?;
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::null;
    use crate::store::{DeliveryId, EmbeddedAttempt, StoreKey};

    fn event(id: &str, data: &str) -> EventRecord {
        EventRecord {
            id: id.into(),
            event_type: "lab.completed".into(),
            occurred_at: "2026-12-02T00:00:00Z".into(),
            accepted_at: 1,
            fingerprint: "ab12".into(),
            subscriptions: vec![],
            deliveries: vec![],
            data: serde_json::value::RawValue::from_string(data.into()).unwrap(),
            erased_at: None,
            sealed: None,
        }
    }

    #[test]
    fn records_in_the_clear_are_sealed_once_and_sealed_ones_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).temporary(true).open().unwrap();
        let (clear, old) = (Keyring::default(), Keyring::new(vec![StoreKey::new(&[1; 32])]));
        let ring = Keyring::new(vec![StoreKey::new(&[2; 32]), StoreKey::new(&[1; 32])]);
        let id = DeliveryId(ulid::Ulid::new());
        let put = |key: Vec<u8>, value: Vec<u8>| db.insert(key, value).unwrap();
        put(keys::event("plain"), event("plain", r#"{"name":"PLAIN"}"#).encode(&keys::event("plain"), &clear));
        let mut sealed_by_old = event("old", r#"{"name":"OLD"}"#);
        sealed_by_old.fingerprint = old.keyed_fingerprint("ab12");
        put(keys::event("old"), sealed_by_old.encode(&keys::event("old"), &old));
        let mut erased = event("erased", "null");
        (erased.erased_at, erased.data) = (Some(2), null());
        put(keys::event("erased"), erased.encode(&keys::event("erased"), &clear));
        put(keys::attempt(id, 1).to_vec(), AttemptRecord::failed_with(1, "BODY").encode(&keys::attempt(id, 1), &clear));
        put(keys::attempt(id, 2).to_vec(), AttemptRecord::failed_with(2, "").encode(&keys::attempt(id, 2), &clear));
        let mut delivery = DeliveryRecord::pending(id, "plain", "lab.completed", "vet", 1);
        delivery.latest_attempt = Some(EmbeddedAttempt::encode(id, &AttemptRecord::failed_with(3, "LATEST"), &clear));
        put(keys::delivery(id).to_vec(), delivery.encode(&keys::delivery(id), &clear));
        let old_before = db.get(keys::event("old")).unwrap().unwrap();

        // The plain event's data and fingerprint, the erased one's fingerprint, the non-empty bodies (one
        // under its own key, one carried by its delivery).
        assert_eq!(seal_records_in_the_clear(&db, &ring).unwrap(), (2, 2));
        let raw = |key: &[u8]| String::from_utf8(db.get(key).unwrap().unwrap().to_vec()).unwrap();
        let delivery_bytes = db.get(keys::delivery(id)).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&delivery_bytes).contains("LATEST"));
        let delivery = DeliveryRecord::decode(&keys::delivery(id), &delivery_bytes, &ring).unwrap();
        let latest = delivery.latest_attempt.unwrap().decode(id, &ring).unwrap();
        assert_eq!((latest.n, latest.response_body.as_deref()), (3, Some("LATEST")));
        assert!(!raw(&keys::event("plain")).contains("PLAIN") && raw(&keys::event("plain")).contains("\"sealed\""));
        assert!(!raw(&keys::attempt(id, 1)).contains("BODY"));
        assert_eq!(db.get(keys::event("old")).unwrap().unwrap(), old_before, "sealed with the older key: as found");
        let opened = EventRecord::decode(&keys::event("plain"), raw(&keys::event("plain")).as_bytes(), &ring).unwrap();
        assert_eq!(opened.data.get(), r#"{"name":"PLAIN"}"#);
        assert!(ring.same_fingerprint(&opened.fingerprint, "ab12"));
        let body = AttemptRecord::decode(&keys::attempt(id, 1), raw(&keys::attempt(id, 1)).as_bytes(), &ring).unwrap();
        assert_eq!(body.response_body.as_deref(), Some("BODY"));
        assert_eq!(seal_records_in_the_clear(&db, &ring).unwrap(), (0, 0), "repeating it is safe");
    }
}
