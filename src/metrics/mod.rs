//! Prometheus metrics (`GET /metrics`, SPEC §4). Counters and histograms are updated where things happen;
//! the per-subscription gauges are computed from the scheduler when scraped, so they cannot drift.
//!
//! Every series exists from start, at zero: a labelled series that appears only with its first increment
//! makes `rate()` miss that increment and `absent()` alerts fire on a healthy relay. So the label sets of
//! every configured subscription (at start and for subscriptions a reload adds) and of every rejection
//! reason are created up front; [`Exposition`] says which text format a scrape gets.

mod exposition;

pub use exposition::Exposition;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: String,
    commit: String,
}

/// The `outcome` of an attempt with an answer: its status class.
const ANSWERED_OUTCOMES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// The `outcome` of an attempt that got no answer (timeout, refused connection, TLS failure).
const NO_ANSWER: &str = "error";

/// The `outcome`s of `config_reloads`.
const RELOAD_APPLIED: &str = "applied";
const RELOAD_REJECTED: &str = "rejected";

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
    /// Accepted events that matched no subscription: stored, answered 202, and delivered nowhere.
    events_unrouted: Counter,
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
    /// Always 1, labelled with the version and commit, so that dashboards can tell which build runs.
    build_info: Family<Build, Gauge>,
    /// Failed deliveries per subscription: counted at start, then kept up to date as deliveries fail, are
    /// requeued or purged.
    failed: Mutex<HashMap<String, i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookrelay");
        let metrics = Metrics {
            events_accepted: Counter::default(),
            events_unrouted: Counter::default(),
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
            build_info: Family::default(),
            failed: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register("events_accepted", "Events stored and answered 202", metrics.events_accepted.clone());
        registry.register(
            "events_unrouted",
            "Accepted events that matched no subscription (stored, delivered nowhere)",
            metrics.events_unrouted.clone(),
        );
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
        registry.register(
            "build_info",
            "Always 1; the labels name the running build's version and commit",
            metrics.build_info.clone(),
        );
        let build = Build { version: crate::VERSION.to_owned(), commit: crate::COMMIT.to_owned() };
        metrics.build_info.get_or_create_owned(&build).set(1);
        for outcome in [RELOAD_APPLIED, RELOAD_REJECTED] {
            metrics.reloads.get_or_create_owned(&Outcome { outcome: outcome.to_owned() });
        }
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// Creates, at zero, the series of `subscriptions` (every attempt outcome): at start for the configured
    /// ones, after a reload for those it added. The gauges get theirs at every scrape.
    pub fn prepare_subscriptions(&self, subscriptions: &[String]) {
        for subscription in subscriptions {
            for outcome in ANSWERED_OUTCOMES.into_iter().chain([NO_ANSWER]) {
                let labels = AttemptOutcome { subscription: subscription.clone(), outcome: outcome.to_owned() };
                self.attempts.get_or_create_owned(&labels);
            }
        }
    }

    /// Creates, at zero, the `events_rejected` series of every reason ingest can refuse a request for.
    pub fn prepare_rejection_reasons(&self, reasons: &[&str]) {
        for reason in reasons {
            self.events_rejected.get_or_create_owned(&Reason { reason: (*reason).to_owned() });
        }
    }

    pub fn accepted(&self, events: usize) {
        self.events_accepted.inc_by(events as u64);
    }

    /// `events` accepted events that matched no subscription.
    pub fn unrouted(&self, events: usize) {
        self.events_unrouted.inc_by(events as u64);
    }

    pub fn rejected(&self, reason: &str) {
        self.events_rejected.get_or_create(&Reason { reason: reason.to_owned() }).inc();
    }

    /// One attempt: `status` is the HTTP status, `None` when no answer came.
    pub fn attempt(&self, subscription: &str, status: Option<u16>, duration: Duration) {
        let outcome = match status {
            Some(code) => format!("{}xx", code / 100),
            None => NO_ANSWER.to_owned(),
        };
        self.attempts.get_or_create(&AttemptOutcome { subscription: subscription.to_owned(), outcome }).inc();
        self.attempt_duration.observe(duration.as_secs_f64());
    }

    /// A valid config file was swapped in.
    pub fn reload_applied(&self) {
        self.reloads.get_or_create(&Outcome { outcome: RELOAD_APPLIED.to_owned() }).inc();
    }

    /// A config file was invalid; the running config stays.
    pub fn reload_rejected(&self) {
        self.reloads.get_or_create(&Outcome { outcome: RELOAD_REJECTED.to_owned() }).inc();
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

    /// The exposition in `format`, with the gauges set from `backlogs` first and the quarantine counter
    /// brought up to `corrupt_records` (the store counts them). Every configured subscription (one
    /// [`Backlog`] each) has its `pending`, `held` and `failed` series, zero or not.
    pub fn render(&self, backlogs: &[Backlog], corrupt_records: u64, now_ms: u64, format: Exposition) -> String {
        self.corrupt_records.inc_by(corrupt_records.saturating_sub(self.corrupt_records.get()));
        self.deliveries.clear();
        self.oldest_pending_age.clear();
        self.subscription_paused.clear();
        let deliveries = |subscription: &str, status: &str, count: i64| {
            let labels = SubscriptionStatus { subscription: subscription.to_owned(), status: status.to_owned() };
            self.deliveries.get_or_create(&labels).set(count);
        };
        for backlog in backlogs {
            let unfinished = backlog.unfinished as i64;
            let (pending, held) = if backlog.enabled { (unfinished, 0) } else { (0, unfinished) };
            deliveries(&backlog.subscription, "pending", pending);
            deliveries(&backlog.subscription, "held", held);
            deliveries(&backlog.subscription, "failed", 0);
            let age = backlog.oldest_ms.map_or(0.0, |oldest| now_ms.saturating_sub(oldest) as f64 / 1000.0);
            let labels = SubscriptionLabel { subscription: backlog.subscription.clone() };
            self.oldest_pending_age.get_or_create(&labels).set(age);
            self.subscription_paused.get_or_create(&labels).set(i64::from(backlog.paused));
        }
        // Removed subscriptions' failed deliveries are kept (requeueable), so their gauge stays too.
        for (subscription, failed) in self.failed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            deliveries(subscription, "failed", *failed);
        }
        format.encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(subscription: &str, enabled: bool, unfinished: usize) -> Backlog {
        Backlog { subscription: subscription.to_owned(), enabled, unfinished, oldest_ms: None, paused: false }
    }

    /// The sample lines of `exposition` (no comments), as `name{labels} value`.
    fn samples(exposition: &str) -> Vec<&str> {
        exposition.lines().filter(|line| !line.starts_with('#')).collect()
    }

    #[test]
    fn every_series_is_there_before_anything_happened() {
        let metrics = Metrics::default();
        metrics.prepare_subscriptions(&["vet".to_owned(), "lab".to_owned()]);
        metrics.prepare_rejection_reasons(&["invalid_event", "conflict"]);
        let backlogs = [backlog("vet", true, 0), backlog("lab", false, 2)];
        let classic = metrics.render(&backlogs, 0, 0, Exposition::Classic);
        let samples = samples(&classic);
        for subscription in ["vet", "lab"] {
            for outcome in ["2xx", "3xx", "4xx", "5xx", "error"] {
                let series = format!(
                    "hookrelay_delivery_attempts_total{{subscription=\"{subscription}\",outcome=\"{outcome}\"}} 0"
                );
                assert!(samples.contains(&series.as_str()), "{series} in\n{classic}");
            }
            for status in ["pending", "held", "failed"] {
                let series = format!("hookrelay_deliveries{{subscription=\"{subscription}\",status=\"{status}\"}} ");
                assert!(samples.iter().any(|line| line.starts_with(&series)), "{series} in\n{classic}");
            }
        }
        assert!(samples.contains(&"hookrelay_deliveries{subscription=\"lab\",status=\"held\"} 2"), "{classic}");
        assert!(samples.contains(&"hookrelay_deliveries{subscription=\"lab\",status=\"pending\"} 0"), "{classic}");
        for reason in ["invalid_event", "conflict"] {
            let series = format!("hookrelay_events_rejected_total{{reason=\"{reason}\"}} 0");
            assert!(samples.contains(&series.as_str()), "{series} in\n{classic}");
        }
        for outcome in ["applied", "rejected"] {
            let series = format!("hookrelay_config_reloads_total{{outcome=\"{outcome}\"}} 0");
            assert!(samples.contains(&series.as_str()), "{series} in\n{classic}");
        }
        assert!(samples.contains(&"hookrelay_events_unrouted_total 0"), "{classic}");
        let build = format!("hookrelay_build_info{{version=\"{}\",commit=\"{}\"}} 1", crate::VERSION, crate::COMMIT);
        assert!(samples.contains(&build.as_str()), "{build} in\n{classic}");
    }

    /// What `promtool check metrics` lints, for the families it looks at: every family has a HELP and a
    /// TYPE, a counter's name ends in `_total`, and only counters' do.
    #[test]
    fn the_classic_exposition_names_families_as_promtool_wants() {
        let metrics = Metrics::default();
        metrics.prepare_subscriptions(&["vet".to_owned()]);
        metrics.prepare_rejection_reasons(&["invalid_event"]);
        let classic = metrics.render(&[backlog("vet", true, 1)], 0, 0, Exposition::Classic);
        assert!(!classic.contains("# EOF"), "{classic}");
        let mut families = 0;
        for line in classic.lines().filter(|line| line.starts_with("# TYPE ")) {
            let mut words = line.split(' ').skip(2);
            let (name, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            assert!(classic.contains(&format!("# HELP {name} ")), "no HELP for {name}:\n{classic}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
            families += 1;
        }
        assert!(families >= 13, "{classic}");
    }

    #[test]
    fn removed_subscriptions_keep_their_failed_gauge() {
        let metrics = Metrics::default();
        metrics.failed("gone", 3);
        let openmetrics = metrics.render(&[backlog("vet", true, 0)], 0, 0, Exposition::OpenMetrics);
        let samples = samples(&openmetrics);
        assert!(samples.contains(&"hookrelay_deliveries{subscription=\"gone\",status=\"failed\"} 3"), "{openmetrics}");
        assert!(samples.contains(&"hookrelay_deliveries{subscription=\"vet\",status=\"failed\"} 0"), "{openmetrics}");
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    }
}
