//! Logs that stay readable on a bad day (SPEC §7): a failing subscription logs its first failed attempt
//! and its first failed delivery in full, then at most one summary line per minute until it recovers;
//! every other failed attempt is logged at DEBUG. A receiver that is down with 200,000 deliveries queued would otherwise write a WARN line per
//! attempt, and journald's rate limit would drop those and whatever else was logged meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one summary line per subscription this often.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// How loudly to log a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Loudness {
    /// The first failed attempt of a streak, or its first failed delivery: log it in full at WARN (ERROR
    /// when the delivery is failed).
    First,
    /// Log it at DEBUG only.
    Quiet,
    /// Log it at DEBUG, and a summary of the streak's last interval at WARN.
    Summary(Streak),
}

/// Failures of one subscription since its last summary (or since its streak began).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Streak {
    pub failed_attempts: u64,
    /// Deliveries that ended `failed`.
    pub failed_deliveries: u64,
    pub last_error: String,
}

struct State {
    /// In a streak: failures since the last success.
    failing: bool,
    summarized_at: Instant,
    since_summary: Streak,
    /// Failed attempts in the whole streak.
    total: u64,
    /// A failed delivery of this streak was logged in full.
    failed_delivery_logged: bool,
    /// When a streak's first failure, or a recovery, was last logged in full: a receiver that fails and
    /// succeeds by turns gets at most one of each per interval, not one per attempt.
    first_logged_at: Option<Instant>,
    recovery_logged_at: Option<Instant>,
}

impl State {
    fn new() -> State {
        State {
            failing: false,
            summarized_at: Instant::now(),
            since_summary: Streak::default(),
            total: 0,
            failed_delivery_logged: false,
            first_logged_at: None,
            recovery_logged_at: None,
        }
    }
}

/// Whether `at` is unset or at least an interval before `now`.
fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_none_or(|at| now.duration_since(at) >= SUMMARY_INTERVAL)
}

/// Failure streaks per subscription.
#[derive(Default)]
pub struct FailureLog {
    streaks: Mutex<HashMap<String, State>>,
}

impl FailureLog {
    /// A failed attempt of `subscription` at `now`; `delivery_failed` when it was the delivery's last.
    pub fn failed(&self, subscription: &str, error: &str, delivery_failed: bool, now: Instant) -> Loudness {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        let state = streaks.entry(subscription.to_owned()).or_insert_with(State::new);
        if !state.failing {
            state.failing = true;
            state.total = 0;
            state.failed_delivery_logged = false;
            if due(state.first_logged_at, now) {
                // A streak logged in full starts its summaries afresh; one that is not (a flapping
                // receiver) goes on with the summaries of the last.
                state.summarized_at = now;
                state.first_logged_at = Some(now);
                state.total = 1;
                state.failed_delivery_logged = delivery_failed;
                let unreported = std::mem::take(&mut state.since_summary);
                if unreported.failed_attempts > 0 {
                    return Loudness::Summary(unreported);
                }
                return Loudness::First;
            }
        }
        state.total += 1;
        if delivery_failed && !state.failed_delivery_logged {
            state.failed_delivery_logged = true;
            return Loudness::First;
        }
        state.since_summary.failed_attempts += 1;
        state.since_summary.failed_deliveries += u64::from(delivery_failed);
        error.clone_into(&mut state.since_summary.last_error);
        if now.duration_since(state.summarized_at) < SUMMARY_INTERVAL {
            return Loudness::Quiet;
        }
        state.summarized_at = now;
        Loudness::Summary(std::mem::take(&mut state.since_summary))
    }

    /// A successful attempt at `now`: ends the subscription's streak. Returns the streak's failed attempts
    /// when the recovery is to be logged (at most once per interval).
    pub fn succeeded(&self, subscription: &str, now: Instant) -> Option<u64> {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        let state = streaks.get_mut(subscription).filter(|state| state.failing)?;
        state.failing = false;
        if !due(state.recovery_logged_at, now) {
            return None;
        }
        state.recovery_logged_at = Some(now);
        Some(state.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_logs_its_first_failure_then_one_summary_per_interval_until_it_recovers() {
        let log = FailureLog::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(log.failed("s", "503", false, at(0)), Loudness::First);
        assert_eq!(log.failed("other", "timeout", false, at(0)), Loudness::First, "streaks are per subscription");
        assert_eq!(log.failed("s", "503", true, at(1)), Loudness::First, "the first failed delivery, in full");
        for ms in 2..1000 {
            assert_eq!(log.failed("s", "503", ms % 7 == 0, at(ms * 59)), Loudness::Quiet);
        }
        let Loudness::Summary(streak) = log.failed("s", "reset", true, at(60_000)) else { panic!("a summary is due") };
        assert_eq!(streak.failed_attempts, 999, "those since the lines in full");
        assert_eq!(streak.failed_deliveries, 142 + 1);
        assert_eq!(streak.last_error, "reset");
        assert_eq!(log.failed("s", "503", false, at(60_001)), Loudness::Quiet, "the next one a minute later");
        assert!(matches!(log.failed("s", "503", false, at(120_000)), Loudness::Summary(s) if s.failed_attempts == 2));
        assert_eq!(log.succeeded("s", at(120_000)), Some(1003));
        assert_eq!(log.succeeded("s", at(120_000)), None, "no streak to end");
        assert_eq!(log.failed("s", "503", false, at(200_000)), Loudness::First, "a new streak");
    }

    /// A receiver that fails and succeeds by turns must not log a line per attempt either.
    #[test]
    fn a_flapping_receiver_logs_one_first_failure_and_one_recovery_per_interval() {
        let log = FailureLog::default();
        let start = Instant::now();
        let mut loud = 0;
        for i in 0..1000u64 {
            let now = start + Duration::from_millis(i * 10);
            if !matches!(log.failed("s", "503", false, now), Loudness::Quiet) {
                loud += 1;
            }
            if log.succeeded("s", now).is_some() {
                loud += 1;
            }
        }
        assert_eq!(loud, 2, "10 s of alternating answers: one first failure and one recovery");
        let later = start + SUMMARY_INTERVAL + Duration::from_secs(1);
        let Loudness::Summary(streak) = log.failed("s", "503", false, later) else { panic!("a summary is due") };
        assert_eq!(streak.failed_attempts, 999, "the quiet failures of a minute of flapping are summed up");
    }
}
