//! Durations an operator (or a test) may override with an environment variable: read once at start, and
//! an invalid value stops the relay there, naming the variable, rather than running on a default nobody
//! asked for.

use std::time::Duration;

/// The duration in `variable` (humantime: `30s`, `10m`, `0s`), or `default` when it is unset.
pub fn read(variable: &str, default: Duration) -> anyhow::Result<Duration> {
    match std::env::var(variable) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(text) => humantime::parse_duration(text.trim())
            .map_err(|_| anyhow::anyhow!("{variable}={text:?} is not a duration such as \"30s\"")),
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{variable} is not valid UTF-8"),
    }
}
