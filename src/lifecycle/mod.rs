//! The lifecycle owner: the only code that changes a delivery's state (ARCHITECTURE "one owner per
//! invariant"). Ingest, workers, reload, the admin API, retention and start-up recovery call
//! [`Deliveries`]; none of them touches the store's delivery records, the scheduler's queues, the backlog
//! count or the delivery gauges directly.
//!
//! # Transitions
//! Each is one method. Its decision runs as a store transition on the commit thread
//! ([`crate::store::Records`]), so transitions are serialized with each other: each reads what every
//! earlier one wrote, and a check made there cannot be invalidated before its write (no purge of a
//! delivery requeued meanwhile, no second start of a delivery). Its writes are durable before its caller
//! is answered. Its in-memory follow-up (scheduler, backlog, metrics) runs on the commit thread once the
//! writes are durable, in the order of the transitions, whether or not the caller still waits: a caller
//! that hangs up (an admin client, a producer) cancels nothing.
//!
//! | transition | file | writes | follow-up |
//! |---|---|---|---|
//! | create (ingest) | [`create`] | event + its deliveries, `pending` | queue them; on failure take them back |
//! | attempt result | [`attempt`] | delivery, carrying the attempt (+ the attempt it carried before, under its own key; + pause record when it pauses or resumes) | hand back to the scheduler (retry) or release |
//! | pause / resume by hand | [`flow`] | pause record | wake the worker |
//! | requeue | [`requeue`] | `failed`/`cancelled` → `pending` | queue, count back in the backlog |
//! | resend | [`requeue`] | a new `pending` delivery of the same event | queue it |
//! | cancel (removed subscription, after the grace period) | [`cancel`] | `pending` → `cancelled`, its pause record removed | release |
//! | erase | [`cancel`] | event data and response bodies removed, `pending` → `cancelled` | release |
//! | purge | [`purge`] | finished event, deliveries, attempts removed | failed gauge |
//! | quarantine | [`quarantine`] | a damaged record moved under `q` | counted |
//! | recovery (start) | [`recover`] | damaged deliveries quarantined, status index corrected | queues and counts rebuilt from the store |
//!
//! Queue changes that must not wait for durability (taking a delivery out of its queue when it is
//! cancelled or erased) happen inside the decision, so no worker can take the delivery after the
//! decision; everything that could start an attempt happens only after durability.

mod attempt;
mod cancel;
mod create;
mod flow;
mod purge;
mod quarantine;
mod recover;
mod requeue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::info;

pub use attempt::{Attempted, Loaded, Loading};
pub use cancel::Erased;
pub use create::{Candidate, Created};
pub use flow::{
    FlowView, Gate, PAUSED_BY_HAND, PAUSED_FAILING, PAUSED_GONE, RESUMED_BY_HAND, RESUMED_BY_PROBE, STILL_PAUSED,
};
pub use purge::Purged;
pub use recover::Recovered;
pub use requeue::{NotRequeued, NotResent};

use crate::backlog::Backlog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::store::{DeliveryId, Store};

/// Deliveries (or events, for purge) handled per transition by the transitions that may touch very many:
/// each is one sled batch, and ingest's commits interleave between them.
const SLICE: usize = 256;

/// How long a removed subscription's queued deliveries wait for it to come back (SPEC §7).
pub const REMOVED_GRACE: Duration = Duration::from_secs(600);

/// Owns every delivery's state; see the module doc.
pub struct Deliveries {
    store: Store,
    scheduler: Scheduler,
    backlog: Backlog,
    metrics: Arc<Metrics>,
    config: Arc<ArcSwap<Config>>,
    /// Follow-ups run on the commit thread and start grace timers here.
    runtime: tokio::runtime::Handle,
    /// Delivery ids made outside ingest (resend), strictly increasing.
    ids: Mutex<ulid::Generator>,
    /// See [`REMOVED_GRACE`]; shorter in tests.
    removed_grace: Duration,
    /// Unconfigured subscriptions whose queue has a grace timer running, with the number of the removal
    /// it belongs to: a subscription that comes back ends it, and a later removal starts a new one.
    graced: Mutex<HashMap<String, u64>>,
    removals: AtomicU64,
    /// Signalled at every reload, so that timers that depend on the config (the purge) look again.
    reloaded: tokio::sync::Notify,
    /// Pending deliveries set aside because their event is sealed with a key that is not listed.
    waiting_for_key: Mutex<std::collections::HashSet<DeliveryId>>,
    /// Keys found sealing an event that the store's key log did not name (reported once each).
    unlogged_keys: Mutex<std::collections::HashSet<crate::store::KeyId>>,
    /// Pauses and failure streaks per subscription ([`flow`]).
    flows: flow::Flows,
}

