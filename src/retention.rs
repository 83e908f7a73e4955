//! The retention timer (SPEC §3 `relay.retention`): purges finished records older than the retention
//! period, a quarter of that period apart, so the database stays bounded under steady load. What a purge
//! removes, and why it never removes unfinished work, is [`crate::lifecycle`]'s purge transition.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::clock::bounded_now_ms;
use crate::lifecycle::Deliveries;

/// Purges run this often: a quarter of the retention period, within these bounds.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges in the background until `stop`; the period is read from the current config each round, and again
/// at each reload (a reload that lowers `retention` does not wait out the old period).
pub fn spawn(deliveries: Arc<Deliveries>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            let retention = deliveries.config().relay.retention;
            let interval = (retention / 4).clamp(MIN_INTERVAL, MAX_INTERVAL);
            tokio::select! {
                _ = tokio::time::sleep_until(last + interval) => {}
                // A reload may have changed the period: the next purge is due that long after the last.
                _ = deliveries.next_reload() => continue,
                _ = stop.cancelled() => return,
            }
            last = tokio::time::Instant::now();
            // A clock stepped forward must not purge early (idempotency keys included).
            let cutoff = bounded_now_ms().saturating_sub(retention.as_millis() as u64);
            match deliveries.purge(cutoff).await {
                Ok(purged) if purged.events > 0 => info!(
                    events = purged.events,
                    deliveries = purged.deliveries,
                    "Purged finished records older than the retention period."
                ),
                Ok(_) => debug!("Retention purge: nothing to purge."),
                Err(error) => error!(%error, "The retention purge failed; it is tried again next round."),
            }
        }
    });
}
