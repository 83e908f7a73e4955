//! Clocks. Times are stored as Unix milliseconds (wall clock) and shown as RFC 3339 UTC, so that due times
//! survive restarts; while the relay runs, waiting is measured on the monotonic clock (SPEC §7), so that
//! a step of the system clock (NTP, a VM resume) neither stalls retries nor fires them early.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The wall clock and the monotonic clock as read together once, at the first call.
fn start() -> &'static (u64, Instant) {
    static START: OnceLock<(u64, Instant)> = OnceLock::new();
    START.get_or_init(|| (now_ms(), Instant::now()))
}

/// Milliseconds on the monotonic clock, counted from the first use of these clocks.
pub fn mono_ms() -> u64 {
    start().1.elapsed().as_millis() as u64
}

/// A wall-clock due time (Unix ms) as a monotonic one ([`mono_ms`]): as far from now as it is on the wall
/// clock now; a time past is due now.
pub fn wall_to_mono(due_ms: u64) -> u64 {
    ToMono::now().convert(due_ms)
}

/// [`wall_to_mono`] for many due times, both clocks read once.
#[derive(Clone, Copy)]
pub struct ToMono {
    wall: u64,
    mono: u64,
}

impl ToMono {
    pub fn now() -> ToMono {
        ToMono { wall: now_ms(), mono: mono_ms() }
    }

    pub fn convert(self, due_ms: u64) -> u64 {
        self.mono + due_ms.saturating_sub(self.wall)
    }
}

/// The wall clock, but never ahead of the wall time at start plus the monotonic time since: a clock
/// stepped forward must not make old records look older (the retention purge).
pub fn bounded_now_ms() -> u64 {
    let (wall_at_start, _) = *start();
    now_ms().min(wall_at_start + mono_ms())
}

/// RFC 3339 in UTC, e.g. `2026-04-11T10:30:00Z` (fractional seconds only when there are some).
pub fn rfc3339_utc(time: OffsetDateTime) -> String {
    // Ingest admits only times that are years 0000-9999 in UTC; anything else shows as the epoch rather
    // than a panic.
    time.checked_to_offset(time::UtcOffset::UTC)
        .and_then(|utc| utc.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
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
