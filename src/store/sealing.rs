//! Payloads sealed at rest (SPEC §8): event `data` and stored response bodies are encrypted before they
//! reach sled, with the record's key as associated data, so that no byte of them is in `state_dir` in
//! the clear and a sealed value moved under another record's key does not open. (An attempt carried in
//! its delivery's record is sealed with the key it moves to, its own `a` key: [`super::EmbeddedAttempt`].)
//!
//! The cipher is XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): ChaCha20-Poly1305 with a 192-bit
//! nonce, so a fresh random nonce per record is safe for any number of records under one key (a 96-bit
//! random nonce, as AES-GCM takes, is good for about 2³² records per key; a busy relay gets there).
//!
//! An event's idempotency fingerprint (a SHA-256 of its type, time and data) would let someone holding
//! the disk confirm a guess of the data, so with a key it is stored keyed: `<key id>:<HMAC-SHA256>`
//! under a key derived from the store key ([`Keyring::keyed_fingerprint`]).
//!
//! A sealed value is text, kept in the record's JSON: `<key id>.<base64url of nonce ‖ ciphertext ‖ tag>`.
//! The key id is a short fingerprint of the key ([`KeyId`]), so rotation needs no bookkeeping: the first
//! key of `encryption_key` seals, every listed key opens, and a value sealed with a key no longer listed
//! is kept as it is (it opens again once the key is back).

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, KeyInit as _, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const NONCE_BYTES: usize = 24;

/// A store encryption key: 32 random bytes (`hookrelay secret --kind store-key` prints one as base64).
#[derive(Clone)]
pub struct StoreKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
    /// Keys the fingerprints of events ([`Keyring::keyed_fingerprint`]); derived, so that the cipher's
    /// key is used for one thing only.
    fingerprints: HmacSha256,
}

type HmacSha256 = Hmac<Sha256>;

impl StoreKey {
    pub const BYTES: usize = 32;

    pub fn new(bytes: &[u8; Self::BYTES]) -> StoreKey {
        let derived = Sha256::new().chain_update(b"hookrelay fingerprint key\0").chain_update(bytes).finalize();
        StoreKey {
            id: KeyId::of(bytes),
            cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)),
            fingerprints: HmacSha256::new_from_slice(&derived).expect("HMAC takes keys of any length"),
        }
    }

    fn keyed(&self, fingerprint: &str) -> String {
        let mut mac = self.fingerprints.clone();
        mac.update(fingerprint.as_bytes());
        format!("{}:{}", self.id, hex::encode(mac.finalize().into_bytes()))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.id)
    }
}

/// A key's fingerprint: the first 8 bytes of SHA-256 over a label and the key, shown as 16 hex digits.
/// Stored next to every value the key sealed, and printed when a key is missing; it tells keys apart
/// without telling anything about them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// Its length as text: 16 hex digits.
    const TEXT_LEN: usize = 16;

    fn of(key: &[u8]) -> KeyId {
        let digest = Sha256::new().chain_update(b"hookrelay store key\0").chain_update(key).finalize();
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    pub fn parse(text: &str) -> Option<KeyId> {
        let mut id = [0; 8];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The keys of `relay.encryption_key`, first to last; empty when payloads are stored in the clear.
#[derive(Debug, Clone, Default)]
pub struct Keyring(Arc<Vec<StoreKey>>);

/// Why a sealed value did not open.
#[derive(Debug, PartialEq, Eq)]
pub enum Unopened {
    /// Sealed with a key that is not listed: not damage; the value waits for its key.
    KeyNotListed(KeyId),
    /// Not a sealed value, or it does not authenticate under its key and record: damage.
    Damaged(&'static str),
}

impl Keyring {
    pub fn new(keys: Vec<StoreKey>) -> Keyring {
        Keyring(Arc::new(keys))
    }

    /// The key that seals new values, if payloads are sealed at all.
    pub fn sealing_key(&self) -> Option<KeyId> {
        self.0.first().map(StoreKey::id)
    }

    /// The keys' ids, first to last.
    pub fn ids(&self) -> Vec<KeyId> {
        self.0.iter().map(StoreKey::id).collect()
    }

    pub fn lists(&self, id: KeyId) -> bool {
        self.0.iter().any(|key| key.id == id)
    }

    /// `plaintext` sealed for the record under `record_key`, or `None` without a key.
    pub fn seal(&self, record_key: &[u8], plaintext: &[u8]) -> Option<String> {
        let key = self.0.first()?;
        let mut nonce = [0; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: record_key })
            .expect("XChaCha20-Poly1305 fails only past 256 GiB, and request bodies are at most 64 MiB");
        let mut text = String::with_capacity(17 + (NONCE_BYTES + sealed.len()).div_ceil(3) * 4);
        text.push_str(&key.id.to_string());
        text.push('.');
        let mut raw = Vec::with_capacity(NONCE_BYTES + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut text);
        Some(text)
    }

    /// An event's fingerprint as stored: keyed with the sealing key, or as it is without a key.
    pub fn keyed_fingerprint(&self, fingerprint: &str) -> String {
        match self.0.first() {
            Some(key) => key.keyed(fingerprint),
            None => fingerprint.to_owned(),
        }
    }

    /// Whether a stored fingerprint ([`Keyring::keyed_fingerprint`], under any listed key, or plain from
    /// before a key was set) is that of `fingerprint`. One keyed with a key that is not listed cannot be
    /// told, and counts as different: a repeat is then refused as a conflict rather than taken for the
    /// same event.
    pub fn same_fingerprint(&self, stored: &str, fingerprint: &str) -> bool {
        if !stored.contains(':') {
            return stored == fingerprint;
        }
        match fingerprint_key(stored).and_then(|id| self.0.iter().find(|key| key.id == id)) {
            Some(key) => key.keyed(fingerprint).as_bytes().ct_eq(stored.as_bytes()).into(),
            None => false,
        }
    }

    /// Opens a value [`Keyring::seal`] made for the record under `record_key`.
    pub fn open(&self, record_key: &[u8], sealed: &str) -> Result<Vec<u8>, Unopened> {
        let id = sealed_with(sealed).ok_or(Unopened::Damaged("not a sealed value"))?;
        let key = self.0.iter().find(|key| key.id == id).ok_or(Unopened::KeyNotListed(id))?;
        // `sealed_with` checked the id and the dot, all ASCII.
        let body = &sealed[KeyId::TEXT_LEN + 1..];
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| Unopened::Damaged("not a sealed value"))?;
        if raw.len() < NONCE_BYTES {
            return Err(Unopened::Damaged("a sealed value too short to hold its nonce"));
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: record_key })
            .map_err(|_| Unopened::Damaged("a sealed value that does not authenticate under its key and record"))
    }
}

