//! Flow control (SPEC §6c) through the real binary: a receiver that is down pauses its subscription
//! instead of using up every delivery's schedule, probes resume it, `410 Gone` pauses until `hookrelay
//! resume`, pauses survive restarts and reloads and end with the subscription, `give_up_on` fails at
//! once, `rate_limit` spaces attempt starts, and `order_key` keeps each key's deliveries in order.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::client::{send, Call};
use support::receiver::{always, Received, Receiver, Reply};
use support::relay::{cli, unsigned_subscription, RelayProcess, Setup, TestEnv};

const DELIVERED: &str = "Delivery succeeded.";
const PAUSED_FAILING: &str = hookrelay::lifecycle::PAUSED_FAILING;
const PAUSED_GONE: &str = hookrelay::lifecycle::PAUSED_GONE;
const RESUMED_BY_PROBE: &str = hookrelay::lifecycle::RESUMED_BY_PROBE;

/// A receiver that answers `down` (503 or 410) while the switch is on, 200 after.
async fn switchable(env: &TestEnv, down: u16) -> (Receiver, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(true));
    let switch = Arc::clone(&failing);
    let judge = Arc::new(move |_: &Received| Reply::status(if switch.load(Ordering::SeqCst) { down } else { 200 }));
    (Receiver::start_judging(&env.ca, judge).await, failing)
}

async fn post_events(relay: &RelayProcess, from: usize, count: usize) {
    let events: Vec<Value> = (from..from + count).map(|n| json!({"type": "lab.completed", "data": {"n": n}})).collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&events).unwrap()).await.status, 202);
}

