//! A model test of the lifecycle owner (SPEC §7 "no duplicate without a crash", "no transition lost"):
//! random sequences (each step awaited; `tests/storm.rs` runs transitions at once) of create (through the real acceptor), attempt start and end (success or
//! failure), reloads that remove, re-add or disable a subscription, the end of a removal grace period,
//! requeue, resend, erase, purge and restart, against the real store in a temp dir and the real
//! scheduler. After every step, once every transition has completed, it checks:
//! - no delivery is in flight twice, and the scheduler holds each delivery at most once;
//! - every pending delivery on disk is queued or in flight; nothing else is held, except an attempt in
//!   flight whose delivery was cancelled meanwhile (erase);
//! - a delivery reported requeued or resent is pending on disk (so it was not purged);
//! - the backlog count equals the pending deliveries on disk, and the failed gauge equals the failed
//!   deliveries on disk, per subscription;
//! - the status index holds exactly the failed and cancelled deliveries on disk;
//! - each delivery's attempts read back numbered 1 to its count, once each (those under keys of their own
//!   and the one its record carries), and none of an erased event's deliveries keeps a response body;
//! - the scheduler's order-key bookkeeping matches its definition (subscription `a` orders by `/k`): only a
//!   key's oldest unfinished delivery may start, never while another of the key is in flight.
//!
//! `HOOKRELAY_MODEL_CASES` runs more cases (default 48).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hookrelay::config::Config;
use hookrelay::delivery::client::RESPONSE_BODY_LIMIT;
use hookrelay::event::parse_submission;
use hookrelay::ingest::Acceptor;
use hookrelay::lifecycle::{Deliveries, Loading};
use hookrelay::metrics::{Exposition, Metrics};
use hookrelay::scheduler::Next;
use hookrelay::store::{AttemptRecord, DeliveryId, DeliveryRecord, DeliveryStatus, Keyring, Store, StoreKey};
use proptest::prelude::*;

const SUBSCRIPTIONS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Active,
    Disabled,
    Removed,
}

#[derive(Debug, Clone)]
enum Op {
    Create { with_id: Option<u8> },
    Start { sub: usize },
    Finish { pick: usize, success: bool },
    Reload { sub: usize, to: Presence },
    GraceEnds { sub: usize },
    Requeue { pick: usize },
    RequeueAllFailed,
    Resend { pick: usize },
    Erase { pick: usize },
    Purge,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let presence = prop_oneof![Just(Presence::Active), Just(Presence::Disabled), Just(Presence::Removed)];
    prop_oneof![
        4 => proptest::option::of(0u8..6).prop_map(|with_id| Op::Create { with_id }),
        5 => (0..2usize).prop_map(|sub| Op::Start { sub }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, success)| Op::Finish { pick, success }),
        2 => (0..2usize, presence).prop_map(|(sub, to)| Op::Reload { sub, to }),
        1 => (0..2usize).prop_map(|sub| Op::GraceEnds { sub }),
        2 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
        1 => Just(Op::RequeueAllFailed),
        1 => any::<usize>().prop_map(|pick| Op::Resend { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Erase { pick }),
        1 => Just(Op::Purge),
        1 => Just(Op::Restart),
    ]
}

/// The relay's state parts under test, as `relay::run` wires them.
struct Relay {
    deliveries: Arc<Deliveries>,
    acceptor: Acceptor,
    metrics: Arc<Metrics>,
}

