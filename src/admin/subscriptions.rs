//! `GET /v1/subscriptions` and `POST /v1/subscriptions/{name}/pause|resume` (SPEC §5): each configured
//! subscription's state, counts by status, oldest pending age, last error and last success.
//!
//! Counts come from a scan of every delivery's leading fields (the one recovery uses), on the blocking
//! pool: exact, and a second or so for a million deliveries. The last error and last success are those
//! seen since the relay started (or, for a pause, the error that caused it).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::clock::{ms_to_rfc3339, now_ms};
use crate::config::Config;
use crate::lifecycle::Deliveries;
use crate::store::{DeliveryStatus, Store, StoreError};

/// Finished deliveries per subscription: delivered, failed, cancelled.
pub type Finished = HashMap<String, [u64; 3]>;

/// Counts the finished deliveries of every subscription.
pub fn count_finished(store: &Store) -> Result<Finished, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let (found, _damaged) = store.scan_delivery_states(threads, Finished::new, |counts, _id, state| {
        let slot = match state.status {
            DeliveryStatus::Delivered => 0,
            DeliveryStatus::Failed => 1,
            DeliveryStatus::Cancelled => 2,
            DeliveryStatus::Pending => return,
        };
        crate::str_map::entry(counts, state.subscription.as_ref())[slot] += 1;
    })?;
    let mut total = Finished::new();
    for counts in found {
        for (name, [delivered, failed, cancelled]) in counts {
            let sum = total.entry(name).or_default();
            sum[0] += delivered;
            sum[1] += failed;
            sum[2] += cancelled;
        }
    }
    Ok(total)
}

/// The subscription object of `name` (configured).
pub fn view(deliveries: &Deliveries, config: &Config, name: &str, finished: &Finished) -> Value {
    let enabled = config.subscription(name).is_some_and(|s| s.enabled);
    let flow = deliveries.flow_view(name);
    let unfinished = deliveries.scheduler().unfinished();
    let queue = unfinished.iter().find(|(queued, _, _)| queued == name);
    let (count, oldest) = queue.map_or((0, None), |q| (q.1 as u64, q.2));
    let [delivered, failed, cancelled] = finished.get(name).copied().unwrap_or_default();
    let state = match (&flow.paused, enabled) {
        (Some(_), _) => "paused",
        (None, false) => "held",
        (None, true) => "active",
    };
    let now = now_ms();
    json!({
        "name": name,
        "state": state,
        "paused_reason": flow.paused.as_ref().map(|p| p.reason.as_str()),
        "paused_since": flow.paused.as_ref().map(|p| ms_to_rfc3339(p.since)),
        "counts": {
            "pending": if enabled { count } else { 0 },
            "held": if enabled { 0 } else { count },
            "delivered": delivered,
            "failed": failed,
            "cancelled": cancelled,
        },
        "oldest_pending_age_seconds": oldest.map(|at| now.saturating_sub(at) as f64 / 1000.0),
        "last_error": flow.last_error.or_else(|| flow.paused.and_then(|p| p.last_error)),
        "last_success_at": flow.last_success_at.map(ms_to_rfc3339),
    })
}