async fn subscription_view(env: &TestEnv, name: &str) -> Value {
    let output = cli(env, &["subscriptions", "--json"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    document["subscriptions"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
}

fn paused_metric(metrics: &str, name: &str) -> Option<String> {
    let series = format!("hookrelay_subscription_paused{{subscription=\"{name}\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&series).map(str::to_owned))
}

async fn metrics(relay: &RelayProcess) -> String {
    String::from_utf8(send(&relay.unix, Call::get("/metrics")).await.body.to_vec()).unwrap()
}

/// Before: a receiver that was down used up every delivery's schedule (here two attempts each), and
/// every delivery ended `failed`. Now the subscription pauses after `pause_after` failures, probes, and
/// everything is delivered once the receiver is back, at a cost of a few attempts for the outage.
#[tokio::test]
async fn a_receiver_that_is_down_pauses_its_subscription_and_every_delivery_survives_the_outage() {
    const EVENTS: usize = 200;
    const PAUSE_AFTER: usize = 3;
    const CONCURRENCY: usize = 2;
    let env = TestEnv::new();
    let (receiver, failing) = switchable(&env, 503).await;
    let extra = format!(
        "retry = [\"10ms\"]\npause_after = {PAUSE_AFTER}\nprobe_interval = \"200ms\"\nconcurrency = {CONCURRENCY}"
    );
    let setup = Setup { subscriptions: unsigned_subscription("vet", &receiver.url("/"), &extra), ..Setup::default() };
    env.write_config(&setup);
    let relay = env.start().await;
    assert_eq!(paused_metric(&metrics(&relay).await, "vet").as_deref(), Some("0"));
    let outage = std::time::Instant::now();
    post_events(&relay, 0, EVENTS).await;
    let paused = relay.wait_for_log(PAUSED_FAILING, 1, |_| true).await;
    assert_eq!(paused["level"], "WARN");
    assert!(paused["last_error"].as_str().unwrap().contains("503"), "{paused}");
    let view = subscription_view(&env, "vet").await;
    assert_eq!((view["state"].as_str(), view["paused_reason"].as_str()), (Some("paused"), Some("failing")), "{view}");
    assert_eq!(paused_metric(&metrics(&relay).await, "vet").as_deref(), Some("1"));

    // Restarted while paused: still paused, still probing.
    relay.terminate();
    let mut relay = relay;
    assert!(relay.wait_exit().await.success());
    let relay = env.start().await;
    relay.wait_for_log(hookrelay::lifecycle::STILL_PAUSED, 1, |_| true).await;
    assert_eq!(subscription_view(&env, "vet").await["state"], "paused");
    // A few probes, one per interval, each failing.
    let seen = receiver.count();
    while receiver.count() < seen + 3 {
        receiver.next().await;
    }
    failing.store(false, Ordering::SeqCst);
    relay.wait_for_log(RESUMED_BY_PROBE, 1, |_| true).await;
    relay.wait_for_log(DELIVERED, EVENTS, |_| true).await;
    let down_for = outage.elapsed();
    assert_eq!(subscription_view(&env, "vet").await["state"], "active");
    assert_eq!(paused_metric(&metrics(&relay).await, "vet").as_deref(), Some("0"));
    let failed = relay.admin_get("/v1/deliveries?status=failed").await;
    assert_eq!(failed["deliveries"].as_array().unwrap().len(), 0, "none used up its schedule: {failed}");
    // The outage's cost: the attempts that paused it (and those in flight then), one probe per interval
    // (plus one at the restart), each run's in-flight attempts.
    let failed_attempts = receiver.count() - EVENTS;
    let probes = (down_for.as_millis() / 200) as usize + 2;
    let bound = PAUSE_AFTER + 2 * CONCURRENCY + probes;
    assert!(failed_attempts <= bound, "{failed_attempts} failed attempts for the outage, bound {bound}");
    assert!(failed_attempts >= PAUSE_AFTER, "{failed_attempts}");
}

/// A 410 pauses at once and until `hookrelay resume`: no probes, not even after a restart, and the
/// answered attempt does not count: after the resume the delivery still has both attempts of its
/// schedule (`retry = ["10ms"]`), so its 503 then is retried, not final.
#[tokio::test]
async fn gone_pauses_until_resumed_by_hand_and_costs_the_delivery_nothing() {
    let env = TestEnv::new();
    // 0: answer 410; 1: answer one 503, then 200 for good.
    let phase = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let judged = Arc::clone(&phase);
    let judge = Arc::new(move |_: &Received| match judged.load(Ordering::SeqCst) {
        0 => Reply::status(410),
        1 => {
            judged.store(2, Ordering::SeqCst);
            Reply::status(503)
        }
        _ => Reply::status(200),
    });
    let receiver = Receiver::start_judging(&env.ca, judge).await;
    let other = Receiver::start(&env.ca, always(200)).await;
    let subscriptions = unsigned_subscription("vet", &receiver.url("/"), "retry = [\"10ms\"]\nconcurrency = 1")
        .replace("[\"*\"]", "[\"lab.*\"]")
        + &unsigned_subscription("marker", &other.url("/"), "").replace("[\"*\"]", "[\"marker\"]");
    env.write_config(&Setup { subscriptions, ..Setup::default() });
    let relay = env.start().await;
    post_events(&relay, 0, 1).await;
    let paused = relay.wait_for_log(PAUSED_GONE, 1, |_| true).await;
    assert_eq!(paused["subscription"], "vet");
    let mut relay = relay;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let relay = env.start().await;
    relay.wait_for_log(hookrelay::lifecycle::STILL_PAUSED, 1, |_| true).await;
    // The marker's delivery is made after the relay is ready; a probe would have been made by then too.
    assert_eq!(relay.post_unix(r#"{"type": "marker", "data": {}}"#).await.status, 202);
    relay.wait_for_log(DELIVERED, 1, |line| line["subscription"] == "marker").await;
    assert_eq!(receiver.count(), 1, "one attempt, no probes");
    let view = subscription_view(&env, "vet").await;
    assert_eq!((view["state"].as_str(), view["paused_reason"].as_str()), (Some("paused"), Some("gone")), "{view}");
    assert_eq!(view["counts"]["pending"], 1, "{view}");

    phase.store(1, Ordering::SeqCst);
    let resumed = cli(&env, &["resume", "vet"]).await;
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(String::from_utf8_lossy(&resumed.stdout).trim(), "vet: active");
    relay.wait_for_log(hookrelay::lifecycle::RESUMED_BY_HAND, 1, |_| true).await;
    relay.wait_for_log(DELIVERED, 1, |line| line["subscription"] == "vet").await;
    let delivered = relay.admin_get("/v1/deliveries?subscription=vet&status=delivered").await;
    assert_eq!(delivered["deliveries"][0]["attempts"], 3, "410, then 503 (retried), then 200: {delivered}");
    assert_eq!(receiver.count(), 3);
}

#[tokio::test]
async fn a_pause_by_hand_survives_reloads_and_a_config_saved_in_two_writes_and_ends_with_the_subscription() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let marker = Receiver::start(&env.ca, always(200)).await;
    let with = |vet: bool, delivery: &str| Setup {
        subscriptions: if vet { unsigned_subscription("vet", &receiver.url("/"), "") } else { String::new() }
            + &unsigned_subscription("marker", &marker.url("/"), ""),
        delivery: delivery.to_owned(),
        ..Setup::default()
    };
    env.write_config(&with(true, ""));
    // A removed subscription's work waits an hour for it here (SPEC §7).
    let grace = [(hookrelay::relay::REMOVED_GRACE_VARIABLE, "1h")];
    let mut relay = env.start_with_env(&grace).await;
    let paused = cli(&env, &["pause", "vet"]).await;
    assert_eq!(String::from_utf8_lossy(&paused.stdout).trim(), "vet: paused (by_hand)");
    relay.wait_for_log(hookrelay::lifecycle::PAUSED_BY_HAND, 1, |_| true).await;
    // A reload of a changed file keeps the pause.
    env.save_by_rename(&with(true, "user_agent = \"clinic/2\""));
    relay.wait_for_log("Config reloaded.", 1, |_| true).await;
    post_events(&relay, 0, 1).await;
    relay.wait_for_log(DELIVERED, 1, |line| line["subscription"] == "marker").await;
    assert_eq!(receiver.count(), 0, "nothing is attempted while paused");
    assert_eq!(subscription_view(&env, "vet").await["counts"]["pending"], 1);
    let table = String::from_utf8(cli(&env, &["subscriptions"]).await.stdout).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..3], ["NAME", "STATE", "PENDING"], "{table}");
    let vet = rows.iter().find(|row| row[0] == "vet").unwrap();
    assert_eq!(vet[1..4], ["paused", "(by_hand)", "1"], "{table}");
    let marker_row = rows.iter().find(|row| row[0] == "marker").unwrap();
    assert_eq!(marker_row[1..5], ["active", "0", "0", "1"], "state, pending, held, delivered: {table}");
    let unknown = cli(&env, &["pause", "nosuch"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no subscription named `nosuch`"));

    // Saved in two writes: gone, then back within the grace period. Still paused, nothing attempted.
    env.save_by_rename(&with(false, ""));
    relay.wait_for_log("Config reloaded.", 2, |_| true).await;
    env.save_by_rename(&with(true, ""));
    relay.wait_for_log("Config reloaded.", 3, |_| true).await;
    assert_eq!(subscription_view(&env, "vet").await["paused_reason"], "by_hand");
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    assert_eq!(receiver.count(), 0);

    // Removed for longer than the grace period (0s here): its pause ends with its queued work; added back,
    // it is active, and a restart finds no pause of it.
    let relay = env.start().await;
    relay.wait_for_log(hookrelay::lifecycle::STILL_PAUSED, 1, |_| true).await;
    env.save_by_rename(&with(false, ""));
    relay.wait_for_log("Removed subscription's queued deliveries cancelled.", 1, |_| true).await;
    env.save_by_rename(&with(true, ""));
    relay.wait_for_log("Config reloaded.", 2, |_| true).await;
    assert_eq!(subscription_view(&env, "vet").await["state"], "active");
    post_events(&relay, 1, 1).await;
    relay.wait_for_log(DELIVERED, 1, |line| line["subscription"] == "vet").await;
    let mut relay = relay;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let restarted = env.start().await;
    assert_eq!(subscription_view(&env, "vet").await["state"], "active", "its pause record went with it");
    assert!(restarted.logs().iter().all(|line| line["message"] != hookrelay::lifecycle::STILL_PAUSED));
}

#[tokio::test]
async fn an_answer_listed_in_give_up_on_fails_the_delivery_at_that_attempt() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(422)).await;
    let extra = "retry = [\"10ms\", \"10ms\"]\ngive_up_on = [400, 422]";
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/"), extra),
        ..Setup::default()
    });
    let relay = env.start().await;
    post_events(&relay, 0, 1).await;
    let line = relay.wait_for_log(hookrelay::delivery::worker::GAVE_UP_ON, 1, |_| true).await;
    assert_eq!((line["status"].as_u64(), line["attempt"].as_u64()), (Some(422), Some(1)), "{line}");
    let failed = relay.admin_get("/v1/deliveries?status=failed").await;
    assert_eq!(failed["deliveries"][0]["attempts"], 1, "{failed}");
    assert_eq!(receiver.count(), 1);
    let checked = {
        env.write_config(&Setup {
            subscriptions: unsigned_subscription("vet", &receiver.url("/"), "give_up_on = [200, 410, 700]"),
            ..Setup::default()
        });
        cli(&env, &["check"]).await
    };
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(1));
    assert!(stdout.contains("not 200") && stdout.contains("cannot list 410") && stdout.contains("not 700"), "{stdout}");
}

