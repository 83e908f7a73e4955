//! The promise the relay exists for (SPEC §7): under concurrent producers and a receiver that succeeds,
//! fails and stalls, the real binary is killed with SIGKILL again and again; in the end every event that
//! was answered 202 reached every subscription it matched, and duplicates stay within what the attempts in
//! flight at each kill can explain.
//!
//! `cargo test --test crash_loop` runs a short loop. A soak:
//!   HOOKRELAY_CRASH_CYCLES=200 cargo test --release --test crash_loop -- --nocapture

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use support::client::{try_send, Call};
use support::receiver::{Receiver, Reply, Script};
use support::relay::{Setup, TestEnv};
use support::within;

const PRODUCERS: usize = 4;
/// Attempts on the wire at once per subscription. As many answered attempts may wait for their commit, so
/// a kill can cut off at most twice this per subscription.
const CONCURRENCY: usize = 4;

/// A reproducible "random" number from `n` (splitmix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 70 % answered 200 at once, 20 % 500, 10 % 200 after a stall (shorter than the timeout, so a stall alone
/// never causes a duplicate).
fn receiver_behaviour(n: usize) -> Reply {
    match mix(n as u64) % 10 {
        0..=6 => Reply::status(200),
        7 | 8 => Reply::status(500),
        _ => Reply::status(200).after(Duration::from_millis(150)),
    }
}

fn cycles() -> usize {
    std::env::var("HOOKRELAY_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_answered_202_is_delivered_across_repeated_kill_9() {
    let env = TestEnv::new();
    let script: Script = Arc::new(receiver_behaviour);
    let receiver = Receiver::start(&env.ca, script).await;
    let retry = format!("retry = [{}]", vec!["\"50ms\""; 40].join(", "));
    let subscription = |name: &str, events: &str| {
        format!(
            "[[subscription]]\nname = \"{name}\"\nurl = \"{}\"\nevents = [\"{events}\"]\nsignature = \"none\"\n\
             concurrency = {CONCURRENCY}\n{retry}\n",
            receiver.url(&format!("/{name}"))
        )
    };
    env.write_config(&Setup {
        // Sealed, as a production relay should run: every record a crash cuts short is a sealed one.
        relay: "encryption_key = \"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"\n".into(),
        subscriptions: subscription("all", "*") + &subscription("labs", "lab.*"),
        ..Setup::default()
    });

    let accepted: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for cycle in 0..cycles() {
        let relay = env.start().await;
        let (stop, count, progress) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (target, stop, count, progress, accepted) =
                    (relay.unix.clone(), stop.clone(), count.clone(), progress.clone(), accepted.clone());
                tokio::spawn(async move {
                    for k in 0.. {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        let id = format!("c{cycle}-p{p}-{k}");
                        let event_type = if k % 2 == 0 { "lab.completed" } else { "soap.signed" };
                        let body = json!({"type": event_type, "id": id, "data": {"k": k}}).to_string();
                        match try_send(&target, Call::events(body)).await {
                            Ok(answer) if answer.status == 202 => {
                                accepted.lock().unwrap().push((id, event_type.to_owned()));
                                count.fetch_add(1, Ordering::AcqRel);
                                progress.notify_waiters();
                            }
                            Ok(answer) => panic!("{id}: unexpected {}", answer.status),
                            // Killed under us: this event's fate is unknown, and that is allowed.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Kill after a different number of acceptances each cycle, while deliveries are in flight.
        let kill_after = 15 + (mix(cycle as u64 + 1000) % 50) as usize;
        within("producers to make progress", async {
            loop {
                let notified = progress.notified();
                if count.load(Ordering::Acquire) >= kill_after {
                    break;
                }
                notified.await;
            }
        })
        .await;
        relay.kill9().await;
        stop.store(true, Ordering::Release);
        for producer in producers {
            producer.await.unwrap();
        }
    }

    let mut relay = env.start().await;
    let accepted = accepted.lock().unwrap().clone();
    let mut owed: HashSet<(String, String)> = HashSet::new();
    for (id, event_type) in &accepted {
        owed.insert(("/all".to_owned(), id.clone()));
        if event_type.starts_with("lab.") {
            owed.insert(("/labs".to_owned(), id.clone()));
        }
    }
    let mut successes: HashMap<(String, String), usize> = HashMap::new();
    let mut success = |request: support::receiver::Received| {
        if receiver_behaviour(request.n).status == 200 {
            let key = (request.path.clone(), request.header("webhook-id").to_owned());
            let first = !successes.contains_key(&key);
            *successes.entry(key.clone()).or_default() += 1;
            first.then_some(key)
        } else {
            None
        }
    };
    let mut seen = 0;
    while !owed.is_empty() {
        seen += 1;
        if let Some(key) = success(receiver.next().await) {
            owed.remove(&key);
        }
    }
    // Every duplicate counts, also those that arrive after the last owed delivery: deliveries still pending
    // (a repeat waiting for its retry) are taken to their end, and once the relay has exited nothing more
    // comes, and every request it made is in the receiver's queue.
    within("every delivery to finish", async {
        loop {
            let pending = relay.admin_get("/v1/deliveries?status=pending&limit=1").await;
            if pending["deliveries"].as_array().is_some_and(Vec::is_empty) {
                break;
            }
            // The next request is what ends a pending delivery; the bound only lets the check run again
            // when the last one's result is still being committed.
            if let Ok(request) = tokio::time::timeout(Duration::from_millis(100), receiver.next()).await {
                seen += 1;
                success(request);
            }
        }
    })
    .await;
    relay.terminate();
    relay.wait_exit().await;
    for _ in seen..receiver.count() {
        success(receiver.next().await);
    }
    let duplicates: usize = successes.values().map(|n| n - 1).sum();
    let subscriptions = 2;
    let bound = cycles() * subscriptions * 2 * CONCURRENCY;
    println!(
        "{} events accepted over {} kills; {duplicates} duplicate deliveries (bound {bound})",
        accepted.len(),
        cycles()
    );
    assert!(duplicates <= bound, "{duplicates} duplicates: more than the attempts in flight at {} kills", cycles());
}
