//! Steps of the system clock (SPEC §7), through the real binary under libfaketime: retry due times are
//! kept as wall-clock times on disk, but the relay waits on the monotonic clock, so a step back neither
//! stalls a retry and a step forward does not fire it early. libfaketime fakes only the wall clock here
//! (`FAKETIME_DONT_FAKE_MONOTONIC`), as NTP or a VM resume moves it; `.ci/run` installs it.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::receiver::{sequence, Receiver, Reply};
use support::relay::{unsigned_subscription, RelayProcess, Setup, TestEnv};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Starts a relay whose wall clock is offset by what `offset` holds (libfaketime syntax, e.g. `-1d`).
async fn start_with_fake_clock(env: &TestEnv, retry: &str) -> (RelayProcess, Receiver, std::path::PathBuf) {
    assert!(Path::new(LIBFAKETIME).exists(), "these tests need libfaketime: apt-get install libfaketime");
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(503)], 200)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/"), &format!("retry = [\"{retry}\"]")),
        ..Setup::default()
    });
    let (relay, offset) = start_faked(env).await;
    (relay, receiver, offset)
}

/// Starts the relay on the config written, its wall clock offset by what the returned file holds.
async fn start_faked(env: &TestEnv) -> (RelayProcess, std::path::PathBuf) {
    let offset = env.dir.path().join("faketime");
    std::fs::write(&offset, "+0").unwrap();
    let vars = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    (env.start_with_env(&vars).await, offset)
}

/// Posts event `id`, waits for its first attempt to fail and be recorded, then steps the clock by `step`;
/// returns when the first attempt arrived.
async fn fail_once_then_step(
    relay: &RelayProcess,
    receiver: &Receiver,
    offset: &Path,
    id: &str,
    step: &str,
) -> Instant {
    let event = format!(r#"{{"type":"lab.completed","id":"{id}","data":1}}"#);
    assert_eq!(relay.post_unix(&event).await.status, 202);
    let first = receiver.next().await;
    relay.wait_for_log("Delivery attempt failed; will retry.", 1, |_| true).await;
    std::fs::write(offset, step).unwrap();
    first.at
}

/// Before: due times were wall-clock in memory too, so a step back of a day stalled every retry.
#[tokio::test]
async fn a_clock_stepped_back_a_day_does_not_stall_a_retry() {
    let env = TestEnv::new();
    let (relay, receiver, offset) = start_with_fake_clock(&env, "1s").await;
    let first_at = fail_once_then_step(&relay, &receiver, &offset, "back", "-1d").await;
    let second = receiver.next().await;
    assert_eq!(second.header("x-hookrelay-attempt"), "2");
    assert!(second.at - first_at >= Duration::from_millis(950), "not early either: {:?}", second.at - first_at);
}

/// Before: after a step forward of an hour, the next time the worker looked at its queue (here: a new
/// event arrives) it fired a retry due in 3 s at once, as it would one due in 10 minutes.
#[tokio::test]
async fn a_clock_stepped_forward_an_hour_does_not_fire_a_retry_early() {
    let env = TestEnv::new();
    let (relay, receiver, offset) = start_with_fake_clock(&env, "3s").await;
    let first_at = fail_once_then_step(&relay, &receiver, &offset, "ahead", "+1h").await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"wake","data":2}"#).await.status, 202);
    let mut second = receiver.next().await;
    if second.header("webhook-id") == "wake" {
        second = receiver.next().await;
    }
    assert_eq!((second.header("webhook-id"), second.header("x-hookrelay-attempt")), ("ahead", "2"));
    let waited = second.at - first_at;
    assert!(waited >= Duration::from_millis(2950), "the retry waited its 3 s, not the clock's hour: {waited:?}");
}

const NOTHING_PURGED: &str = "Retention purge: nothing to purge.";

/// Issue 14 #5: a step forward past `retention` would have purged records early, idempotency keys
/// included, so a producer's retry of an event accepted a moment ago was accepted again. The purge
/// cutoff never runs ahead of the monotonic time since start.
#[tokio::test]
async fn a_clock_stepped_forward_a_day_does_not_purge_what_is_younger_than_retention() {
    assert!(Path::new(LIBFAKETIME).exists(), "these tests need libfaketime: apt-get install libfaketime");
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, sequence(vec![], 200)).await;
    env.write_config(&Setup {
        relay: "retention = \"20s\"".into(),
        subscriptions: unsigned_subscription("vet", &receiver.url("/"), ""),
        log_level: "info,hookrelay::retention=debug",
        ..Setup::default()
    });
    let (relay, offset) = start_faked(&env).await;
    let event = r#"{"type":"lab.completed","id":"young","data":1}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);
    receiver.next().await;
    relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;
    std::fs::write(&offset, "+1d").unwrap();
    let rounds_before = relay.logs().iter().filter(|line| line["message"] == NOTHING_PURGED).count();
    // A purge round runs every 5 s, a quarter of the retention; the second one after the step surely read
    // the stepped clock.
    relay.wait_for_log(NOTHING_PURGED, rounds_before + 2, |_| true).await;
    assert_eq!(relay.post_unix(event).await.status, 200, "the event is still known: a repeat, not a new event");
}
