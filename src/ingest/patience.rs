//! How long a producer may take to send a request. Without a bound, clients that open connections and
//! send their headers or body a byte at a time (slowloris) would hold connections and memory forever.
//! The app on the same machine never needs long, so the default is generous; operators and tests can
//! change it with `HOOKRELAY_INGEST_CLIENT_TIMEOUT` (a duration such as `10s`).

use std::time::Duration;

const VARIABLE: &str = "HOOKRELAY_INGEST_CLIENT_TIMEOUT";
const DEFAULT: Duration = Duration::from_secs(30);

/// The time allowed for the request headers, and again for the body, from the environment or the default.
pub fn client_timeout() -> anyhow::Result<Duration> {
    let timeout = crate::env_duration::read(VARIABLE, DEFAULT)?;
    if timeout.is_zero() {
        anyhow::bail!("{VARIABLE} must be longer than 0s: a producer needs some time to send its request");
    }
    Ok(timeout)
}
