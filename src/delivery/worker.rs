//! One worker per subscription starts attempts as the scheduler makes them due, within the
//! subscription's concurrency (or one at a time when `ordered`), and records what each attempt came to.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::client::{ClientPool, Outcome};
use super::failure_log::{FailureLog, Loudness};
use super::request;
use crate::clock::{mono_ms, now_ms};
use crate::config::Subscription;
use crate::lifecycle::{Attempted, Deliveries, Gate, Loaded, Loading};
use crate::scheduler::Next;
use crate::shutdown::Shutdown;
use crate::store::{AttemptRecord, DeliveryId, DeliveryRecord, DeliveryStatus, StoreError};

/// When the store cannot be read or written, the delivery is looked at again after this long.
const STORE_TROUBLE_RETRY: Duration = Duration::from_secs(30);

/// The per-subscription workers and their attempts.
pub struct Dispatcher {
    deliveries: Arc<Deliveries>,
    shutdown: Shutdown,
    clients: ClientPool,
    /// Workers and attempts, awaited at shutdown.
    tasks: TaskTracker,
    /// Subscriptions that have a worker. A worker outlives its subscription's removal (it just waits), so a
    /// subscription that comes back finds it again.
    workers: Mutex<HashSet<String>>,
    failures: FailureLog,
}

impl Dispatcher {
    pub fn new(deliveries: Arc<Deliveries>, shutdown: Shutdown) -> Dispatcher {
        Dispatcher {
            deliveries,
            shutdown,
            clients: ClientPool::default(),
            tasks: TaskTracker::new(),
            workers: Mutex::default(),
            failures: FailureLog::default(),
        }
    }

