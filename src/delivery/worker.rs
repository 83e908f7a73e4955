//! One worker per subscription starts attempts as the scheduler makes them due, within the
//! subscription's concurrency (or one at a time when `ordered`), and records what each attempt came to.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::backoff::next_delay;
use super::client::{ClientPool, Outcome};
use super::request;
use crate::backlog::Backlog;
use crate::clock::now_ms;
use crate::config::{Config, Subscription};
use crate::metrics::Metrics;
use crate::scheduler::{Next, Scheduler};
use crate::shutdown::Shutdown;
use crate::store::{AttemptRecord, DeliveryId, DeliveryRecord, DeliveryStatus, Store, StoreError};

/// When the store cannot be read or written, the delivery is looked at again after this long.
const STORE_TROUBLE_RETRY: Duration = Duration::from_secs(30);

/// Everything workers and attempts share.
pub struct Dispatcher {
    pub store: Store,
    pub scheduler: Arc<Scheduler>,
    pub config: Arc<ArcSwap<Config>>,
    pub backlog: Arc<Backlog>,
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
    clients: ClientPool,
    /// Workers and attempts, awaited at shutdown.
    pub tasks: TaskTracker,
    /// Subscriptions that have a worker. A worker outlives its subscription's removal (it just waits), so a
    /// subscription that comes back finds it again.
    workers: Mutex<HashSet<String>>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        scheduler: Arc<Scheduler>,
        config: Arc<ArcSwap<Config>>,
        backlog: Arc<Backlog>,
        shutdown: Shutdown,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            scheduler,
            config,
            backlog,
            shutdown,
            metrics,
            clients: ClientPool::default(),
            tasks: TaskTracker::new(),
            workers: Mutex::default(),
        }
    }

    /// Starts the worker of subscription `name` unless it has one; it runs until shutdown. Its queue takes
    /// deliveries again if a reload had closed it.
    pub fn ensure_worker(self: &Arc<Self>, name: &str) {
        self.scheduler.open(name);
        if !self.workers.lock().unwrap().insert(name.to_owned()) {
            return;
        }
        let (dispatcher, name) = (Arc::clone(self), name.to_owned());
        self.tasks.spawn(async move { dispatcher.work(name).await });
    }

    /// Marks every queued delivery of a removed subscription `cancelled` and closes its queue. Attempts in
    /// flight finish, and are cancelled then if they would be retried (see [`Dispatcher::attempt`]).
    pub fn cancel_queued(&self, name: &str) -> Result<usize, StoreError> {
        let mut cancelled = 0;
        for id in self.scheduler.drain(name) {
            cancelled += usize::from(self.cancel_pending(id)?);
        }
        Ok(cancelled)
    }

    /// Marks a delivery `cancelled` if it is still pending; says whether it was.
    fn cancel_pending(&self, id: DeliveryId) -> Result<bool, StoreError> {
        let Some(mut delivery) = self.store.delivery(id)? else { return Ok(false) };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(false);
        }
        delivery.cancel(now_ms());
        self.store.put_delivery(&delivery)?;
        self.backlog.release(1);
        Ok(true)
    }

    async fn work(self: Arc<Self>, name: String) {
        let wake = self.scheduler.wake_signal(&name);
        let stop = self.shutdown.stop.clone();
        while !stop.is_cancelled() {
            let config = self.config.load();
            let subscription = config.subscription(&name).filter(|s| s.enabled).cloned();
            let next = match &subscription {
                Some(s) => self.scheduler.next(&name, s.delivery.concurrency, s.ordered, now_ms()),
                // Removed or disabled: hold everything until a config change wakes us.
                None => Next::Wait,
            };
            match (next, subscription) {
                (Next::Start(id), Some(subscription)) => {
                    let dispatcher = Arc::clone(&self);
                    self.tasks.spawn(async move { dispatcher.attempt(subscription, id).await });
                }
                (Next::WaitUntil(due), _) => {
                    let delay = Duration::from_millis(due.saturating_sub(now_ms()));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = wake.notified() => {}
                        _ = stop.cancelled() => {}
                    }
                }
                _ => {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Runs one attempt and hands the delivery back to the scheduler (or not, when it is finished). At
    /// shutdown an attempt still running after the grace period is dropped unrecorded: the delivery is
    /// still pending on disk and is attempted again after the restart.
    async fn attempt(self: Arc<Self>, subscription: Arc<Subscription>, id: DeliveryId) {
        let result = tokio::select! {
            result = self.attempt_and_record(&subscription, id) => result,
            _ = self.shutdown.abandon.cancelled() => {
                info!(subscription = %subscription.name, delivery_id = %id, "Attempt abandoned at shutdown; it is retried after restart.");
                return;
            }
        };
        let retry_at = result.unwrap_or_else(|error| {
            error!(subscription = %subscription.name, delivery_id = %id, %error, "Cannot record a delivery attempt; trying again later.");
            Some(now_ms() + STORE_TROUBLE_RETRY.as_millis() as u64)
        });
        if !self.scheduler.finished(&subscription.name, id, retry_at) {
            // A reload removed the subscription while this attempt was out, and drained its queue.
            match self.cancel_pending(id) {
                Ok(_) => info!(
                    subscription = %subscription.name, delivery_id = %id,
                    "Delivery cancelled: its subscription was removed."
                ),
                Err(error) => error!(
                    subscription = %subscription.name, delivery_id = %id, %error,
                    "Cannot cancel a removed subscription's delivery."
                ),
            }
        }
    }

    /// Returns when the delivery is due again, `None` once it is finished.
    async fn attempt_and_record(&self, subscription: &Subscription, id: DeliveryId) -> Result<Option<u64>, StoreError> {
        let Some(mut delivery) = self.store.delivery(id)? else {
            return Ok(None);
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(None);
        }
        let Some(event) = self.store.event(&delivery.event_id)? else {
            return Err(StoreError::Corrupt {
                key: delivery.event_id.clone(),
                reason: "the delivery's event is missing".into(),
            });
        };
        let source = self.config.load().relay.source.clone();
        let body = request::body(subscription, source.as_deref(), &event);
        let n = delivery.attempts + 1;
        let started_at = now_ms();
        let headers = request::headers(subscription, &delivery, n, (started_at / 1000) as i64, &body);
        let outcome = match self.clients.client(&subscription.delivery.extra_roots) {
            Ok(client) => client.post(&subscription.url, headers, body, subscription.delivery.timeout).await,
            Err(error) => Outcome { error: Some(format!("cannot set up TLS: {error}")), ..Outcome::default() },
        };
        let retry_at = settle(&mut delivery, subscription, n, &outcome);
        let attempt = AttemptRecord {
            n,
            started_at,
            duration_ms: outcome.duration.as_millis() as u64,
            status_code: outcome.status.map(|s| s.as_u16()),
            error: outcome.error.clone(),
            response_body: outcome.response_body.clone(),
        };
        // Durable before the slot is freed: after a crash only attempts that were in flight (started, or
        // finished but not yet on disk) are made again, at most `concurrency` per subscription.
        self.store.submit_attempt(&delivery, &attempt)?.wait().await?;
        self.metrics.attempt(&subscription.name, attempt.status_code, outcome.duration);
        if delivery.status.is_finished() {
            self.backlog.release(1);
        }
        if delivery.status == DeliveryStatus::Failed {
            self.metrics.failed(&subscription.name, 1);
        }
        log_attempt(&delivery, &attempt, retry_at);
        Ok(retry_at)
    }
}

/// Applies an attempt's outcome to the delivery; returns when it is due again, if it is.
fn settle(delivery: &mut DeliveryRecord, subscription: &Subscription, n: u32, outcome: &Outcome) -> Option<u64> {
    let now = now_ms();
    delivery.attempts = n;
    delivery.updated_at = now;
    delivery.last_status_code = outcome.status.map(|s| s.as_u16());
    delivery.last_error = outcome.error.clone();
    delivery.next_attempt_at = None;
    if outcome.succeeded() {
        delivery.status = DeliveryStatus::Delivered;
        return None;
    }
    let settings = &subscription.delivery;
    let nth_of_schedule = n.saturating_sub(delivery.schedule_start);
    match next_delay(nth_of_schedule, &settings.retry, settings.jitter, outcome.retry_after, &mut rand::thread_rng()) {
        Some(delay) => {
            let at = now + delay.as_millis() as u64;
            delivery.next_attempt_at = Some(at);
            Some(at)
        }
        None => {
            delivery.status = DeliveryStatus::Failed;
            None
        }
    }
}

fn log_attempt(delivery: &DeliveryRecord, attempt: &AttemptRecord, retry_at: Option<u64>) {
    let status = attempt.status_code;
    let error = attempt.error.as_deref().unwrap_or("");
    let (event_id, delivery_id, subscription) = (&delivery.event_id, delivery.id, &delivery.subscription);
    match (delivery.status, retry_at) {
        (DeliveryStatus::Delivered, _) => info!(
            %event_id, %delivery_id, %subscription, attempt = attempt.n, status, duration_ms = attempt.duration_ms,
            "Delivery succeeded."
        ),
        (_, Some(at)) => warn!(
            %event_id, %delivery_id, %subscription, attempt = attempt.n, status, error, duration_ms = attempt.duration_ms,
            next_attempt_in_ms = at.saturating_sub(now_ms()),
            "Delivery attempt failed; will retry."
        ),
        _ => error!(
            %event_id, %delivery_id, %subscription, attempt = attempt.n, status, error, duration_ms = attempt.duration_ms,
            "Delivery failed after its last attempt; requeue it with `hookrelay retry`."
        ),
    }
}
