//! Settings that are valid but likely mistakes (SPEC §3): `check` prints each as
//! `FILE:LINE:COL: warning: ...` and still exits 0. (`encryption_key` and `ca_file` are judged where they
//! are read, in `compile.rs`.)

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use globset::Glob;

use super::compile::Compiler;
use super::raw::{Text, TextList};
use super::SignatureScheme;

/// The characters that make a pattern more than its own text (`backslash_escape` is on, see the router).
const GLOB_SYNTAX: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

impl Compiler<'_> {
    /// An `http` listener that other machines can reach.
    pub(super) fn warn_if_reachable(&mut self, addr: &SocketAddr, span: Range<usize>, has_token: bool) {
        if is_loopback(addr.ip()) {
            return;
        }
        let open = if has_token { "" } else { ", and without a `token` anyone who reaches it can post events" };
        self.reporter.warn(
            Some(span),
            format!(
                "`http` listens on {addr}, which is not a loopback address: other machines can reach the ingest \
                 API and /metrics{open}; use 127.0.0.1 unless they must"
            ),
        );
    }

    /// `exclude` patterns that remove every event the `events` patterns match (`events` and `exclude` as
    /// written, and `exclude` compiled).
    pub(super) fn warn_if_excluding_everything(
        &mut self,
        events: &[String],
        exclude: &[String],
        compiled: &[Glob],
        span: Range<usize>,
    ) {
        if events.is_empty() || exclude.is_empty() {
            return;
        }
        if events.iter().all(|pattern| excluded(pattern, exclude, compiled)) {
            self.reporter.warn(
                Some(span),
                "`exclude` removes every event that `events` matches: this subscription never receives anything",
            );
        }
    }

    /// A `signature_header` that no request carries; `why` says whose scheme does not use it.
    pub(super) fn warn_unused_signature_header(&mut self, header: &Text, why: &str) {
        self.reporter.warn(
            Some(header.span()),
            format!(
                "`signature_header` is used only with `signature = \"hmac-sha256\"`; {why}, so no request \
                 carries this header"
            ),
        );
    }

    pub(super) fn warn_if_no_retry(&mut self, list: &TextList) {
        if list.get_ref().is_empty() {
            self.reporter.warn(
                Some(list.span()),
                "`retry = []`: each delivery gets a single attempt and fails at its receiver's first error or \
                 timeout (a restart of the receiver is enough); list delays such as [\"1m\", \"5m\"] unless that \
                 is what you want",
            );
        }
    }
}

/// Why a subscription signing with `scheme` never sends its `signature_header`. Asked only for the
/// schemes that do not send it (`standard`, `none`); hmac-sha256's answer is there for completeness.
pub(super) fn unused_by(scheme: SignatureScheme) -> &'static str {
    match scheme {
        SignatureScheme::Standard => "this subscription signs with \"standard\", in `webhook-signature`",
        SignatureScheme::None => "this subscription has `signature = \"none\"`",
        SignatureScheme::HmacSha256 => "this subscription signs with \"hmac-sha256\", which does send it",
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Whether the `exclude` patterns remove every event `pattern` matches. It says yes only when that is
/// certain: the same pattern, a pattern of stars alone, a literal event type that an exclude pattern
/// matches, or an exclude `prefix*` that the fixed beginning of `pattern` starts with.
fn excluded(pattern: &str, exclude: &[String], compiled: &[Glob]) -> bool {
    exclude.iter().zip(compiled).any(|(written, glob)| {
        written == pattern
            || (!written.is_empty() && written.chars().all(|c| c == '*'))
            || (!pattern.contains(GLOB_SYNTAX) && glob.compile_matcher().is_match(pattern))
            || prefix_covers(written, pattern)
    })
}

/// `exclude = "X*"`, X without glob syntax, removes every event `pattern` matches when the text `pattern`
/// starts with, before any glob syntax, starts with X: every event it matches starts with that text.
fn prefix_covers(exclude: &str, pattern: &str) -> bool {
    let Some(prefix) = exclude.strip_suffix('*') else { return false };
    if prefix.contains(GLOB_SYNTAX) {
        return false;
    }
    pattern.split(GLOB_SYNTAX).next().is_some_and(|fixed| fixed.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(events: &[&str], exclude: &[&str]) -> bool {
        let written: Vec<String> = exclude.iter().map(|p| p.to_string()).collect();
        let compiled: Vec<Glob> = exclude.iter().map(|p| crate::router::compile_pattern(p).unwrap()).collect();
        events.iter().all(|pattern| excluded(pattern, &written, &compiled))
    }

    #[test]
    fn an_exclude_that_removes_every_event_is_recognised() {
        assert!(covers(&["*"], &["*"]));
        assert!(covers(&["appointment.*", "lab.completed"], &["**"]));
        assert!(covers(&["appointment.*"], &["appointment.*"]));
        assert!(covers(&["appointment.created", "appointment.updated"], &["appointment.*"]));
        assert!(covers(&["appointment.{created,updated}"], &["appointment.*"]));
        assert!(covers(&["lab.completed", "soap.signed"], &["lab.completed", "soap.*"]));
    }

    #[test]
    fn an_exclude_that_leaves_some_event_is_not_reported() {
        assert!(!covers(&["*"], &["appointment.*"]));
        assert!(!covers(&["appointment.*", "lab.completed"], &["appointment.*"]));
        // The text `a*` is matched by `a?`, but `a?` does not remove `abc`.
        assert!(!covers(&["a*"], &["a?"]));
        assert!(!covers(&["appointment.*"], &["appointment.created"]));
        assert!(!covers(&["lab.completed"], &["lab"]));
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
        assert!(!is_loopback("192.168.1.10".parse().unwrap()));
        assert!(!is_loopback("::".parse().unwrap()));
    }
}
