//! "No duplicate without a crash" (SPEC §7), black box: receivers get each `webhook-id` exactly once per
//! subscription as a success, and each attempt of it once, while events pour in and reloads (removing and
//! re-adding a subscription, changing concurrency, SIGHUP) and requeues (bulk and by id) storm the relay.
//! The counted receivers fail every third request, so retries (and an occasional requeue) are in the mix.
//!
//! The default is a short storm that fits the suite; `HOOKRELAY_STORM_EVENTS=20000
//! HOOKRELAY_STORM_SECONDS=30` runs the full one.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use support::client::{send, Call};
use support::receiver::{always, Receiver, Reply, Script};
use support::relay::{unsigned_subscription, Setup, TestEnv};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_webhook_id_arrives_once_per_subscription_through_reload_and_requeue_storms() {
    let events = setting("HOOKRELAY_STORM_EVENTS", 2000) as usize;
    let storm = Duration::from_secs(setting("HOOKRELAY_STORM_SECONDS", 4));
    let env = TestEnv::new();
    // Every third request fails: `n % 3 == 0` is a 503, so a request's outcome is known from its number.
    let third_fails: Script = Arc::new(|n| Reply::status(if n % 3 == 0 { 503 } else { 200 }));
    let (alpha, beta) =
        (Receiver::start(&env.ca, third_fails.clone()).await, Receiver::start(&env.ca, third_fails).await);
    let patient = format!("retry = [{}]", vec!["\"20ms\""; 20].join(", "));
    let flaky = Receiver::start(&env.ca, always(503)).await;
    let config = |variant: usize| {
        let alpha_extra = if variant.is_multiple_of(2) { "concurrency = 8" } else { "concurrency = 3" };
        let mut subscriptions = unsigned_subscription("alpha", &alpha.url("/"), &format!("{alpha_extra}\n{patient}"));
        if variant % 3 != 1 {
            subscriptions += &unsigned_subscription("beta", &beta.url("/"), &patient);
        }
        subscriptions += &unsigned_subscription("flaky", &flaky.url("/"), "retry = []");
        Setup { subscriptions, ..Setup::default() }
    };
    env.write_config(&config(0));
    let relay = Arc::new(env.start_with_env(&[(hookrelay::relay::REMOVED_GRACE_VARIABLE, "10m")]).await);
    let storming = Arc::new(AtomicBool::new(true));

    let ingest = {
        let relay = Arc::clone(&relay);
        tokio::spawn(async move {
            // Subscription → the events routed to it (beta is out of the config now and then).
            let mut routed: HashMap<String, usize> = HashMap::new();
            for batch in (0..events).collect::<Vec<_>>().chunks(50) {
                let body: Vec<_> = batch
                    .iter()
                    .map(|i| json!({"type": "lab.completed", "id": format!("s-{i}"), "data": {"n": i}}))
                    .collect();
                let answer = relay.post_unix(&serde_json::to_string(&body).unwrap()).await;
                assert_eq!(answer.status, 202, "{}", String::from_utf8_lossy(&answer.body));
                for event in answer.json().as_array().unwrap() {
                    for name in event["subscriptions"].as_array().unwrap() {
                        *routed.entry(name.as_str().unwrap().to_owned()).or_default() += 1;
                    }
                }
            }
            routed
        })
    };
    let requeues = {
        let (relay, storming) = (Arc::clone(&relay), Arc::clone(&storming));
        tokio::spawn(async move {
            let mut rounds = 0;
            while storming.load(Ordering::Relaxed) {
                for status in ["failed", "cancelled"] {
                    let call = Call::post("/v1/deliveries/retry", json!({ "status": status }).to_string());
                    assert_eq!(send(&relay.unix, call).await.status, 200);
                }
                let delivered = relay.admin_get("/v1/deliveries?status=delivered&limit=5").await;
                for delivery in delivered["deliveries"].as_array().unwrap() {
                    let path = format!("/v1/deliveries/{}/retry", delivery["id"].as_str().unwrap());
                    assert_eq!(
                        send(&relay.unix, Call::post(&path, "{}")).await.status,
                        409,
                        "delivered stays delivered"
                    );
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut reloads = 0;
    let mut pace = tokio::time::interval(Duration::from_millis(300));
    let until = tokio::time::Instant::now() + storm;
    while tokio::time::Instant::now() < until || !ingest.is_finished() {
        pace.tick().await;
        reloads += 1;
        env.save_by_rename(&config(reloads));
        if reloads % 4 == 0 {
            relay.hangup();
        }
    }
    storming.store(false, Ordering::Relaxed);
    let routed = ingest.await.unwrap();
    let requeue_rounds = requeues.await.unwrap();
    env.save_by_rename(&config(0));
    relay.hangup();

    let expected = |name: &str| routed.get(name).copied().unwrap_or(0);
    assert_eq!(expected("alpha"), events);
    assert!(expected("beta") > 0);
    let to_deliver = expected("alpha") + expected("beta");
    // In steps, so that a long storm's backlog has the patience of each step, not of one wait.
    for n in (1000..to_deliver).step_by(1000).chain([to_deliver]) {
        relay.wait_for_log("Delivery succeeded.", n, |_| true).await;
    }
    let mut relay = Arc::into_inner(relay).expect("the storm tasks are done");
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    for (name, receiver) in [("alpha", &alpha), ("beta", &beta)] {
        // Every request the receiver got, counted after the relay stopped: none is left out.
        let mut attempts: HashMap<(String, String), usize> = HashMap::new();
        let mut successes: HashMap<String, usize> = HashMap::new();
        for _ in 0..receiver.count() {
            let request = receiver.next().await;
            let id = request.header("webhook-id").to_owned();
            *attempts.entry((id.clone(), request.header("x-hookrelay-attempt").to_owned())).or_default() += 1;
            if request.n % 3 != 0 {
                *successes.entry(id).or_default() += 1;
            }
        }
        let repeated: Vec<_> = attempts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "{name}: an attempt arrived more than once: {repeated:?}");
        let twice: Vec<_> = successes.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{name}: delivered more than once: {twice:?}");
        assert_eq!(successes.len(), expected(name), "{name}: every event routed to it was delivered");
    }
    let succeeded = relay.logs().iter().filter(|l| l["message"] == "Delivery succeeded.").count();
    assert_eq!(succeeded, to_deliver, "one recorded success per delivery");
    assert!(reloads >= 4 && requeue_rounds >= 2, "the storms ran: {reloads} reloads, {requeue_rounds} requeue rounds");
}
