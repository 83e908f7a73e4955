//! How long a producer may take to send a request. Without a bound, clients that open connections and
//! send their headers or body a byte at a time (slowloris) would hold connections and memory forever.
//! The app on the same machine never needs long, so the default is generous; operators and tests can
//! change it with `HOOKRELAY_INGEST_CLIENT_TIMEOUT` (a duration such as `10s`).

use std::time::Duration;

const VARIABLE: &str = "HOOKRELAY_INGEST_CLIENT_TIMEOUT";
const DEFAULT: Duration = Duration::from_secs(30);

/// The time allowed for the request headers, and again for the body, from the environment or the default.
pub fn client_timeout() -> anyhow::Result<Duration> {
    match std::env::var(VARIABLE) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT),
        Ok(text) => match humantime::parse_duration(text.trim()) {
            Ok(duration) if !duration.is_zero() => Ok(duration),
            _ => anyhow::bail!("{VARIABLE}={text:?} is not a duration such as \"30s\""),
        },
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{VARIABLE} is not valid UTF-8"),
    }
}