/// The key a sealed value names, if it is shaped like one.
pub fn sealed_with(sealed: &str) -> Option<KeyId> {
    let (id, rest) = sealed.split_at_checked(KeyId::TEXT_LEN)?;
    rest.starts_with('.').then_some(())?;
    KeyId::parse(id)
}

/// The key that keyed a stored fingerprint ([`Keyring::keyed_fingerprint`]); `None` for a plain one.
pub fn fingerprint_key(stored: &str) -> Option<KeyId> {
    let (id, _) = stored.split_once(':')?;
    KeyId::parse(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> StoreKey {
        StoreKey::new(&[byte; 32])
    }

    #[test]
    fn a_sealed_value_opens_under_its_record_key_only() {
        let ring = Keyring::new(vec![key(1)]);
        let sealed = ring.seal(b"eevt_1", br#"{"patient":"Rex"}"#).unwrap();
        assert!(!sealed.contains("Rex"));
        assert_eq!(ring.open(b"eevt_1", &sealed).unwrap(), br#"{"patient":"Rex"}"#);
        assert!(matches!(ring.open(b"eevt_2", &sealed), Err(Unopened::Damaged(_))), "moved under another key");
    }

    #[test]
    fn every_seal_has_a_fresh_nonce() {
        let ring = Keyring::new(vec![key(1)]);
        assert_ne!(ring.seal(b"k", b"same").unwrap(), ring.seal(b"k", b"same").unwrap());
    }

    #[test]
    fn the_first_key_seals_and_every_listed_key_opens() {
        let old = Keyring::new(vec![key(1)]);
        let sealed_old = old.seal(b"k", b"old").unwrap();
        let rotated = Keyring::new(vec![key(2), key(1)]);
        assert_eq!(rotated.open(b"k", &sealed_old).unwrap(), b"old");
        let sealed_new = rotated.seal(b"k", b"new").unwrap();
        assert_eq!(sealed_with(&sealed_new), Some(key(2).id()));
        assert_eq!(old.open(b"k", &sealed_new), Err(Unopened::KeyNotListed(key(2).id())));
        assert_eq!(Keyring::default().open(b"k", &sealed_old), Err(Unopened::KeyNotListed(key(1).id())));
        assert_eq!(Keyring::default().seal(b"k", b"x"), None);
    }

    #[test]
    fn tampered_or_malformed_values_are_damage_not_panics() {
        let ring = Keyring::new(vec![key(1)]);
        let sealed = ring.seal(b"k", b"payload").unwrap();
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(ring.open(b"k", &tampered), Err(Unopened::Damaged(_))));
        for cut in 0..sealed.len() {
            if sealed.is_char_boundary(cut) {
                let _ = ring.open(b"k", &sealed[..cut]);
            }
        }
        for junk in ["", ".", "zz", "0123456789abcdef", "0123456789abcdef.", "0123456789abcdefX", "é"] {
            assert!(ring.open(b"k", junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn fingerprints_are_keyed_and_still_compare_across_rotation() {
        let plain = "ab12";
        let old = Keyring::new(vec![key(1)]);
        let stored = old.keyed_fingerprint(plain);
        assert!(stored.starts_with(&format!("{}:", key(1).id())) && !stored.contains(plain), "{stored}");
        let rotated = Keyring::new(vec![key(2), key(1)]);
        assert!(rotated.same_fingerprint(&stored, plain));
        assert!(!rotated.same_fingerprint(&stored, "ab13"));
        assert!(rotated.same_fingerprint(plain, plain), "stored before a key was set");
        assert!(!Keyring::new(vec![key(2)]).same_fingerprint(&stored, plain), "its key is gone: cannot tell");
        assert_eq!(Keyring::default().keyed_fingerprint(plain), plain);
    }

    #[test]
    fn debug_never_shows_key_material() {
        let printed = format!("{:?}", Keyring::new(vec![key(7)]));
        assert!(printed.contains(&key(7).id().to_string()));
        assert!(!printed.contains("0707"), "{printed}");
    }
}