/// Attempt starts, as the receiver saw them, never exceed the limit in any window of one period (plus
/// one), though eight could run at once. (A slow limit, so that the scheduling delays of a loaded machine
/// are small against the spacing.)
#[tokio::test]
async fn rate_limit_spaces_attempt_starts() {
    const EVENTS: usize = 12;
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let extra = "rate_limit = \"5/s\"\nconcurrency = 8";
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/"), extra),
        ..Setup::default()
    });
    let relay = env.start().await;
    post_events(&relay, 0, EVENTS).await;
    relay.wait_for_log(DELIVERED, EVENTS, |_| true).await;
    let mut arrivals = Vec::new();
    for _ in 0..EVENTS {
        arrivals.push(receiver.next().await.at);
    }
    for (i, start) in arrivals.iter().enumerate() {
        let within_a_second = arrivals[i..].iter().take_while(|at| at.duration_since(*start) < Duration::from_secs(1));
        assert!(within_a_second.count() <= 6, "more than 5 (+1) attempts started within one second");
    }
    let span = arrivals[EVENTS - 1].duration_since(arrivals[0]);
    assert!(span >= Duration::from_millis(200 * (EVENTS as u64 - 1) * 9 / 10), "paced over {span:?}");
    for bad in ["0/s", "5/h", "fast", "2000/s"] {
        env.write_config(&Setup {
            subscriptions: unsigned_subscription("vet", &receiver.url("/"), &format!("rate_limit = \"{bad}\"")),
            ..Setup::default()
        });
        let checked = cli(&env, &["check"]).await;
        assert_eq!(checked.status.code(), Some(1), "{bad}");
        assert!(String::from_utf8_lossy(&checked.stdout).contains("rate_limit"), "{bad}");
    }
}