impl Relay {
    async fn open(dir: &Path, config: &Arc<ArcSwap<Config>>) -> Relay {
        // The previous relay's store is released once its commit thread has wound down.
        let store = loop {
            // Payloads sealed, as a production relay should run: every record read is opened again.
            let keyring = Keyring::new(vec![StoreKey::new(&[7; 32])]);
            match Store::open(&dir.join("state"), None, keyring) {
                Ok(store) => break store,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        let metrics = Arc::new(Metrics::default());
        // Grace periods end only when the model says so (`GraceEnds`).
        let deliveries = Deliveries::new(store, Arc::clone(config), Arc::clone(&metrics), Duration::from_secs(3600));
        deliveries.recover().await.unwrap();
        let acceptor = Acceptor::new(Arc::clone(config), Arc::clone(&deliveries));
        Relay { deliveries, acceptor, metrics }
    }
}

struct Model {
    dir: tempfile::TempDir,
    config: Arc<ArcSwap<Config>>,
    presence: [Presence; 2],
    relay: Option<Relay>,
    /// Attempts started and not yet finished: subscription, delivery, attempt number.
    in_flight: Vec<(String, DeliveryId, u32)>,
    /// Deliveries that must be pending now (requeued or resent, and neither attempted nor cancelled since).
    must_be_pending: Vec<(DeliveryId, String)>,
    /// Deliveries of erased events: none may keep a response body.
    erased: Vec<DeliveryId>,
    events: usize,
}

impl Model {
    async fn new() -> Model {
        let dir = tempfile::tempdir().unwrap();
        let presence = [Presence::Active; 2];
        write_config(dir.path(), &presence);
        let config = Arc::new(ArcSwap::from_pointee(Config::load(&dir.path().join("relay.toml")).unwrap()));
        let relay = Some(Relay::open(dir.path(), &config).await);
        let (in_flight, must_be_pending, erased) = (Vec::new(), Vec::new(), Vec::new());
        Model { dir, config, presence, relay, in_flight, must_be_pending, erased, events: 0 }
    }

    fn relay(&self) -> &Relay {
        self.relay.as_ref().unwrap()
    }

    fn deliveries(&self) -> &Arc<Deliveries> {
        &self.relay().deliveries
    }

    fn on_disk(&self) -> Vec<DeliveryRecord> {
        self.deliveries().store().deliveries().collect::<Result<_, _>>().unwrap()
    }

    fn pick<'a>(
        &self,
        records: &'a [DeliveryRecord],
        pick: usize,
        wanted: &[DeliveryStatus],
    ) -> Option<&'a DeliveryRecord> {
        let matching: Vec<_> = records.iter().filter(|d| wanted.contains(&d.status)).collect();
        (!matching.is_empty()).then(|| matching[pick % matching.len()])
    }

