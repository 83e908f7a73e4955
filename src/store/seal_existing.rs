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
use super::records::{AttemptRecord, EventRecord};
use super::sealing::Keyring;
use super::{keys, StoreError};

const BATCH: usize = 1024;

/// Seals every event's data and fingerprint and every attempt's response body still in the clear.
pub fn seal_records_in_the_clear(db: &sled::Db, keyring: &Keyring) -> Result<(), StoreError> {
    let started = Instant::now();
    let events = reseal(db, keys::EVENT, keyring, |event: &mut EventRecord| {
        let clear = event.sealed.is_none() && event.erased_at.is_none();
        let plain_fingerprint = !event.fingerprint.contains(':');
        if plain_fingerprint {
            event.fingerprint = keyring.keyed_fingerprint(&event.fingerprint);
        }
        clear || plain_fingerprint
    })?;
    let attempts = reseal(db, keys::ATTEMPT, keyring, |attempt: &mut AttemptRecord| {
        attempt.response_body.as_ref().is_some_and(|body| !body.is_empty()) && attempt.sealed_response_body.is_none()
    })?;
    db.flush()?;
    info!(
        events,
        attempts,
        ms = started.elapsed().as_millis() as u64,
        "Records stored before encryption_key was set are sealed now."
    );
    Ok(())
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
