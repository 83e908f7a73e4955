//! The secret order keys are hashed with ([`crate::order_key`]): 32 random bytes made once per store, kept
//! under `m` `order-key-salt`, sealed with the store key when there is one (so the hashes in delivery
//! records tell nothing about the values without the key). The salt outlives key rotations: a start
//! with a new sealing key seals it again, so deliveries with the same value keep one order across a
//! rotation. Only when no listed key opens it (every key that sealed it is gone, or it is damaged) is a new
//! one made: then deliveries accepted before and after are ordered separately, which the start logs at
//! ERROR; the old record is kept aside under a key of its own, never deleted.

use rand::TryRngCore;
use tracing::error;

use super::sealing::{sealed_with, Keyring};
use super::StoreError;

/// The salt's key in the tree (the `m` prefix: metadata of the store itself).
const KEY: &[u8] = b"morder-key-salt";

/// A salt stored without a store key is written as this prefix and hex.
const CLEAR: &str = "clear:";

pub const BYTES: usize = 32;

/// Reads the store's salt, making it at the first start, and seals it with the current sealing key if
/// it is not sealed with it yet. Runs at open, before the commit thread starts.
pub fn load(db: &sled::Db, keyring: &Keyring) -> Result<[u8; BYTES], StoreError> {
    let found = db.get(KEY)?;
    let read = found.as_deref().map(|bytes| read(bytes, keyring));
    let (salt, up_to_date) = match read {
        Some(Some(found)) => found,
        Some(None) => {
            // Nothing is deleted: the salt no listed key opens (or a damaged one) is kept aside, so that a
            // key put back can still be matched with it by hand.
            let kept = format!("{}-before-{}", String::from_utf8_lossy(KEY), crate::clock::now_ms());
            if let Some(old) = &found {
                db.insert(kept.as_bytes(), old)?;
            }
            error!(
                kept_as = %kept,
                "The order_key salt cannot be opened (sealed with a store key that is not listed, or damaged): a \
                 new one is made, and deliveries accepted from now on are ordered apart from those accepted before."
            );
            (fresh()?, false)
        }
        None => (fresh()?, false),
    };
    if !up_to_date {
        let text = match keyring.seal(KEY, &salt) {
            Some(sealed) => sealed,
            None => format!("{CLEAR}{}", hex::encode(salt)),
        };
        db.insert(KEY, text.as_bytes())?;
        db.flush()?;
    }
    Ok(salt)
}

/// The salt and whether it is stored as the current keyring would store it; `None` if it cannot be read.
fn read(bytes: &[u8], keyring: &Keyring) -> Option<([u8; BYTES], bool)> {
    let text = std::str::from_utf8(bytes).ok()?;
    if let Some(clear) = text.strip_prefix(CLEAR) {
        let salt = hex::decode(clear).ok()?.try_into().ok()?;
        return Some((salt, keyring.sealing_key().is_none()));
    }
    let salt = keyring.open(KEY, text).ok()?.try_into().ok()?;
    Some((salt, sealed_with(text) == keyring.sealing_key()))
}

fn fresh() -> Result<[u8; BYTES], StoreError> {
    let mut salt = [0u8; BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut salt).map_err(|error| StoreError::Open {
        path: "the system's random source".into(),
        source: std::io::Error::other(error.to_string()),
    })?;
    Ok(salt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreKey;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).temporary(true).open().unwrap();
        (dir, db)
    }

    #[test]
    fn the_salt_lasts_across_starts_and_key_rotations_and_is_sealed_with_the_current_key() {
        let (_dir, db) = db();
        let (a, b) = (StoreKey::new(&[1; 32]), StoreKey::new(&[2; 32]));
        let clear = load(&db, &Keyring::default()).unwrap();
        assert_eq!(load(&db, &Keyring::default()).unwrap(), clear, "the same at every start");
        assert!(db.get(KEY).unwrap().unwrap().starts_with(CLEAR.as_bytes()));
        let sealed = load(&db, &Keyring::new(vec![a.clone()])).unwrap();
        assert_eq!(sealed, clear, "a first key seals the same salt");
        let stored = db.get(KEY).unwrap().unwrap();
        assert!(!stored.starts_with(CLEAR.as_bytes()));
        assert!(!String::from_utf8_lossy(&stored).contains(&hex::encode(clear)), "not in the clear");
        assert_eq!(load(&db, &Keyring::new(vec![b.clone(), a.clone()])).unwrap(), clear, "rotation keeps it");
        assert_eq!(load(&db, &Keyring::new(vec![b.clone()])).unwrap(), clear, "now sealed with the new key");
        let lost = load(&db, &Keyring::new(vec![a])).unwrap();
        assert_ne!(lost, clear, "no listed key opens it: a new one");
        assert_eq!(db.scan_prefix(b"morder-key-salt-before-").count(), 1, "the old one is kept aside");
    }
}