    /// Starts the worker of subscription `name` unless it has one; it runs until shutdown.
    pub fn ensure_worker(self: &Arc<Self>, name: &str) {
        if !self.workers.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned()) {
            return;
        }
        let (dispatcher, name) = (Arc::clone(self), name.to_owned());
        self.tasks.spawn(async move { dispatcher.work(name).await });
    }

    /// Waits for every worker and attempt to end (after shutdown began).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn work(self: Arc<Self>, name: String) {
        let scheduler = self.deliveries.scheduler();
        let wake = scheduler.wake_signal(&name);
        let stop = self.shutdown.stop.clone();
        // `rate_limit` paces attempt starts one spacing apart, counted from the last start (so a reload that
        // changes the limit applies from the next start); the first start after the relay starts waits one
        // spacing too, so the bound holds across restarts without remembering the last start.
        let started_ms = mono_ms();
        let mut last_start_ms: Option<u64> = None;
        while !stop.is_cancelled() {
            let config = self.deliveries.config();
            let subscription = config.subscription(&name).filter(|s| s.enabled).cloned();
            let now = mono_ms();
            let spacing = subscription.as_ref().and_then(|s| s.delivery.rate_limit).map(|limit| {
                let spacing = limit.interval_ms();
                last_start_ms.unwrap_or(started_ms) + spacing
            });
            let next = match &subscription {
                // Removed or disabled: hold everything until a config change wakes us.
                None => Next::Wait,
                Some(_) if spacing.is_some_and(|allowed| now < allowed) => Next::WaitUntil(spacing.unwrap_or(now)),
                Some(s) => self.next_start(s, now),
            };
            match (next, subscription) {
                (Next::Start(id), Some(subscription)) => {
                    last_start_ms = Some(now);
                    let dispatcher = Arc::clone(&self);
                    self.tasks.spawn(async move { dispatcher.attempt(subscription, id).await });
                }
                (Next::WaitUntil(due), _) => {
                    let delay = Duration::from_millis(due.saturating_sub(mono_ms()));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = wake.notified() => {}
                        _ = stop.cancelled() => {}
                    }
                }
                (next, _) => {
                    let notified = wake.notified();
                    if next == Next::WaitForCommit {
                        self.deliveries.store().hurry();
                    }
                    tokio::select! {
                        _ = notified => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        }
    }

    /// What to start now as far as the subscription's pause allows (SPEC §6c): anything due while
    /// active; while paused for failing, one probe per `probe_interval` once nothing is in flight.
    fn next_start(&self, subscription: &Subscription, now: u64) -> Next {
        let scheduler = self.deliveries.scheduler();
        let name = &subscription.name;
        match self.deliveries.gate(name) {
            Gate::Open => scheduler.next(name, subscription.delivery.concurrency, subscription.ordered, now),
            Gate::Closed => Next::Wait,
            Gate::Probe(at) if at > now => Next::WaitUntil(at),
            Gate::Probe(_) if scheduler.in_flight(name) > 0 => Next::Wait,
            Gate::Probe(_) => {
                let next = scheduler.next(name, 1, subscription.ordered, now);
                if let Next::Start(id) = next {
                    debug!(subscription = %name, delivery_id = %id, "Probing a paused subscription.");
                    self.deliveries.probe_started(name, subscription.delivery.probe_interval);
                }
                next
            }
        }
    }

    /// Runs one attempt and records it. At shutdown an attempt still running after the grace period is
    /// dropped unrecorded: the delivery is still pending on disk and is attempted again after the restart.
    async fn attempt(self: Arc<Self>, subscription: Arc<Subscription>, id: DeliveryId) {
        let result = tokio::select! {
            result = self.attempt_and_record(&subscription, id) => result,
            _ = self.shutdown.abandon.cancelled() => {
                info!(subscription = %subscription.name, delivery_id = %id, "Attempt abandoned at shutdown; it is retried after restart.");
                return;
            }
        };
        if let Err(error) = result {
            error!(subscription = %subscription.name, delivery_id = %id, %error, "Cannot record a delivery attempt; trying again later.");
            self.deliveries.retry_later(&subscription.name, id, now_ms() + STORE_TROUBLE_RETRY.as_millis() as u64);
        }
    }

    async fn attempt_and_record(&self, subscription: &Arc<Subscription>, id: DeliveryId) -> Result<(), StoreError> {
        let deliveries = &self.deliveries;
        let loaded = match deliveries.load(id).await? {
            Loading::Ready(loaded) => loaded,
            Loading::WaitingForKey(key) => {
                deliveries.wait_for_key(&subscription.name, id, key);
                debug!(subscription = %subscription.name, delivery_id = %id, %key, "Delivery waits for its store key.");
                return Ok(());
            }
            Loading::Nothing => {
                if deliveries.skip_attempt(&subscription.name, id).await? {
                    error!(
                        subscription = %subscription.name, delivery_id = %id,
                        "Delivery failed: its event record is missing or damaged."
                    );
                }
                return Ok(());
            }
        };
        let Loaded { delivery, event } = *loaded;
        let source = deliveries.config().relay.source.clone();
        let body = request::body(subscription, source.as_deref(), &event);
        let n = delivery.attempts + 1;
        let started_at = now_ms();
        let headers = request::headers(subscription, &delivery, n, (started_at / 1000) as i64, &body);
        let client = self.clients.client(subscription);
        let outcome = match client {
            Ok(client) => client.post(&subscription.url, headers, body, subscription.delivery.timeout).await,
            Err(error) => Outcome { error: Some(format!("cannot set up TLS: {error}")), ..Outcome::default() },
        };
        let attempt = AttemptRecord {
            n,
            started_at,
            duration_ms: outcome.duration.as_millis() as u64,
            status_code: outcome.status.map(|s| s.as_u16()),
            error: outcome.error.clone(),
            response_body: outcome.response_body.clone(),
            sealed_response_body: None,
        };
        // The slot is free from here on, while the result is committed: after a crash only attempts that
        // were in flight (started, or answered but not yet on disk) are made again, at most
        // `2 × concurrency` per subscription (see `crate::scheduler`).
        let recorded = deliveries.record_attempt(subscription, id, attempt.clone(), outcome.retry_after).await?;
        if let Some(Attempted { delivery, retry_at, gave_up }) = recorded {
            log_attempt(&self.failures, &delivery, &attempt, retry_at, gave_up);
        }
        Ok(())
    }
}

