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
use super::raw::{RawSecret, Text};
use crate::secret::Secret;

impl Compiler<'_> {
    pub(super) fn secret(&mut self, raw: &Spanned<RawSecret>, outer: Range<usize>) -> Option<Secret> {
        let span = if raw.span().is_empty() { outer } else { raw.span() };
        let value = match raw.get_ref() {
            RawSecret::Literal(value) => value.clone(),
            RawSecret::Env(name) => match std::env::var(name) {
                Ok(value) => value,
                Err(_) => return self.fail(span, format!("environment variable `{name}` is not set")),
            },
            RawSecret::File(file) => {
                let path = self.base_dir.join(file);
                match std::fs::read_to_string(&path) {
                    Ok(value) => {
                        value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value).to_owned()
                    }
                    Err(error) => {
                        return self.fail(span, format!("cannot read secret file `{}`: {error}", path.display()))
                    }
                }
            }
        };
        if value.is_empty() {
            return self.fail(span, "secret is empty");
        }
        Some(Secret::new(value))
    }

    pub(super) fn header_name(&mut self, name: &Text) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.get_ref().as_bytes()) {
            Ok(header) => Some(header),
            Err(_) => self.fail(name.span(), format!("`{}` is not a valid HTTP header name", name.get_ref())),
        }
    }

    pub(super) fn ca_certificates(&mut self, path: &Path, span: Range<usize>) -> Option<Vec<CertificateDer<'static>>> {
        let certificates: Result<Vec<_>, _> = match CertificateDer::pem_file_iter(path) {
            Ok(iter) => iter.collect(),
            Err(error) => Err(error),
        };
        match certificates {
            Ok(certificates) if !certificates.is_empty() => Some(certificates),
            Ok(_) => self.fail(span, format!("`ca_file` {} holds no PEM certificate", path.display())),
            Err(error) => self.fail(span, format!("cannot read `ca_file` {}: {error}", path.display())),
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
