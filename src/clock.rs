//! Wall-clock helpers. Times are stored as Unix milliseconds and shown as RFC 3339 UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 in UTC, e.g. `2026-04-11T10:30:00Z` (fractional seconds only when there are some).
pub fn rfc3339_utc(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC).format(&Rfc3339).expect("every UTC date formats as RFC 3339")
}

/// A stored millisecond timestamp as RFC 3339 UTC.
pub fn ms_to_rfc3339(ms: u64) -> String {
    let time =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    rfc3339_utc(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_converted_to_utc() {
        let time = OffsetDateTime::parse("2026-04-15T10:00:00+03:00", &Rfc3339).unwrap();
        assert_eq!(rfc3339_utc(time), "2026-04-15T07:00:00Z");
        assert_eq!(ms_to_rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
