//! Signatures receivers verify: pure functions over the exact bytes that are sent.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

const STANDARD_PREFIX: &str = "whsec_";
/// A Standard Webhooks ed25519 signing key: the base64 of its 32-byte seed.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// The public key receivers verify `v1a` with: the base64 of its 32 bytes.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// An ed25519 key that signs `v1a` entries (SPEC §6b), with ring. Receivers hold only the public key,
/// so none of them can forge an event.
#[derive(Clone)]
pub struct SigningKey {
    pair: std::sync::Arc<ring::signature::Ed25519KeyPair>,
}

impl SigningKey {
    /// From `whsk_<base64 of the seed>`; the error says what is wrong, never the value.
    pub fn from_text(text: &str) -> Result<SigningKey, &'static str> {
        let encoded = text.strip_prefix(SIGNING_KEY_PREFIX).ok_or("does not start with `whsk_`")?;
        let seed = BASE64.decode(encoded).map_err(|_| "is not base64 after `whsk_`")?;
        if seed.len() != 32 {
            return Err("does not decode to a 32-byte ed25519 seed");
        }
        Self::from_seed(&seed).ok_or("is not a usable ed25519 seed")
    }

    pub fn from_seed(seed: &[u8]) -> Option<SigningKey> {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        Some(SigningKey { pair: std::sync::Arc::new(pair) })
    }

    /// `whpk_<base64 of the public key>`, as receivers are given it.
    pub fn public_text(&self) -> String {
        use ring::signature::KeyPair;
        format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(self.pair.public_key().as_ref()))
    }

    /// `v1a,<base64 ed25519 signature of "<id>.<timestamp>.<body>">`.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut message = Vec::with_capacity(webhook_id.len() + 24 + body.len());
        message.extend_from_slice(format!("{webhook_id}.{timestamp}.").as_bytes());
        message.extend_from_slice(body);
        format!("v1a,{}", BASE64.encode(self.pair.sign(&message).as_ref()))
    }
}

/// Keys are the same when their public keys are (a reload then keeps the subscription as it was).
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref() == other.pair.public_key().as_ref()
    }
}

/// Shows the public key only.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public_text())
    }
}

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
    fn ed25519_matches_the_rfc_8032_test_vector() {
        // RFC 8032 section 7.1, TEST 1: the empty message, signed with this seed.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let key = SigningKey::from_seed(&seed).unwrap();
        let public = BASE64.decode(key.public_text().strip_prefix(PUBLIC_KEY_PREFIX).unwrap()).unwrap();
        assert_eq!(hex::encode(public), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        // The signed message here is "<id>.<timestamp>." + body; check the primitive on the RFC's input.
        let signature = key.pair.sign(b"");
        assert_eq!(
            hex::encode(signature.as_ref()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let text = format!("{SIGNING_KEY_PREFIX}{}", BASE64.encode(&seed));
        assert_eq!(SigningKey::from_text(&text).unwrap(), key);
        assert!(SigningKey::from_text("whsec_abc").is_err());
        assert!(SigningKey::from_text("whsk_AAAA").is_err(), "3 bytes is no seed");
    }

    #[test]
    fn hex_matches_an_independent_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = hex_signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(signature, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
