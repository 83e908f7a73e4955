//! Whether a received request's signature verifies with the keys given on the command line, and when it
//! does not, the likeliest reason in words: another secret, a body rewritten after signing, a clock far off.
//!
//! Standard Webhooks (`webhook-signature` with `v1` HMAC and `v1a` ed25519 entries) and the hex HMAC of the
//! body in any header (the `hmac-sha256` scheme, `sha256=` prefix allowed) are checked. Every comparison is
//! the MAC or signature library's own verification (constant time); nothing here compares secrets itself.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{KeyInit, Mac};
use http::HeaderMap;

use crate::delivery::sign::{standard_key, PUBLIC_KEY_PREFIX};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How far a `webhook-timestamp` may be from this machine's clock before Standard Webhooks libraries
/// refuse the request (their default tolerance).
const TIMESTAMP_TOLERANCE_SECONDS: i64 = 300;

/// One `--secret`, numbered as given (from 1).
pub enum Key {
    /// A signing secret: `whsec_…` (its base64 part keys `v1`) or any other text (its bytes).
    Secret { number: usize, text: String },
    /// An ed25519 public key (`whpk_…`), for `v1a`.
    Public { number: usize, key: Vec<u8> },
}

/// The `--secret` values as keys, numbered from 1; a malformed one is named by its number, never shown.
pub fn keys(secrets: &[String]) -> Result<Vec<Key>, String> {
    secrets
        .iter()
        .enumerate()
        .map(|(at, text)| key(at + 1, text).map_err(|problem| format!("--secret #{} {problem}", at + 1)))
        .collect()
}

fn key(number: usize, text: &str) -> Result<Key, &'static str> {
    if let Some(encoded) = text.strip_prefix(PUBLIC_KEY_PREFIX) {
        match BASE64.decode(encoded) {
            Ok(key) if key.len() == 32 => Ok(Key::Public { number, key }),
            _ => Err("is not an ed25519 public key (whpk_ and base64 of 32 bytes)"),
        }
    } else if standard_key(text).is_err() {
        Err("is not base64 after `whsec_`")
    } else {
        Ok(Key::Secret { number, text: text.to_owned() })
    }
}

/// The lines `receive` prints about a request's signature.
pub fn verdicts(headers: &HeaderMap, body: &[u8], keys: &[Key], now: i64) -> Vec<String> {
    let mut lines = Vec::new();
    let standard = standard_headers(headers);
    if let Some(standard) = &standard {
        lines.extend(standard_verdicts(standard, body, keys));
        lines.extend(skew(standard.timestamp, now));
    }
    for (name, signature) in hex_headers(headers) {
        lines.push(hex_verdict(&name, &signature, body, keys));
    }
    if lines.is_empty() {
        lines.push("signature: none (no webhook-signature header, no header holding a hex HMAC)".to_owned());
    }
    lines
}

struct Standard {
    id: String,
    timestamp_text: String,
    timestamp: Option<i64>,
    /// (version, decoded signature) per entry.
    entries: Vec<(String, Vec<u8>)>,
}

fn standard_headers(headers: &HeaderMap) -> Option<Standard> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let signature = text("webhook-signature")?;
    let timestamp_text = text("webhook-timestamp").unwrap_or_default();
    let entries = signature
        .split_whitespace()
        .filter_map(|entry| {
            let (version, encoded) = entry.split_once(',')?;
            Some((version.to_owned(), BASE64.decode(encoded).ok()?))
        })
        .collect();
    Some(Standard {
        id: text("webhook-id").unwrap_or_default(),
        timestamp: timestamp_text.parse().ok(),
        timestamp_text,
        entries,
    })
}

/// The bytes a signature is checked over first (what arrived), then forms a rewriter would produce: the
/// JSON without whitespace, and with its keys sorted. A match on one of those means the body was
/// re-serialized between signing and here.
fn bodies(body: &[u8]) -> Vec<(Option<&'static str>, Vec<u8>)> {
    let mut forms = vec![(None, body.to_vec())];
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            let compact = crate::json::compact(text).text.into_bytes();
            let sorted = value.to_string().into_bytes();
            for (label, form) in [("without whitespace", compact), ("with its keys sorted", sorted)] {
                if forms.iter().all(|(_, known)| *known != form) {
                    forms.push((Some(label), form));
                }
            }
        }
    }
    forms
}

