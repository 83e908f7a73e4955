//! Flow-control settings (SPEC §3, §6c): `rate_limit`, `pause_after`, `probe_interval`, `give_up_on`.

use std::time::Duration;

use serde_spanned::Spanned;

use super::compile::Compiler;
use super::raw::Text;

/// `rate_limit = "N/s"` or `"N/m"`: at most `count` attempt starts per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    /// The spacing between two attempt starts, in whole milliseconds rounded up: starts are paced evenly,
    /// never bunched, so that any window of one period holds at most `count` of them (SPEC §3), across
    /// restarts and reloads too.
    pub fn interval_ms(&self) -> u64 {
        (self.per.as_millis() as u64).div_ceil(u64::from(self.count)).max(1)
    }
}

/// The most attempts a `rate_limit` may allow per second: one per millisecond (past that it limits nothing
/// a relay's concurrency would not).
const MAX_PER_SECOND: u32 = 1000;

/// HTTP answers `give_up_on` may list: client and server errors, never a success or a redirect.
const GIVE_UP_RANGE: std::ops::RangeInclusive<u64> = 400..=599;

impl Compiler<'_> {
    pub(super) fn rate_limit(&mut self, text: &Text) -> Option<RateLimit> {
        let value = text.get_ref().trim();
        let parsed = value.split_once('/').and_then(|(count, unit)| {
            let count: u32 = count.trim().parse().ok()?;
            let per = match unit.trim() {
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                _ => return None,
            };
            Some(RateLimit { count, per })
        });
        match parsed {
            Some(limit) if limit.count == 0 => {
                self.fail(text.span(), "`rate_limit` must allow at least 1 attempt; remove it to have no limit")
            }
            Some(limit) if limit.per == Duration::from_secs(1) && limit.count > MAX_PER_SECOND => self.fail(
                text.span(),
                format!("`rate_limit` must be at most {MAX_PER_SECOND}/s"),
            ),
            Some(limit) if limit.count > MAX_PER_SECOND * 60 => {
                self.fail(text.span(), format!("`rate_limit` must be at most {}/m", MAX_PER_SECOND * 60))
            }
            Some(limit) => Some(limit),
            None => self.fail(
                text.span(),
                format!("invalid `rate_limit` `{value}`: expected attempts per second or minute, e.g. \"50/s\" or \"600/m\""),
            ),
        }
    }

    pub(super) fn give_up_on(&mut self, list: &Spanned<Vec<Spanned<u64>>>) -> Option<Vec<u16>> {
        let mut codes = Vec::new();
        for code in list.get_ref() {
            match u16::try_from(*code.get_ref()) {
                Ok(status) if GIVE_UP_RANGE.contains(code.get_ref()) => {
                    if status == 410 {
                        // 410 already pauses the subscription (SPEC §6c); failing at once would contradict it.
                        self.reporter.error(
                            Some(code.span()),
                            "`give_up_on` cannot list 410: a 410 Gone pauses the subscription until `hookrelay resume`",
                        );
                    } else if !codes.contains(&status) {
                        codes.push(status);
                    }
                }
                _ => self.reporter.error(
                    Some(code.span()),
                    format!("`give_up_on` lists HTTP error statuses (400 to 599), not {}", code.get_ref()),
                ),
            }
        }
        Some(codes)
    }
}
