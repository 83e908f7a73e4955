//! Secrets (signing keys, bearer tokens, header values) as a type that cannot leak by accident.
//!
//! Payloads carry patient data and secrets open partner APIs, so the value is only reachable through
//! [`Secret::expose`]; `Debug` and `Display` print a fixed placeholder, and comparisons run in constant time.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string loaded from the config file, the environment or a file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret's value. Call sites are the only places a secret is used, so they are easy to audit.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares `candidate` with the secret without leaking where they differ or how long the secret is:
    /// both sides are hashed first, so the comparison always covers 32 bytes.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let given = Sha256::digest(candidate);
        expected.ct_eq(&given).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("whsec_topsecretvalue");
        assert!(!format!("{secret:?}").contains("topsecret"));
        assert!(!format!("{secret}").contains("topsecret"));
        assert!(!format!("{:?}", Some(vec![secret])).contains("topsecret"));
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("token-123");
        assert!(secret.matches(b"token-123"));
        assert!(!secret.matches(b"token-124"));
        assert!(!secret.matches(b"token-12"));
        assert!(!secret.matches(b""));
    }
}
