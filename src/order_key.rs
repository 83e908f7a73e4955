//! `order_key` (SPEC §6c): deliveries of a subscription whose events have the same value at a JSON pointer
//! go one at a time, in acceptance order; different values go in parallel.
//!
//! The value may be patient data (a patient's id, a chart number), so a delivery record keeps a keyed
//! hash of it, never the value: HMAC under the store key when `encryption_key` is set
//! ([`Keyring::keyed_fingerprint`]), so that the record says nothing a guess could confirm. Two values
//! whose hashes collide share an order, which costs parallelism, never order. An event without the
//! field is unordered.

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::store::{Accepted, Keyring};

/// Gives each of `accepted`'s deliveries whose subscription has an `order_key` its key.
pub fn assign(accepted: &mut Accepted, config: &Config, keyring: &Keyring) {
    let mut data: Option<Option<serde_json::Value>> = None;
    for delivery in &mut accepted.deliveries {
        let Some(pointer) = config.subscription(&delivery.subscription).and_then(|s| s.order_key.as_deref()) else {
            continue;
        };
        // Parsed once per event, and only when some subscription orders by a key.
        let parsed = data.get_or_insert_with(|| serde_json::from_str(accepted.event.data.get()).ok());
        let value = parsed.as_ref().and_then(|data| data.pointer(pointer));
        delivery.order_key = value.map(|value| key_of(&delivery.subscription, &value.to_string(), keyring));
    }
}

/// The 64-bit key of `value` (compact JSON) for `subscription`.
fn key_of(subscription: &str, value: &str, keyring: &Keyring) -> u64 {
    let mut plain = Sha256::new();
    plain.update((subscription.len() as u64).to_be_bytes());
    plain.update(subscription.as_bytes());
    plain.update(value.as_bytes());
    let keyed = keyring.keyed_fingerprint(&hex::encode(plain.finalize()));
    let digest = Sha256::digest(keyed.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gives_the_same_key_and_another_value_another() {
        let keyring = Keyring::default();
        assert_eq!(key_of("s", "\"p1\"", &keyring), key_of("s", "\"p1\"", &keyring));
        assert_ne!(key_of("s", "\"p1\"", &keyring), key_of("s", "\"p2\"", &keyring));
        assert_ne!(key_of("s", "\"p1\"", &keyring), key_of("t", "\"p1\"", &keyring), "per subscription");
        let sealed = Keyring::new(vec![crate::store::StoreKey::new(&[7; 32])]);
        assert_ne!(key_of("s", "\"p1\"", &keyring), key_of("s", "\"p1\"", &sealed), "keyed with the store key");
    }
}