fn standard_verdicts(standard: &Standard, body: &[u8], keys: &[Key]) -> Vec<String> {
    let versions: Vec<&str> = {
        let mut seen: Vec<&str> = standard.entries.iter().map(|(v, _)| v.as_str()).collect();
        seen.dedup();
        seen
    };
    if keys.is_empty() {
        return vec![format!(
            "signature: webhook-signature ({}) not checked: give --secret whsec_… (v1) or --secret whpk_… (v1a)",
            versions.join(", ")
        )];
    }
    let mut lines = Vec::new();
    for version in ["v1", "v1a"] {
        let signatures: Vec<&[u8]> =
            standard.entries.iter().filter(|(v, _)| v == version).map(|(_, s)| s.as_slice()).collect();
        if signatures.is_empty() {
            continue;
        }
        let usable: Vec<&Key> = keys
            .iter()
            .filter(|key| matches!((version, key), ("v1", Key::Secret { .. }) | ("v1a", Key::Public { .. })))
            .collect();
        if usable.is_empty() {
            let wanted = if version == "v1" { "a whsec_ secret" } else { "a whpk_ public key" };
            lines.push(format!("signature: webhook-signature {version} not checked: no --secret is {wanted}"));
            continue;
        }
        let mut found = None;
        'search: for (form, bytes) in bodies(body) {
            let signed = [standard.id.as_bytes(), b".", standard.timestamp_text.as_bytes(), b".", &bytes].concat();
            for key in &usable {
                if signatures.iter().any(|signature| standard_matches(key, &signed, signature)) {
                    found = Some((form, key_number(key)));
                    break 'search;
                }
            }
        }
        lines.push(match found {
            Some((None, number)) => format!("signature: webhook-signature {version} verified with --secret #{number}"),
            Some((Some(form), number)) => rewritten("webhook-signature", version, form, number),
            None => not_verified(&format!("webhook-signature {version}"), "the body, webhook-id or webhook-timestamp"),
        });
    }
    lines
}

fn standard_matches(key: &Key, signed: &[u8], signature: &[u8]) -> bool {
    match key {
        Key::Secret { text, .. } => {
            let Ok(key) = standard_key(text) else { return false };
            let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
            mac.update(signed);
            mac.verify_slice(signature).is_ok()
        }
        Key::Public { key, .. } => {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key).verify(signed, signature).is_ok()
        }
    }
}

fn key_number(key: &Key) -> usize {
    match key {
        Key::Secret { number, .. } | Key::Public { number, .. } => *number,
    }
}

fn rewritten(header: &str, version: &str, form: &str, number: usize) -> String {
    format!(
        "signature: {header} {version} does NOT verify over the bytes received; it verifies with --secret #{number} \
         over the body {form}: something between the signer and here re-serialized the JSON (verify over the raw \
         bytes, and send them unchanged)"
    )
}

fn not_verified(what: &str, signed_parts: &str) -> String {
    format!(
        "signature: {what} does NOT verify with any --secret: it was signed with another secret, or {signed_parts} \
         changed after signing"
    )
}

fn skew(timestamp: Option<i64>, now: i64) -> Option<String> {
    let Some(timestamp) = timestamp else {
        return Some("timestamp: webhook-timestamp is missing or not a number of seconds".to_owned());
    };
    let off = now - timestamp;
    if off.abs() <= TIMESTAMP_TOLERANCE_SECONDS {
        return None;
    }
    let direction = if off > 0 { "behind" } else { "ahead of" };
    Some(format!(
        "timestamp: webhook-timestamp is {} s {direction} this machine's clock; Standard Webhooks receivers refuse \
         more than {TIMESTAMP_TOLERANCE_SECONDS} s: check the clocks (or the request was replayed)",
        off.abs()
    ))
}

/// Headers other than Standard Webhooks' own whose value is a hex SHA-256 MAC (`sha256=` allowed).
fn hex_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| !name.as_str().starts_with("webhook-"))
        .filter_map(|(name, value)| {
            let text = value.to_str().ok()?;
            let hex_text = text.strip_prefix("sha256=").unwrap_or(text);
            if hex_text.len() != 64 {
                return None;
            }
            Some((name.as_str().to_owned(), hex::decode(hex_text).ok()?))
        })
        .collect()
}

fn hex_verdict(name: &str, signature: &[u8], body: &[u8], keys: &[Key]) -> String {
    let secrets: Vec<(usize, &str)> = keys
        .iter()
        .filter_map(|key| match key {
            Key::Secret { number, text } => Some((*number, text.as_str())),
            Key::Public { .. } => None,
        })
        .collect();
    if secrets.is_empty() {
        return format!(
            "signature: {name} (hex HMAC-SHA256) not checked: give --secret with the subscription's secret"
        );
    }
    for (form, bytes) in bodies(body) {
        for (number, secret) in &secrets {
            let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(&bytes);
            if mac.verify_slice(signature).is_ok() {
                return match form {
                    None => format!("signature: {name} (hex HMAC-SHA256 of the body) verified with --secret #{number}"),
                    Some(form) => rewritten(name, "(hex HMAC-SHA256)", form, *number),
                };
            }
        }
    }
    not_verified(&format!("{name} (hex HMAC-SHA256)"), "the body")
}