/// Message of a failed attempt that will be retried.
pub const WILL_RETRY: &str = "Delivery attempt failed; will retry.";
/// Message of a delivery's last failed attempt.
pub const GAVE_UP: &str = "Delivery failed after its last attempt; requeue it with `hookrelay retry`.";
/// Message of a delivery failed at once by an answer `give_up_on` lists.
pub const GAVE_UP_ON: &str =
    "Delivery failed: the receiver's answer is listed in give_up_on, so it is not retried; requeue it with `hookrelay retry`.";

/// One line per attempt: success at INFO; failures through the [`FailureLog`], so that a failing
/// subscription logs its first failure at WARN (ERROR when the delivery is failed), then a summary per
/// minute, and every other failure at DEBUG.
fn log_attempt(
    failures: &FailureLog,
    delivery: &DeliveryRecord,
    attempt: &AttemptRecord,
    retry_at: Option<u64>,
    gave_up: bool,
) {
    let status = attempt.status_code;
    let error = attempt.error.as_deref().unwrap_or("");
    let (event_id, delivery_id, subscription) = (&delivery.event_id, delivery.id, &delivery.subscription);
    let next_attempt_in_ms = retry_at.map(|at| at.saturating_sub(now_ms()));
    macro_rules! failed {
        ($level:ident) => {
            match retry_at {
                Some(_) => $level!(
                    %event_id, %delivery_id, %subscription, attempt = attempt.n, status, error,
                    duration_ms = attempt.duration_ms, next_attempt_in_ms, "{}", WILL_RETRY
                ),
                None => $level!(
                    %event_id, %delivery_id, %subscription, attempt = attempt.n, status, error,
                    duration_ms = attempt.duration_ms, "{}", GAVE_UP
                ),
            }
        };
    }
    match delivery.status {
        DeliveryStatus::Delivered => {
            if let Some(failed_attempts) = failures.succeeded(subscription, Instant::now()) {
                info!(%subscription, failed_attempts, "Subscription recovered: an attempt succeeded again.");
            }
            info!(
                %event_id, %delivery_id, %subscription, attempt = attempt.n, status, duration_ms = attempt.duration_ms,
                "Delivery succeeded."
            )
        }
        // Erased while the attempt was out.
        DeliveryStatus::Cancelled => debug!(%delivery_id, %subscription, "Attempt of a cancelled delivery recorded."),
        DeliveryStatus::Failed if gave_up => {
            // Loud once per streak, like every other failure: a receiver that refuses every event costs a
            // few lines, not one per delivery.
            let given_up = |level: tracing::Level| match level {
                tracing::Level::WARN => {
                    warn!(%event_id, %delivery_id, %subscription, attempt = attempt.n, status, error, "{}", GAVE_UP_ON)
                }
                _ => {
                    debug!(%event_id, %delivery_id, %subscription, attempt = attempt.n, status, error, "{}", GAVE_UP_ON)
                }
            };
            match failures.failed(subscription, error, true, Instant::now()) {
                Loudness::First => given_up(tracing::Level::WARN),
                Loudness::Quiet => given_up(tracing::Level::DEBUG),
                Loudness::Summary(streak) => {
                    given_up(tracing::Level::DEBUG);
                    warn!(
                        %subscription, failed_attempts = streak.failed_attempts,
                        failed_deliveries = streak.failed_deliveries, last_error = %streak.last_error,
                        "Subscription still failing (failed attempts since the last summary; the rest at DEBUG)."
                    )
                }
            }
        }
        DeliveryStatus::Pending | DeliveryStatus::Failed => {
            match failures.failed(subscription, error, retry_at.is_none(), Instant::now()) {
                Loudness::First if retry_at.is_some() => failed!(warn),
                Loudness::First => failed!(error),
                Loudness::Quiet => failed!(debug),
                Loudness::Summary(streak) => {
                    failed!(debug);
                    warn!(
                        %subscription, failed_attempts = streak.failed_attempts,
                        failed_deliveries = streak.failed_deliveries, last_error = %streak.last_error,
                        "Subscription still failing (failed attempts since the last summary; the rest at DEBUG)."
                    )
                }
            }
        }
    }
}