    async fn step(&mut self, op: &Op) {
        match *op {
            Op::Create { with_id } => {
                self.events += 1;
                let id = with_id.map_or(String::new(), |n| format!(r#""id":"k{n}","#));
                // `k` is subscription a's order key: two keys, so that order and parallelism both happen.
                let key = with_id.map_or(self.events % 2, |n| usize::from(n) % 2);
                let n = with_id.unwrap_or(0);
                let body = format!(r#"{{{id}"type":"lab.completed","data":{{"n":{n},"k":{key}}}}}"#);
                let answer = self.relay().acceptor.accept(parse_submission(body.as_bytes()).unwrap()).await;
                answer.unwrap_or_else(|refusal| panic!("{body}: {refusal}"));
            }
            Op::Start { sub } => {
                let name = SUBSCRIPTIONS[sub];
                if self.presence[sub] != Presence::Active {
                    return; // the worker of a removed or disabled subscription takes nothing
                }
                if let Next::Start(id) = self.deliveries().scheduler().next(name, 4, false, u64::MAX) {
                    assert!(!self.in_flight.iter().any(|(_, other, _)| *other == id), "{id} started twice");
                    // Loaded as the worker does, before the attempt goes out: an erase or a cancellation
                    // may come while it is out.
                    let deliveries = Arc::clone(self.deliveries());
                    let Loading::Ready(loaded) = deliveries.load(id).await.unwrap() else {
                        deliveries.skip_attempt(name, id).await.unwrap();
                        return;
                    };
                    self.in_flight.push((name.to_owned(), id, loaded.delivery.attempts + 1));
                }
            }
            Op::Finish { pick, success } => {
                if self.in_flight.is_empty() {
                    return;
                }
                let (name, id, n) = self.in_flight.remove(pick % self.in_flight.len());
                self.must_be_pending.retain(|(other, _)| *other != id);
                let deliveries = Arc::clone(self.deliveries());
                let attempt = AttemptRecord {
                    n,
                    started_at: 0,
                    duration_ms: 1,
                    status_code: Some(if success { 200 } else { 503 }),
                    error: None,
                    // A failure answers with an error page as long as the relay keeps of an answer, far
                    // too long for the delivery record to carry.
                    response_body: Some(if success { "body".into() } else { "e".repeat(RESPONSE_BODY_LIMIT) }),
                    sealed_response_body: None,
                };
                // The subscription as its worker would hold it (it may have left the config since).
                let subscription = subscription_settings(&name);
                deliveries.record_attempt(&subscription, id, attempt, None).await.unwrap();
            }
            Op::Reload { sub, to } => {
                let was = self.presence;
                self.presence[sub] = to;
                write_config(self.dir.path(), &self.presence);
                self.config.store(Arc::new(Config::load(&self.dir.path().join("relay.toml")).unwrap()));
                let names = |wanted: fn(Presence, Presence) -> bool| -> Vec<String> {
                    (0..2).filter(|&i| wanted(was[i], self.presence[i])).map(|i| SUBSCRIPTIONS[i].to_owned()).collect()
                };
                let added = names(|was, now| was == Presence::Removed && now != Presence::Removed);
                let removed = names(|was, now| was != Presence::Removed && now == Presence::Removed);
                self.deliveries().config_changed(&added, &removed);
            }
            Op::GraceEnds { sub } => {
                let name = SUBSCRIPTIONS[sub];
                self.deliveries().cancel_removed(name).await;
                if self.presence[sub] == Presence::Removed {
                    self.must_be_pending.retain(|(_, of)| of != name);
                }
            }
            Op::Requeue { pick } => {
                let records = self.on_disk();
                let wanted = [DeliveryStatus::Failed, DeliveryStatus::Cancelled, DeliveryStatus::Delivered];
                let Some(chosen) = self.pick(&records, pick, &wanted) else { return };
                let (id, of) = (chosen.id, chosen.subscription.clone());
                let result = self.deliveries().requeue(vec![id]).await.unwrap().remove(0);
                if result.is_ok() {
                    self.must_be_pending.push((id, of));
                }
            }
            Op::RequeueAllFailed => {
                let failed: Vec<_> = self
                    .on_disk()
                    .into_iter()
                    .filter(|d| d.status == DeliveryStatus::Failed)
                    .map(|d| (d.id, d.subscription))
                    .collect();
                let results = self.deliveries().requeue(failed.iter().map(|(id, _)| *id).collect()).await.unwrap();
                self.must_be_pending.extend(failed.into_iter().zip(results).filter(|(_, r)| r.is_ok()).map(|(d, _)| d));
            }
            Op::Resend { pick } => {
                let records = self.on_disk();
                let Some(chosen) = self.pick(&records, pick, &[DeliveryStatus::Delivered, DeliveryStatus::Failed])
                else {
                    return;
                };
                if let Ok(fresh) = self.deliveries().resend(chosen.id).await.unwrap() {
                    self.must_be_pending.push((fresh, chosen.subscription.clone()));
                }
            }
            Op::Erase { pick } => {
                let records = self.on_disk();
                let Some(chosen) = self.pick(&records, pick, &[DeliveryStatus::Pending, DeliveryStatus::Delivered])
                else {
                    return;
                };
                let event_id = chosen.event_id.clone();
                assert!(self.deliveries().erase(&event_id).await.unwrap().is_some());
                let cancelled: Vec<_> =
                    self.on_disk().iter().filter(|d| d.event_id == event_id).map(|d| d.id).collect();
                self.must_be_pending.retain(|(id, _)| !cancelled.contains(id));
                self.erased.extend(cancelled);
            }
            Op::Purge => {
                // Everything finished counts as past retention.
                self.deliveries().purge(u64::MAX).await.unwrap();
            }
            Op::Restart => {
                // A crash or shutdown: attempts in flight are abandoned unrecorded.
                self.in_flight.clear();
                self.relay = None;
                self.relay = Some(Relay::open(self.dir.path(), &self.config).await);
            }
        }
    }

    async fn check(&self, after: &Op) {
        self.deliveries().store().commit().await.unwrap();
        let records = self.on_disk();
        let scheduler = self.deliveries().scheduler();
        let mut pending = 0;
        let mut failed: HashMap<&str, i64> = HashMap::new();
        for delivery in &records {
            let held = scheduler.holds(&delivery.subscription, delivery.id);
            let flying = self.in_flight.iter().any(|(_, id, _)| *id == delivery.id);
            match delivery.status {
                DeliveryStatus::Pending => {
                    pending += 1;
                    assert_eq!(held, 1, "after {after:?}: pending {} is held {held} times", delivery.id);
                }
                _ => assert_eq!(
                    held,
                    usize::from(flying),
                    "after {after:?}: {:?} {} held {held}",
                    delivery.status,
                    delivery.id
                ),
            }
            if delivery.status == DeliveryStatus::Failed {
                *failed.entry(&delivery.subscription).or_default() += 1;
            }
            let mut damaged = Vec::new();
            let attempts = self.deliveries().store().attempts(delivery, &mut damaged).unwrap();
            assert!(damaged.is_empty(), "after {after:?}: damaged attempts {damaged:?}");
            let numbers: Vec<u32> = attempts.iter().map(|attempt| attempt.n).collect();
            let made: Vec<u32> = (1..=delivery.attempts).collect();
            assert_eq!(numbers, made, "after {after:?}: the attempts of {} read back", delivery.id);
            if self.erased.contains(&delivery.id) {
                let kept: Vec<_> = attempts
                    .iter()
                    .filter(|attempt| attempt.response_body.is_some() || attempt.sealed_response_body.is_some())
                    .collect();
                assert!(kept.is_empty(), "after {after:?}: erased {} keeps answers {kept:?}", delivery.id);
            }
        }
        if let Err(problem) = scheduler.check_order_keys() {
            panic!("after {after:?}: order keys: {problem}");
        }
        let held: usize = scheduler.unfinished().iter().map(|(_, n, _)| n).sum();
        let flying_finished = self
            .in_flight
            .iter()
            .filter(|(_, id, _)| records.iter().any(|d| d.id == *id && d.status != DeliveryStatus::Pending))
            .count();
        assert_eq!(held, pending + flying_finished, "after {after:?}: the scheduler holds deliveries not on disk");
        assert_eq!(self.deliveries().unfinished(), pending as u64, "after {after:?}: backlog count");
        for (id, _) in &self.must_be_pending {
            let record = records.iter().find(|d| d.id == *id);
            assert_eq!(
                record.map(|d| d.status),
                Some(DeliveryStatus::Pending),
                "after {after:?}: {id} requeued or resent"
            );
        }
        let mut indexed = self.deliveries().store().status_index_entries().unwrap();
        indexed.sort_by_key(|&(_, id)| id);
        let expected: Vec<_> = records
            .iter()
            .filter(|d| matches!(d.status, DeliveryStatus::Failed | DeliveryStatus::Cancelled))
            .map(|d| (d.status, d.id))
            .collect();
        assert_eq!(indexed, expected, "after {after:?}: the status index differs from the statuses on disk");
        let metrics = self.relay().metrics.render(&[], 0, 0, Exposition::OpenMetrics);
        for name in SUBSCRIPTIONS {
            let line = format!("hookrelay_deliveries{{subscription=\"{name}\",status=\"failed\"}} ");
            let gauge = metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |n| n.parse::<i64>().unwrap());
            assert_eq!(gauge, failed.get(name).copied().unwrap_or(0), "after {after:?}: failed gauge of {name}");
        }
    }
}

/// A subscription's settings: two attempts, the retry due at once, never paused (the model's schedule).
fn subscription_settings(name: &str) -> Arc<hookrelay::config::Subscription> {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[Presence::Active; 2]);
    Config::load(&dir.path().join("relay.toml")).unwrap().subscription(name).cloned().unwrap()
}

fn write_config(dir: &Path, presence: &[Presence; 2]) {
    let mut text = String::from(
        "[relay]\nstate_dir = \"state\"\n[ingest]\nunix_socket = \"relay.sock\"\n\
         [delivery]\nretry = [\"0s\"]\njitter = 0.0\npause_after = 0\n",
    );
    for (name, presence) in SUBSCRIPTIONS.iter().zip(presence) {
        if *presence == Presence::Removed {
            continue;
        }
        let enabled = *presence == Presence::Active;
        let order_key = if *name == "a" { "order_key = \"/k\"\n" } else { "" };
        text.push_str(&format!(
            "[[subscription]]\nname = \"{name}\"\nurl = \"https://127.0.0.1:9/\"\nevents = [\"*\"]\n\
             signature = \"none\"\nenabled = {enabled}\n{order_key}"
        ));
    }
    std::fs::write(dir.join("relay.toml"), text).unwrap();
}

fn cases() -> u32 {
    std::env::var("HOOKRELAY_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_invariants_hold_under_any_interleaving(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut model = Model::new().await;
            for op in &ops {
                model.step(op).await;
                model.check(op).await;
            }
        });
    }
}