impl Deliveries {
    /// The keys event data is sealed with (SPEC §8).
    pub fn keyring(&self) -> &crate::store::Keyring {
        self.store.keyring()
    }

    pub fn new(
        store: Store,
        config: Arc<ArcSwap<Config>>,
        metrics: Arc<Metrics>,
        removed_grace: Duration,
    ) -> Arc<Deliveries> {
        Arc::new(Deliveries {
            store,
            scheduler: Scheduler::default(),
            backlog: Backlog::new(0),
            metrics,
            config,
            runtime: tokio::runtime::Handle::current(),
            ids: Mutex::new(ulid::Generator::new()),
            removed_grace,
            graced: Mutex::default(),
            removals: AtomicU64::new(0),
            reloaded: tokio::sync::Notify::new(),
            waiting_for_key: Mutex::default(),
            unlogged_keys: Mutex::default(),
            flows: flow::Flows::default(),
        })
    }

    /// The queues, for workers to take due deliveries from, for gauges and for listings of pending and
    /// held deliveries; only this module changes what they hold.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Unfinished deliveries (pending, held, in flight), for `max_pending`.
    pub fn unfinished(&self) -> u64 {
        self.backlog.unfinished()
    }

    /// Queues a pending delivery due at `due_ms` (wall clock, as stored) once its transition is durable;
    /// the scheduler waits on the monotonic clock. A delivery of a subscription that is not in the config
    /// waits in its queue for the removal grace period (see [`Deliveries::watch_removed`]).
    fn queue(self: &Arc<Self>, subscription: &str, id: DeliveryId, due_ms: u64, order_key: Option<u64>) {
        self.scheduler.enqueue(subscription, id, crate::clock::wall_to_mono(due_ms), order_key);
        if self.config.load().subscription(subscription).is_none() {
            self.watch_removed(subscription);
        }
    }

    /// Ends an attempt in flight and, with `retry_at_ms` (wall clock, as stored), queues the delivery again
    /// in the same step: a listing of pending deliveries, which reads the queues, never misses it between.
    fn end_attempt(self: &Arc<Self>, subscription: &str, id: DeliveryId, retry_at_ms: Option<u64>) {
        self.scheduler.finished(subscription, id, retry_at_ms.map(crate::clock::wall_to_mono));
        if retry_at_ms.is_some() && self.config.load().subscription(subscription).is_none() {
            self.watch_removed(subscription);
        }
    }

    /// A new config is in place (a reload): added subscriptions end their grace period, removed ones
    /// start one, and every worker looks at its queue again (concurrency, `enabled` and schedules may
    /// have changed).
    pub fn config_changed(self: &Arc<Self>, added: &[String], removed: &[String]) {
        let mut graced = self.graced();
        for name in added {
            graced.remove(name);
        }
        drop(graced);
        for name in removed {
            self.watch_removed(name);
        }
        self.scheduler.wake_all();
        self.reloaded.notify_waiters();
    }

    /// Resolves at the next reload.
    pub async fn next_reload(&self) {
        self.reloaded.notified().await
    }

    fn graced(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.graced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the grace timer of an unconfigured subscription's queue unless one runs: once it ends, the
    /// queued deliveries are cancelled if the subscription has not come back meanwhile (SPEC §7).
    pub fn watch_removed(self: &Arc<Self>, subscription: &str) {
        let removal = self.removals.fetch_add(1, Ordering::Relaxed);
        match self.graced().entry(subscription.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => return,
            std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(removal),
        };
        info!(
            subscription,
            grace = %humantime::format_duration(self.removed_grace),
            "Subscription not in the config; its queued deliveries wait for it before they are cancelled."
        );
        // A timer does not keep the relay's state alive after shutdown.
        let (owner, name, grace) = (Arc::downgrade(self), subscription.to_owned(), self.removed_grace);
        self.runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(deliveries) = owner.upgrade() else { return };
            deliveries.grace_ended(&name, removal).await;
        });
    }
}

/// Runs blocking store reads on the blocking pool, never on an async worker.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, crate::store::StoreError> {
    tokio::task::spawn_blocking(read).await.unwrap_or_else(|_| Err(crate::store::StoreError::Stopped))
}
