//! Prometheus metrics (`GET /metrics`, SPEC §4). Counters and histograms are updated where things happen;
//! the per-subscription gauges are computed from the scheduler when scraped, so they cannot drift.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptOutcome {
    subscription: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionStatus {
    subscription: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabel {
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

/// One subscription's unfinished work, as the scheduler sees it.
pub struct Backlog {
    pub subscription: String,
    pub enabled: bool,
    /// Queued and in flight.
    pub unfinished: usize,
    /// Creation time (Unix ms) of the oldest unfinished delivery.
    pub oldest_ms: Option<u64>,
    /// Paused (SPEC §6c), as the lifecycle owner says.
    pub paused: bool,
}

pub struct Metrics {
    registry: Registry,
    events_accepted: Counter,
    events_rejected: Family<Reason, Counter>,
    attempts: Family<AttemptOutcome, Counter>,
    attempt_duration: Histogram,
    deliveries: Family<SubscriptionStatus, Gauge>,
    oldest_pending_age: Family<SubscriptionLabel, Gauge<f64, AtomicU64>>,
    reloads: Family<Outcome, Counter>,
    flush_duration: Histogram,
    corrupt_records: Counter,
    waiting_for_key: Gauge,
    /// Paused subscriptions (SPEC §6c), from [`Backlog::paused`]; every configured subscription has a series.
    subscription_paused: Family<SubscriptionLabel, Gauge>,
    /// Failed deliveries per subscription: counted at start, then kept up to date as deliveries fail, are
    /// requeued or purged.
    failed: Mutex<HashMap<String, i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookrelay");
        let metrics = Metrics {
            events_accepted: Counter::default(),
            events_rejected: Family::default(),
            attempts: Family::default(),
            // 5 ms .. ~82 s
            attempt_duration: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            deliveries: Family::default(),
            oldest_pending_age: Family::default(),
            reloads: Family::default(),
            // 0.1 ms .. ~1.6 s
            flush_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            corrupt_records: Counter::default(),
            waiting_for_key: Gauge::default(),
            subscription_paused: Family::default(),
            failed: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register("events_accepted", "Events stored and answered 202", metrics.events_accepted.clone());
        registry.register("events_rejected", "Ingest requests refused, by reason", metrics.events_rejected.clone());
        registry.register(
            "delivery_attempts",
            "Delivery attempts by subscription and outcome (2xx, 3xx, 4xx, 5xx, error)",
            metrics.attempts.clone(),
        );
        registry.register(
            "delivery_attempt_duration_seconds",
            "Duration of delivery attempts",
            metrics.attempt_duration.clone(),
        );
        registry.register(
            "deliveries",
            "Unfinished (pending, held) and failed deliveries per subscription",
            metrics.deliveries.clone(),
        );
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest unfinished delivery per subscription",
            metrics.oldest_pending_age.clone(),
        );
        registry.register("config_reloads", "Config reloads by outcome (applied, rejected)", metrics.reloads.clone());
        registry.register(
            "store_flush_duration_seconds",
            "Duration of group commits (flush and fdatasync)",
            metrics.flush_duration.clone(),
        );
        registry.register(
            "store_corrupt_records",
            "Damaged store records quarantined since start (GET /v1/quarantine lists them)",
            metrics.corrupt_records.clone(),
        );
        registry.register(
            "deliveries_waiting_for_key",
            "Pending deliveries whose event is sealed with a key that encryption_key no longer lists",
            metrics.waiting_for_key.clone(),
        );
        registry.register(
            "subscription_paused",
            "1 while a subscription is paused (its receiver kept failing, answered 410, or hookrelay pause)",
            metrics.subscription_paused.clone(),
        );
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    pub fn accepted(&self, events: usize) {
        self.events_accepted.inc_by(events as u64);
    }

    pub fn rejected(&self, reason: &str) {
        self.events_rejected.get_or_create(&Reason { reason: reason.to_owned() }).inc();
    }

    /// One attempt: `status` is the HTTP status, `None` when no answer came.
    pub fn attempt(&self, subscription: &str, status: Option<u16>, duration: Duration) {
        let outcome = match status {
            Some(code) => format!("{}xx", code / 100),
            None => "error".to_owned(),
        };
        self.attempts.get_or_create(&AttemptOutcome { subscription: subscription.to_owned(), outcome }).inc();
        self.attempt_duration.observe(duration.as_secs_f64());
    }

    pub fn reload(&self, outcome: &str) {
        self.reloads.get_or_create(&Outcome { outcome: outcome.to_owned() }).inc();
    }

    pub fn waiting_for_key(&self, deliveries: usize) {
        self.waiting_for_key.set(deliveries as i64);
    }

    pub fn flush(&self, duration: Duration) {
        self.flush_duration.observe(duration.as_secs_f64());
    }

    /// Adds `change` to a subscription's failed deliveries.
    pub fn failed(&self, subscription: &str, change: i64) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()).entry(subscription.to_owned()).or_default() += change;
    }

    /// The text exposition, with the gauges set from `backlogs` first and the quarantine counter brought
    /// up to `corrupt_records` (the store counts them).
    pub fn render(&self, backlogs: &[Backlog], corrupt_records: u64, now_ms: u64) -> String {
        self.corrupt_records.inc_by(corrupt_records.saturating_sub(self.corrupt_records.get()));
        self.deliveries.clear();
        self.oldest_pending_age.clear();
        for backlog in backlogs {
            let status = if backlog.enabled { "pending" } else { "held" };
            let labels = SubscriptionStatus { subscription: backlog.subscription.clone(), status: status.into() };
            self.deliveries.get_or_create(&labels).set(backlog.unfinished as i64);
            let age = backlog.oldest_ms.map_or(0.0, |oldest| now_ms.saturating_sub(oldest) as f64 / 1000.0);
            self.oldest_pending_age
                .get_or_create(&SubscriptionLabel { subscription: backlog.subscription.clone() })
                .set(age);
        }
        self.subscription_paused.clear();
        for backlog in backlogs {
            let labels = SubscriptionLabel { subscription: backlog.subscription.clone() };
            self.subscription_paused.get_or_create(&labels).set(i64::from(backlog.paused));
        }
        for (subscription, failed) in self.failed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let labels = SubscriptionStatus { subscription: subscription.clone(), status: "failed".into() };
            self.deliveries.get_or_create(&labels).set(*failed);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}
