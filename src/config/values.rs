//! Single values of the config file: secrets, durations, paths, header names, PEM files, socket modes.
//! Each reports its problem at the value's position and returns `None`.

/// The longest delay a config may name (SPEC §3).
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest retention: ten years.
pub const MAX_RETENTION: Duration = Duration::from_secs(3650 * 24 * 3600);

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_spanned::Spanned;

use super::compile::Compiler;
use base64::Engine;

use super::raw::{RawSecret, RawSecrets, Text};
use crate::secret::Secret;
use crate::store::StoreKey;

/// The variable systemd sets to the directory of a service's credentials (`LoadCredential=`,
/// `LoadCredentialEncrypted=`).
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A secret file's text without its trailing line end.
fn without_line_end(value: String) -> String {
    match value.strip_suffix('\n') {
        Some(line) => line.strip_suffix('\r').unwrap_or(line).to_owned(),
        None => value,
    }
}

/// What is wrong with a credential's name, if anything: it is a file name in the credentials directory.
fn credential_name_problem(name: &str) -> Option<String> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains('/');
    bad.then(|| format!("`{name}` is not a credential name (a file name, without `/`)"))
}

/// Where systemd put the credential `name`.
fn credential_path(name: &str) -> Result<PathBuf, String> {
    if let Some(problem) = credential_name_problem(name) {
        return Err(problem);
    }
    match std::env::var_os(CREDENTIALS_DIRECTORY) {
        Some(dir) if !dir.is_empty() => Ok(Path::new(&dir).join(name)),
        _ => Err(format!(
            "credential `{name}` needs ${CREDENTIALS_DIRECTORY}, which is not set: systemd sets it for a service \
             with LoadCredential= or LoadCredentialEncrypted=; outside systemd use {{ file = \"...\" }}"
        )),
    }
}

/// Where a secret came from, for messages that must not show the secret.
fn source_of(raw: &RawSecret) -> String {
    match raw {
        RawSecret::Literal(_) => "written in the config file".to_owned(),
        RawSecret::Env(name) => format!("from environment variable `{name}`"),
        RawSecret::File(path) => format!("from file `{path}`"),
        RawSecret::Credential(name) => format!("from credential `{name}`"),
    }
}

/// What `check --no-secrets` can say about a source it does not read: only whether it is well formed.
fn unread_source_problem(raw: &RawSecret) -> Option<String> {
    match raw {
        RawSecret::Literal(_) => None,
        RawSecret::Env(name) if name.is_empty() || name.contains(['=', '\0']) => {
            Some(format!("`{name}` is not an environment variable name"))
        }
        RawSecret::Env(_) => None,
        RawSecret::File(path) if path.is_empty() => Some("a secret `file` needs a path".to_owned()),
        RawSecret::File(_) => None,
        RawSecret::Credential(name) => credential_name_problem(name),
    }
}

/// A secret as loaded: its value, or a source that `check --no-secrets` did not read.
pub(super) enum Loaded {
    Value(Secret),
    Unread,
}

/// What stands for an unread secret where only a value will do (`check --no-secrets` builds no config that
/// runs): a valid header value, and a key as it is without a `whsec_` prefix.
const UNREAD: &str = "unread-by-check-no-secrets";

