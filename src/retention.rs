//! The retention purge (SPEC §3 `relay.retention`): finished deliveries, their attempts, their event and
//! its idempotency key are removed once all of them are older than the retention period, so the
//! database stays bounded under steady load. An event with an unfinished delivery is never removed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::clock::now_ms;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{DeliveryStatus, Store, StoreError};

/// Purges run this often: a quarter of the retention period, within these bounds.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: usize,
    pub deliveries: usize,
}

/// Purges in the background until `stop`; the period is read from the current config each round.
pub fn spawn(store: Store, config: Arc<arc_swap::ArcSwap<Config>>, metrics: Arc<Metrics>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let retention = config.load().relay.retention;
            let interval = (retention / 4).clamp(MIN_INTERVAL, MAX_INTERVAL);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
            let (store, metrics) = (store.clone(), Arc::clone(&metrics));
            let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
            match tokio::task::spawn_blocking(move || purge(&store, cutoff, &metrics)).await {
                Ok(Ok(purged)) if purged.events > 0 => info!(
                    events = purged.events,
                    deliveries = purged.deliveries,
                    "Purged finished records older than the retention period."
                ),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => error!(%error, "The retention purge failed; it is tried again next round."),
                Err(error) => error!(%error, "The retention purge stopped unexpectedly."),
            }
        }
    });
}

/// Removes every event accepted before `cutoff` (Unix ms) whose deliveries all finished before it.
pub fn purge(store: &Store, cutoff: u64, metrics: &Metrics) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    for event in store.events() {
        let event = event?;
        if event.accepted_at >= cutoff {
            continue;
        }
        let mut deliveries = Vec::with_capacity(event.deliveries.len());
        for &id in &event.deliveries {
            if let Some(delivery) = store.delivery(id)? {
                deliveries.push(delivery);
            }
        }
        if deliveries.iter().any(|d| d.status == DeliveryStatus::Pending || d.updated_at >= cutoff) {
            continue;
        }
        store.remove_event(&event)?;
        for failed in deliveries.iter().filter(|d| d.status == DeliveryStatus::Failed) {
            metrics.failed(&failed.subscription, -1);
        }
        purged.events += 1;
        purged.deliveries += deliveries.len();
    }
    Ok(purged)
}
