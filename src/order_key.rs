//! `order_key` (SPEC §6c): deliveries of a subscription whose events have the same value at a JSON pointer
//! go one at a time, in acceptance order; different values go in parallel.
//!
//! The value may be patient data (a patient's id, a chart number), so a delivery record keeps a keyed
//! hash of it, never the value: HMAC-SHA256 under the store's order-key salt ([`crate::store::Store`]'s
//! `order_salt`, sealed with the store key when there is one), which lasts across key rotations. Two
//! values whose 64-bit hashes collide share an order, which costs parallelism, never order. An event
//! without the field is unordered.

use hmac::{Hmac, KeyInit, Mac};

use crate::config::Config;
use crate::store::Accepted;

/// Gives each of `accepted`'s deliveries whose subscription has an `order_key` its key.
pub fn assign(accepted: &mut Accepted, config: &Config, salt: &[u8]) {
    let mut data: Option<Option<serde_json::Value>> = None;
    for delivery in &mut accepted.deliveries {
        let Some(pointer) = config.subscription(&delivery.subscription).and_then(|s| s.order_key.as_deref()) else {
            continue;
        };
        // Parsed once per event, and only when some subscription orders by a key.
        let parsed = data.get_or_insert_with(|| serde_json::from_str(accepted.event.data.get()).ok());
        let value = parsed.as_ref().and_then(|data| data.pointer(pointer));
        delivery.order_key = value.map(|value| key_of(&delivery.subscription, &value.to_string(), salt));
    }
}

/// The 64-bit key of `value` (compact JSON) for `subscription`.
fn key_of(subscription: &str, value: &str, salt: &[u8]) -> u64 {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(salt) else { return 0 };
    mac.update(&(subscription.len() as u64).to_be_bytes());
    mac.update(subscription.as_bytes());
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gives_the_same_key_and_another_value_another() {
        let salt = [3u8; 32];
        assert_eq!(key_of("s", "\"p1\"", &salt), key_of("s", "\"p1\"", &salt));
        assert_ne!(key_of("s", "\"p1\"", &salt), key_of("s", "\"p2\"", &salt));
        assert_ne!(key_of("s", "\"p1\"", &salt), key_of("t", "\"p1\"", &salt), "per subscription");
        assert_ne!(key_of("s", "\"p1\"", &salt), key_of("s", "\"p1\"", &[4u8; 32]), "per store");
    }
}