impl Compiler<'_> {
    /// The secret's value; with `check --no-secrets`, a stand-in for a source that is not read. Callers that
    /// check what the value says use [`Compiler::load_secret`] instead.
    pub(super) fn secret(&mut self, raw: &Spanned<RawSecret>, outer: Range<usize>) -> Option<Secret> {
        match self.load_secret(raw, outer)? {
            Loaded::Value(secret) => Some(secret),
            Loaded::Unread => Some(Secret::new(UNREAD)),
        }
    }

    /// Reads the secret from its source, or, with `check --no-secrets`, only checks the source's shape.
    pub(super) fn load_secret(&mut self, raw: &Spanned<RawSecret>, outer: Range<usize>) -> Option<Loaded> {
        let span = if raw.span().is_empty() { outer } else { raw.span() };
        if !self.read_secrets && !matches!(raw.get_ref(), RawSecret::Literal(_)) {
            return match unread_source_problem(raw.get_ref()) {
                Some(problem) => self.fail(span, problem),
                None => Some(Loaded::Unread),
            };
        }
        let value = match raw.get_ref() {
            RawSecret::Literal(value) => value.clone(),
            RawSecret::Env(name) => match std::env::var(name) {
                Ok(value) => value,
                Err(_) => return self.fail(span, format!("environment variable `{name}` is not set")),
            },
            RawSecret::File(file) => {
                let path = self.base_dir.join(file);
                match std::fs::read_to_string(&path) {
                    Ok(value) => without_line_end(value),
                    Err(error) => {
                        return self.fail(span, format!("cannot read secret file `{}`: {error}", path.display()))
                    }
                }
            }
            RawSecret::Credential(name) => match credential_path(name) {
                Ok(path) => match std::fs::read_to_string(&path) {
                    Ok(value) => without_line_end(value),
                    Err(error) => {
                        return self
                            .fail(span, format!("cannot read credential `{name}` ({}): {error}", path.display()))
                    }
                },
                Err(problem) => return self.fail(span, problem),
            },
        };
        if value.is_empty() {
            return self.fail(span, "secret is empty");
        }
        Some(Loaded::Value(Secret::new(value)))
    }

    /// `signing_key`: `whsk_` and the base64 of a 32-byte ed25519 seed; `Some(None)` when it was not read
    /// (`check --no-secrets`). A problem names the key's source, never its value.
    pub(super) fn signing_key(
        &mut self,
        raw: &Spanned<RawSecret>,
    ) -> Option<Option<crate::delivery::sign::SigningKey>> {
        let Loaded::Value(secret) = self.load_secret(raw, raw.span())? else { return Some(None) };
        match crate::delivery::sign::SigningKey::from_text(secret.expose().trim_end()) {
            Ok(key) => Some(Some(key)),
            Err(problem) => {
                let source = source_of(raw.get_ref());
                self.fail(
                    raw.span(),
                    format!("`signing_key` ({source}) {problem} (make one with `hookrelay secret --kind ed25519`)"),
                )
            }
        }
    }

    /// `relay.encryption_key`: each secret the base64 of 32 bytes. A problem names the key's source (the
    /// file, a variable, a credential), never its value. Keys `check --no-secrets` did not read are left out.
    pub(super) fn store_keys(&mut self, raw: &Spanned<RawSecrets>) -> Option<Vec<StoreKey>> {
        if raw.get_ref().0.is_empty() {
            return self.fail(raw.span(), "`encryption_key` is an empty array: list at least one key, or remove it");
        }
        let mut keys = Vec::new();
        let mut unread = 0;
        for entry in &raw.get_ref().0 {
            let span = if entry.span().is_empty() { raw.span() } else { entry.span() };
            // Each key is checked, so that one run reports every problem.
            let secret = match self.load_secret(entry, raw.span()) {
                Some(Loaded::Value(secret)) => secret,
                Some(Loaded::Unread) => {
                    unread += 1;
                    continue;
                }
                None => continue,
            };
            let decoded = base64::engine::general_purpose::STANDARD.decode(secret.expose().trim_end());
            let problem = match decoded.as_deref().map(<[u8; StoreKey::BYTES]>::try_from) {
                Ok(Ok(bytes)) => {
                    keys.push(StoreKey::new(&bytes));
                    continue;
                }
                Ok(Err(_)) => format!("decodes to {} bytes, not 32", decoded.as_ref().map_or(0, Vec::len)),
                Err(_) => "is not base64".to_owned(),
            };
            let source = source_of(entry.get_ref());
            self.reporter.error(
                Some(span),
                format!(
                    "`encryption_key` ({source}) {problem}: a store key is the base64 of 32 random bytes, as \
                     `hookrelay secret --kind store-key` prints"
                ),
            );
        }
        (keys.len() + unread == raw.get_ref().0.len()).then_some(keys)
    }

    pub(super) fn header_name(&mut self, name: &Text) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.get_ref().as_bytes()) {
            Ok(header) => Some(header),
            Err(_) => self.fail(name.span(), format!("`{}` is not a valid HTTP header name", name.get_ref())),
        }
    }

    /// The PEM certificates of the file that `key` (`ca_file`, `client_cert`) names; at least one.
    pub(super) fn pem_certificates(
        &mut self,
        key: &str,
        path: &Path,
        span: Range<usize>,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let certificates: Result<Vec<_>, _> = match CertificateDer::pem_file_iter(path) {
            Ok(iter) => iter.collect(),
            Err(error) => Err(error),
        };
        match certificates {
            Ok(certificates) if !certificates.is_empty() => Some(certificates),
            Ok(_) => self.fail(span, format!("`{key}` {} holds no PEM certificate", path.display())),
            Err(error) => self.fail(span, format!("cannot read `{key}` {}: {error}", path.display())),
        }
    }

    pub(super) fn socket_mode(&mut self, mode: &Text) -> Option<u32> {
        let digits = mode.get_ref().trim_start_matches("0o");
        match u32::from_str_radix(digits, 8) {
            Ok(bits) if bits <= 0o777 && !digits.is_empty() => Some(bits),
            _ => self.fail(
                mode.span(),
                format!("invalid `socket_mode` `{}`: expected octal such as \"0660\"", mode.get_ref()),
            ),
        }
    }

    /// A delay (timeout, retry): at most [`MAX_DELAY`], so that no arithmetic on it can overflow.
    pub(super) fn duration(&mut self, text: &Text) -> Option<Duration> {
        self.duration_up_to(text, MAX_DELAY, "30 days")
    }

    pub(super) fn duration_up_to(&mut self, text: &Text, max: Duration, max_text: &str) -> Option<Duration> {
        match humantime::parse_duration(text.get_ref()) {
            Ok(duration) if duration <= max => Some(duration),
            Ok(_) => self.fail(text.span(), format!("duration `{}` is over the maximum of {max_text}", text.get_ref())),
            Err(error) => self.fail(
                text.span(),
                format!("invalid duration `{}`: {error} (write e.g. \"500ms\", \"30s\" or \"1h 30m\")", text.get_ref()),
            ),
        }
    }

    pub(super) fn path(&self, text: &Text) -> PathBuf {
        self.base_dir.join(text.get_ref())
    }

    /// Reports and yields `None`, so checks read as one expression.
    pub(super) fn fail<T>(&mut self, span: impl Into<Option<Range<usize>>>, message: impl Into<String>) -> Option<T> {
        self.reporter.error(span.into(), message);
        None
    }
}
