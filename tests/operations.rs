//! What operators watch: Prometheus metrics after real traffic, the retention purge, and the systemd
//! notifications (READY, WATCHDOG, STOPPING) read from a test `NOTIFY_SOCKET`.

mod support;

use std::collections::HashMap;

use serde_json::json;
use tokio::net::UnixDatagram;

use support::client::{send, Call};
use support::receiver::{always, Receiver};
use support::relay::{unsigned_subscription as subscription, RelayProcess, Setup, TestEnv};
use support::within;

/// Scrapes `/metrics` as Prometheus does (OpenMetrics) and returns every sample line as `name{labels}` →
/// value. tests/metrics.rs checks the formats themselves.
async fn scrape(relay: &RelayProcess) -> HashMap<String, f64> {
    let answer = send(relay.tcp(), Call::get("/metrics").header("accept", "application/openmetrics-text")).await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers["content-type"].to_str().unwrap().contains("openmetrics-text"));
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "a complete exposition");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(name, value)| (name.to_owned(), value.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let env = TestEnv::new();
    let (ok, broken) = (Receiver::start(&env.ca, always(200)).await, Receiver::start(&env.ca, always(503)).await);
    let setup = Setup {
        subscriptions: subscription("ok", &ok.url("/"), "") + &subscription("broken", &broken.url("/"), "retry = []"),
        ..Setup::default()
    };
    env.write_config(&setup);
    let relay = env.start().await;

    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":1}"#).await.status, 202);
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":2}"#).await.status, 202);
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed"}"#).await.status, 400);
    relay.wait_for_log("Delivery succeeded.", 2, |_| true).await;
    relay.wait_for_log("Delivery failed after its last attempt; requeue it with `hookrelay retry`.", 2, |_| true).await;
    std::fs::write(env.config_path(), "[relay]\nstate_dir = 7\n").unwrap();
    relay.wait_for_log("Config not reloaded; the relay keeps running on the previous config.", 1, |_| true).await;
    env.save_by_rename(&setup_with_extra(&setup));
    relay.wait_for_log("Config reloaded.", 1, |_| true).await;

    let metrics = scrape(&relay).await;
    let value = |key: &str| *metrics.get(key).unwrap_or_else(|| panic!("no sample `{key}` in {metrics:#?}"));
    assert_eq!(value("hookrelay_events_accepted_total"), 2.0);
    assert_eq!(value("hookrelay_events_rejected_total{reason=\"invalid_event\"}"), 1.0);
    assert_eq!(value("hookrelay_delivery_attempts_total{subscription=\"ok\",outcome=\"2xx\"}"), 2.0);
    assert_eq!(value("hookrelay_delivery_attempts_total{subscription=\"broken\",outcome=\"5xx\"}"), 2.0);
    assert_eq!(value("hookrelay_delivery_attempt_duration_seconds_count"), 4.0);
    assert_eq!(value("hookrelay_deliveries{subscription=\"broken\",status=\"failed\"}"), 2.0);
    assert_eq!(value("hookrelay_deliveries{subscription=\"ok\",status=\"pending\"}"), 0.0);
    assert_eq!(value("hookrelay_oldest_pending_age_seconds{subscription=\"ok\"}"), 0.0);
    assert_eq!(value("hookrelay_config_reloads_total{outcome=\"applied\"}"), 1.0);
    assert_eq!(value("hookrelay_config_reloads_total{outcome=\"rejected\"}"), 1.0);
    assert!(value("hookrelay_store_flush_duration_seconds_count") >= 1.0, "ingest commits were timed");
}

/// The same config with one more harmless subscription, to cause a reload.
fn setup_with_extra(setup: &Setup) -> Setup {
    Setup {
        subscriptions: setup.subscriptions.clone() + &subscription("extra", "https://127.0.0.1:9/", "enabled = false"),
        ..Setup::default()
    }
}

