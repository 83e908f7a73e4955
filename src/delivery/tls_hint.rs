//! What a failed TLS check means and what to do about it, in words, appended to an attempt's error; and
//! the warning for a `ca_file` that is not there yet, the commonest cause of the first.
//!
//! rustls and webpki name the problem (`UnknownIssuer`, `CaUsedAsEndEntity`), which says little to someone
//! who made a certificate with `openssl req -x509`; the cure is usually a `ca_file` or a proper leaf
//! certificate. The hint is chosen from the error's text, as the verifier's error reaches the client
//! wrapped in I/O errors whose causes are not all exposed.

/// The error followed by a hint when it is a certificate problem the hint explains; else unchanged.
pub fn with_hint(error: String) -> String {
    match hint(&error) {
        Some(hint) => format!("{error} — {hint}"),
        None => error,
    }
}

fn hint(error: &str) -> Option<&'static str> {
    if !error.contains("invalid peer certificate") {
        return None;
    }
    let hints: [(&[&str], &str); 5] = [
        (
            &["CaUsedAsEndEntity"],
            "the receiver's certificate is a CA certificate used as a server certificate: issue the receiver a \
             leaf certificate (not a CA) for its host name, signed by a CA, and give that CA to the relay in \
             ca_file (`hookrelay receive` makes such a pair)",
        ),
        (
            &["UnknownIssuer"],
            "unknown issuer: no CA the relay trusts signed the receiver's certificate (self-signed, or a private \
             CA); if the receiver uses a private CA, set ca_file to that CA's certificate (PEM)",
        ),
        (
            &["NotValidForName", "not valid for name"],
            "the receiver's certificate does not name the url's host: it must list that name or IP address in \
             its subjectAltName",
        ),
        (
            &["NotValidYet", "not valid yet", "not valid before"],
            "the receiver's certificate is not valid yet: check this machine's clock and the receiver's",
        ),
        (
            &["Expired", "expired"],
            "the receiver's certificate has expired (or this machine's clock is wrong): the receiver must renew it",
        ),
    ];
    hints.iter().find(|(marks, _)| marks.iter().any(|mark| error.contains(mark))).map(|(_, hint)| *hint)
}

/// A `ca_file` that does not exist is a config warning, not an error (see `config/compile.rs`), so the
/// relay says so at start and at every reload that applies it: its deliveries fail their TLS check until
/// the file is there and the config is read again.
pub fn warn_about_missing_ca_files(config: &crate::config::Config) {
    for subscription in &config.subscriptions {
        if let (Some(path), true) = (&subscription.delivery.ca_file, subscription.delivery.extra_roots.is_empty()) {
            tracing::warn!(
                subscription = %subscription.name,
                ca_file = %path.display(),
                "The subscription's ca_file does not exist: its deliveries fail their TLS check until it does and \
                 the config is reloaded (SIGHUP)."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_get_a_hint_and_others_stay_as_they_are() {
        let ca =
            with_hint("client error (Connect): invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))".into());
        assert!(ca.ends_with("`hookrelay receive` makes such a pair)"), "{ca}");
        assert!(ca.starts_with("client error (Connect): invalid peer certificate: Other"), "{ca}");
        let issuer = with_hint("client error (Connect): invalid peer certificate: UnknownIssuer".into());
        assert!(issuer.contains("set ca_file"), "{issuer}");
        let refused = "client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(with_hint(refused.to_owned()), refused);
    }

    /// rustls's own wording of each error the hints match, as hyper passes it on: a rustls upgrade that
    /// rewords one fails here rather than silently dropping its hint.
    #[test]
    fn every_hint_matches_rustls_s_wording() {
        use rustls::pki_types::{ServerName, UnixTime};
        use rustls::CertificateError;
        use std::time::Duration;

        let (now, then) = (
            UnixTime::since_unix_epoch(Duration::from_secs(2_000_000_000)),
            UnixTime::since_unix_epoch(Duration::from_secs(1_000_000_000)),
        );
        let name = ServerName::try_from("hooks.example.com").unwrap().to_owned();
        let cases = [
            (CertificateError::UnknownIssuer, "set ca_file"),
            (CertificateError::NotValidForName, "subjectAltName"),
            (
                CertificateError::NotValidForNameContext { expected: name, presented: vec!["localhost".into()] },
                "subjectAltName",
            ),
            (CertificateError::Expired, "has expired"),
            (CertificateError::ExpiredContext { time: now, not_after: then }, "has expired"),
            (CertificateError::NotValidYet, "is not valid yet"),
            (CertificateError::NotValidYetContext { time: then, not_before: now }, "is not valid yet"),
        ];
        for (error, hint) in cases {
            let error = format!("client error (Connect): {}", rustls::Error::InvalidCertificate(error));
            let hinted = with_hint(error.clone());
            assert!(hinted.starts_with(&error) && hinted[error.len()..].contains(hint), "{hinted}");
        }
    }
}
