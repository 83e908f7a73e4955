//! Which text format `GET /metrics` answers in (SPEC §7): the classic Prometheus text format to scrapers
//! that ask for `text/plain`, OpenMetrics to those that ask for `application/openmetrics-text`.
//!
//! They differ where `promtool check metrics` looks: OpenMetrics names a counter family `foo` (its samples
//! are `foo_total`) and ends with `# EOF`; the classic format names the family `foo_total`, as its samples,
//! and has no end marker. `prometheus_client` writes both, so nothing is converted here.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The content type of OpenMetrics text, as `prometheus_client` writes it.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// The Prometheus text format, version 0.0.4 (`text/plain; version=0.0.4`).
    Classic,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Exposition {
    /// The format for a request's `Accept` header (all its values, comma-joined; empty when it has none).
    ///
    /// OpenMetrics when the header names `application/openmetrics-text` with a quality at least that of
    /// `text/plain` (or `text/*`, `*/*`), as Prometheus's own scrapes do (they list OpenMetrics first);
    /// the classic format otherwise, including for a request without `Accept` and for `*/*` (curl):
    /// that is what Prometheus's client libraries do, and it is what `curl … | promtool check metrics`
    /// reads.
    pub fn for_accept(accept: &str) -> Exposition {
        let (mut openmetrics, mut classic) = (0.0_f64, 0.0_f64);
        for range in accept.split(',') {
            let mut parameters = range.split(';');
            let media_type = parameters.next().unwrap_or("").trim();
            let quality = parameters
                .filter_map(|parameter| parameter.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, value)| value.trim().parse::<f64>().unwrap_or(0.0));
            if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(quality);
            } else if ["text/plain", "text/*", "*/*"].iter().any(|plain| media_type.eq_ignore_ascii_case(plain)) {
                classic = classic.max(quality);
            }
        }
        if openmetrics > 0.0 && openmetrics >= classic {
            Exposition::OpenMetrics
        } else {
            Exposition::Classic
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Classic => prometheus_text::CONTENT_TYPE,
            Exposition::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// `registry` in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let mut exposition = String::new();
        let written = match self {
            Exposition::Classic => prometheus_text::encode(&mut exposition, registry),
            Exposition::OpenMetrics => text::encode(&mut exposition, registry),
        };
        // Writing to a String does not fail, and the relay's own names, labels and bucket bounds all encode.
        written.expect("writing metrics to a String");
        exposition
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    /// What Prometheus 2.x sends (scrape_protocols left at their default).
    const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
                              q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn openmetrics_only_to_those_that_prefer_it() {
        let cases = [
            ("", Exposition::Classic),
            ("*/*", Exposition::Classic),
            ("text/plain", Exposition::Classic),
            ("text/plain; version=0.0.4", Exposition::Classic),
            ("TEXT/PLAIN;q=0.9, application/openmetrics-text;q=0.5", Exposition::Classic),
            ("application/openmetrics-text;q=0, text/plain;q=0.1", Exposition::Classic),
            ("application/openmetrics-text;q=bogus", Exposition::Classic),
            ("application/json", Exposition::Classic),
            (PROMETHEUS, Exposition::OpenMetrics),
            ("application/openmetrics-text", Exposition::OpenMetrics),
            ("Application/OpenMetrics-Text; version=1.0.0", Exposition::OpenMetrics),
            ("text/plain;q=0.5, application/openmetrics-text;q=0.5", Exposition::OpenMetrics),
        ];
        for (accept, expected) in cases {
            assert_eq!(Exposition::for_accept(accept), expected, "Accept: {accept}");
        }
    }

    fn registry() -> Registry {
        let mut registry = Registry::with_prefix("hookrelay");
        let counter = Counter::<u64>::default();
        counter.inc();
        registry.register("events_accepted", "Events stored", counter);
        registry
    }

    #[test]
    fn the_classic_format_names_counters_with_total_and_has_no_end_marker() {
        let classic = Exposition::Classic.encode(&registry());
        assert_eq!(
            classic,
            "# HELP hookrelay_events_accepted_total Events stored.\n\
             # TYPE hookrelay_events_accepted_total counter\n\
             hookrelay_events_accepted_total 1\n"
        );
        assert!(Exposition::Classic.content_type().starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn openmetrics_names_the_counter_family_and_ends_with_eof() {
        let openmetrics = Exposition::OpenMetrics.encode(&registry());
        assert_eq!(
            openmetrics,
            "# HELP hookrelay_events_accepted Events stored.\n\
             # TYPE hookrelay_events_accepted counter\n\
             hookrelay_events_accepted_total 1\n\
             # EOF\n"
        );
        assert!(Exposition::OpenMetrics.content_type().starts_with("application/openmetrics-text"));
    }
}