/// Held deliveries are counted as held, not pending, and the age gauge counts from the oldest one's
/// acceptance: it grows while they wait, never past the time since they were posted, and a newer
/// delivery does not make it younger. A second held subscription, whose first delivery comes a second
/// later, shows its own age (not the relay's uptime, nor the oldest delivery of any subscription).
#[tokio::test]
async fn held_deliveries_show_in_the_gauges_with_their_age() {
    let env = TestEnv::new();
    env.write_config(&Setup {
        subscriptions: subscription("held", "https://127.0.0.1:9/", "enabled = false")
            + &subscription("later", "https://127.0.0.1:9/", "enabled = false\nevents = [\"b\"]")
                .replace("events = [\"*\"]\n", ""),
        ..Setup::default()
    });
    let relay = env.start().await;
    // The gauge is wall-clock time since acceptance, so the bound is read on the wall clock too.
    let posted = std::time::SystemTime::now();
    assert_eq!(relay.post_unix(r#"[{"type":"a","data":1},{"type":"a","data":2}]"#).await.status, 202);
    let metrics = scrape(&relay).await;
    assert_eq!(metrics["hookrelay_deliveries{subscription=\"held\",status=\"held\"}"], 2.0);
    assert_eq!(metrics["hookrelay_deliveries{subscription=\"held\",status=\"pending\"}"], 0.0);
    let age = |metrics: &HashMap<String, f64>| metrics["hookrelay_oldest_pending_age_seconds{subscription=\"held\"}"];
    // Time passing is what is tested: the gauge is scraped until it shows a second.
    within("the held deliveries to be a second old", async {
        loop {
            let shown = age(&scrape(&relay).await);
            let since_posted = posted.elapsed().unwrap_or_default().as_secs_f64();
            // Millisecond steps; the margin also takes a small step of the clock.
            assert!(shown <= since_posted + 0.1, "age {shown} s, posted {since_posted} s ago");
            if shown >= 1.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(relay.post_unix(r#"{"type":"b","data":3}"#).await.status, 202);
    let metrics = scrape(&relay).await;
    assert_eq!(metrics["hookrelay_deliveries{subscription=\"held\",status=\"held\"}"], 3.0);
    assert_eq!(metrics["hookrelay_deliveries{subscription=\"later\",status=\"held\"}"], 1.0);
    assert!(age(&metrics) >= 1.0, "the oldest, not the newest: {}", age(&metrics));
    let later = metrics["hookrelay_oldest_pending_age_seconds{subscription=\"later\"}"];
    assert!(later < age(&metrics) - 0.5, "its own oldest: {later} s, against {} s", age(&metrics));
}

#[tokio::test]
async fn finished_records_and_their_idempotency_keys_are_purged_after_retention() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        relay: "retention = \"1s\"".into(),
        subscriptions: subscription("vet", &receiver.url("/"), ""),
        ..Setup::default()
    });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"a","id":"old-1","data":1}"#).await.status, 202);
    relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;

    let purged = relay.wait_for_log("Purged finished records older than the retention period.", 1, |_| true).await;
    assert_eq!((purged["events"].as_u64(), purged["deliveries"].as_u64()), (Some(1), Some(1)));
    assert_eq!(send(&relay.unix, Call::get("/v1/events/old-1")).await.status, 404);
    assert_eq!(send(&relay.unix, Call::get("/v1/deliveries")).await.json()["deliveries"], json!([]));
    let reused = relay.post_unix(r#"{"type":"a","id":"old-1","data":"different"}"#).await;
    assert_eq!(reused.status, 202, "the id is free again once its record is purged");
}

/// Before: a reload that lowered `retention` waited out the purge interval of the old value (up to an hour).
#[tokio::test]
async fn a_reload_that_lowers_retention_purges_on_the_new_schedule() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let with_retention = |retention: &str| Setup {
        relay: format!("retention = \"{retention}\""),
        subscriptions: subscription("vet", &receiver.url("/"), ""),
        ..Setup::default()
    };
    env.write_config(&with_retention("2h"));
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"a","id":"soon-old","data":1}"#).await.status, 202);
    relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;
    env.save_by_rename(&with_retention("1s"));
    relay.wait_for_log("Config reloaded.", 1, |_| true).await;
    let purged = relay.wait_for_log("Purged finished records older than the retention period.", 1, |_| true).await;
    assert_eq!(purged["events"].as_u64(), Some(1));
}

#[tokio::test]
async fn systemd_is_told_ready_watchdog_and_stopping() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let socket_path = env.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    let socket = socket_path.to_str().unwrap();
    let mut relay = env.start_with_env(&[("NOTIFY_SOCKET", socket), ("WATCHDOG_USEC", "100000")]).await;

    let mut messages = Vec::new();
    while !messages.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
        messages.push(receive(&notify).await);
    }
    assert!(messages[0].contains("READY=1"), "READY first: {messages:?}");
    relay.terminate();
    while !messages.iter().any(|m| m.contains("STOPPING=1")) {
        messages.push(receive(&notify).await);
    }
    assert!(relay.wait_exit().await.success());
}

async fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 256];
    let n = within("a notification", socket.recv(&mut buffer)).await.unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// Before: the relay ran with the soft open-file limit it was given (1,024 under systemd by default).
#[tokio::test]
async fn the_open_file_soft_limit_is_raised_to_the_hard_limit_at_start() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let relay = env.start_with_open_files("256:4096").await;
    let raised = relay.wait_for_log("Open-file limit raised.", 1, |_| true).await;
    assert_eq!((raised["before"].as_u64(), raised["after"].as_u64()), (Some(256), Some(4096)));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", relay.pid())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert_eq!(line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["4096", "4096"], "{line}");
}
