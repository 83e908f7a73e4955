//! When a failed delivery is tried again: the subscription's schedule with jitter, stretched by the
//! receiver's `Retry-After` on 429/503, or never (the delivery has failed).

use std::time::{Duration, SystemTime};

use rand::Rng;

/// A receiver may ask for a pause this long at the most.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delay before the next attempt after attempt `attempt` (1-based) failed, or `None` when the schedule
/// is exhausted. `retry_after` is honoured when it is longer than the scheduled delay.
pub fn next_delay(
    attempt: u32,
    schedule: &[Duration],
    jitter: f64,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    let scheduled = *schedule.get(attempt.checked_sub(1)? as usize)?;
    let delay = jittered(scheduled, jitter, rng);
    Some(match retry_after {
        Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
        None => delay,
    })
}

/// `delay` moved by a uniformly random fraction within ±`jitter`, so that retries of many deliveries that
/// failed together do not hit the receiver together.
pub fn jittered(delay: Duration, jitter: f64, rng: &mut impl Rng) -> Duration {
    if jitter <= 0.0 || delay.is_zero() {
        return delay;
    }
    let factor = 1.0 + rng.random_range(-jitter..=jitter);
    delay.mul_f64(factor.max(0.0))
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let schedule = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(next_delay(1, &schedule, 0.0, None, &mut rng()), Some(Duration::from_secs(1)));
        assert_eq!(next_delay(2, &schedule, 0.0, None, &mut rng()), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(3, &schedule, 0.0, None, &mut rng()), None);
        assert_eq!(next_delay(1, &[], 0.0, None, &mut rng()), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = rng();
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(100), 0.1, &mut rng);
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110), "{d:?}");
        }
    }

    #[test]
    fn retry_after_wins_only_when_longer_and_is_capped() {
        let schedule = [Duration::from_secs(10)];
        let longer = Some(Duration::from_secs(60));
        let shorter = Some(Duration::from_secs(2));
        let huge = Some(Duration::from_secs(10 * 24 * 3600));
        assert_eq!(next_delay(1, &schedule, 0.0, longer, &mut rng()), Some(Duration::from_secs(60)));
        assert_eq!(next_delay(1, &schedule, 0.0, shorter, &mut rng()), Some(Duration::from_secs(10)));
        assert_eq!(next_delay(1, &schedule, 0.0, huge, &mut rng()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