/// The event number and patient of a request's body.
fn event_of(request: &Received) -> (u64, String) {
    let body = request.body_json();
    (body["data"]["n"].as_u64().unwrap(), body["data"]["patient"]["fp"].as_str().unwrap().to_owned())
}

/// Deliveries with the same key arrive strictly in acceptance order, across retries and a kill -9;
/// different keys go in parallel, and a key whose head waits for its retry holds back only that key.
#[tokio::test]
async fn order_key_keeps_each_keys_deliveries_in_acceptance_order() {
    const EVENTS: u64 = 40;
    let env = TestEnv::new();
    // Every third event fails its first attempt.
    let judge = Arc::new(|request: &Received| {
        let (n, _) = event_of(request);
        let first = request.header("x-hookrelay-attempt") == "1";
        Reply::status(if n % 3 == 0 && first { 503 } else { 200 }).after(Duration::from_millis(20))
    });
    let receiver = Receiver::start_judging(&env.ca, judge).await;
    let extra = "order_key = \"/patient/fp\"\nretry = [\"300ms\"]\nconcurrency = 4\npause_after = 0";
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/"), extra),
        ..Setup::default()
    });
    let relay = env.start().await;
    let patients = ["p-a", "p-b", "p-c", "p-d"];
    let events: Vec<Value> = (0..EVENTS)
        .map(|n| json!({"type": "lab.completed", "data": {"n": n, "patient": {"fp": patients[n as usize % 4]}}}))
        .collect();
    // One request for half, so acceptance order is the events' order.
    assert_eq!(relay.post_unix(&serde_json::to_string(&events[..20]).unwrap()).await.status, 202);
    relay.wait_for_log(DELIVERED, 8, |_| true).await;
    relay.kill9().await;
    let relay = env.start().await;
    assert_eq!(relay.post_unix(&serde_json::to_string(&events[20..]).unwrap()).await.status, 202);
    let mut seen: Vec<Received> = Vec::new();
    let mut delivered = std::collections::HashSet::new();
    while delivered.len() < EVENTS as usize {
        let request = receiver.next().await;
        let (n, _) = event_of(&request);
        let first = request.header("x-hookrelay-attempt") == "1";
        if !(n % 3 == 0 && first) {
            delivered.insert(n);
        }
        seen.push(request);
    }
    // Per key: no event's request arrives before the previous event of its key was answered 2xx.
    let mut done: HashMap<String, u64> = HashMap::new();
    let mut parallel_while_waiting = false;
    for (i, request) in seen.iter().enumerate() {
        let (n, patient) = event_of(request);
        let previous = n.checked_sub(4);
        if let Some(previous) = previous {
            assert!(
                done.get(&patient).is_some_and(|&d| d >= previous),
                "event {n} of {patient} before {previous} was delivered"
            );
        }
        let first = request.header("x-hookrelay-attempt") == "1";
        if n % 3 == 0 && first {
            // While this head waits for its retry, another key's event arrives.
            let retry = seen[i + 1..].iter().position(|r| event_of(r).0 == n).unwrap() + i + 1;
            parallel_while_waiting |= seen[i + 1..retry].iter().any(|r| event_of(r).1 != patient);
        } else {
            done.insert(patient.clone(), n);
        }
    }
    assert!(parallel_while_waiting, "other keys went on while a key's head waited for its retry");
    assert!(receiver.max_in_flight() >= 2, "different keys in parallel");
    let bad = unsigned_subscription("vet", &receiver.url("/"), "order_key = \"patient\"\nordered = true");
    env.write_config(&Setup { subscriptions: bad, ..Setup::default() });
    let stdout = String::from_utf8_lossy(&cli(&env, &["check"]).await.stdout).into_owned();
    assert!(stdout.contains("invalid `order_key` pointer") || stdout.contains("exclude each other"), "{stdout}");
}
