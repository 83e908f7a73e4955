//! Signatures receivers verify: pure functions over the exact bytes that are sent.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

const STANDARD_PREFIX: &str = "whsec_";

/// The HMAC key of a Standard Webhooks secret: the base64-decoded part after `whsec_`, or the secret's
/// UTF-8 bytes when it has no such prefix. Fails when the part after `whsec_` is not base64.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, base64::DecodeError> {
    match secret.strip_prefix(STANDARD_PREFIX) {
        Some(encoded) => BASE64.decode(encoded),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one space-separated entry
/// per secret, so a receiver holding either the old or the new key verifies during a rotation.
pub fn standard_signature(secrets: &[Secret], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let signed_prefix = format!("{webhook_id}.{timestamp}.");
    let entries: Vec<String> = secrets
        .iter()
        .map(|secret| {
            // Secrets are validated at config load; a bad one cannot reach here, but stays harmless if it did.
            let key = standard_key(secret.expose()).unwrap_or_else(|_| secret.expose().as_bytes().to_vec());
            let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
            mac.update(signed_prefix.as_bytes());
            mac.update(body);
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        })
        .collect();
    entries.join(" ")
}

/// Lowercase hex HMAC-SHA256 of the raw body, keyed with the secret's bytes exactly as written (the scheme
/// most vendor docs describe as "HMAC-SHA256 hex signature of the raw request body").
pub fn hex_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_matches_the_published_test_vector() {
        // The Standard Webhooks specification's example, reproduced by its reference libraries.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signature =
            standard_signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn standard_signs_once_per_secret() {
        let old = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let new = Secret::new("plain-key");
        let both = standard_signature(&[old.clone(), new.clone()], "id", 1, b"{}");
        let entries: Vec<&str> = both.split(' ').collect();
        assert_eq!(entries, [standard_signature(&[old], "id", 1, b"{}"), standard_signature(&[new], "id", 1, b"{}")]);
    }

    #[test]
    fn a_key_without_prefix_is_used_as_utf8_bytes() {
        assert_eq!(standard_key("plain-key").unwrap(), b"plain-key");
        assert!(standard_key("whsec_not base64!").is_err());
    }

    #[test]
    fn hex_matches_an_independent_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = hex_signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(signature, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
