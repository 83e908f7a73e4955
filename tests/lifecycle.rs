//! Crashes, restarts and shutdown with the real binary: nothing accepted is lost to `kill -9`, SIGTERM
//! lets in-flight attempts finish and exits 0, and attempts cut off at shutdown are made after restart.

mod support;

use std::collections::BTreeSet;

use hookrelay::store::DeliveryStatus;
use serde_json::json;
use tokio::net::TcpListener;

use support::client::{send, Call};
use support::receiver::{always, Receiver};
use support::relay::{deliveries, unsigned_subscription, Setup, TestEnv};

fn subscription(url: &str, extra: &str) -> String {
    format!("[[subscription]]\nname = \"vet\"\nurl = \"{url}\"\nevents = [\"*\"]\nsecret = \"s3cret\"\n{extra}\n")
}

#[tokio::test]
async fn every_event_accepted_before_kill_9_is_delivered_after_restart() {
    let env = TestEnv::new();
    // The receiver's port is bound but nothing answers yet: attempts time out as against a dead host.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let retry = format!("retry = [{}]", vec!["\"200ms\""; 50].join(", "));
    env.write_config(&Setup {
        subscriptions: subscription(&url, &format!("timeout = \"300ms\"\n{retry}")),
        ..Setup::default()
    });
    let relay = env.start().await;

    let mut accepted = BTreeSet::new();
    for i in 0..10 {
        let answer =
            relay.post_unix(&json!({"type": "lab.completed", "id": format!("k-{i}"), "data": i}).to_string()).await;
        assert_eq!(answer.status, 202);
        accepted.insert(format!("k-{i}"));
    }
    let batch: Vec<_> = (10..30).map(|i| json!({"type": "soap.signed", "id": format!("k-{i}"), "data": i})).collect();
    let answer = send(relay.tcp(), Call::events(serde_json::to_string(&batch).unwrap())).await;
    assert_eq!(answer.status, 202);
    accepted.extend((10..30).map(|i| format!("k-{i}")));
    relay.wait_for_log("Delivery attempt failed; will retry.", 1, |_| true).await;
    relay.kill9().await;

    let receiver = Receiver::serve(listener, &env.ca, always(200), false);
    let relay = env.start().await;
    let mut delivered = BTreeSet::new();
    while delivered.len() < accepted.len() {
        let request = receiver.next().await;
        delivered.insert(request.header("webhook-id").to_owned());
    }
    assert_eq!(delivered, accepted);
    drop(relay);
}

#[tokio::test]
async fn sigterm_lets_an_attempt_in_flight_finish_then_exits_0() {
    let env = TestEnv::new();
    let receiver = Receiver::start_holding(&env.ca, always(200)).await;
    env.write_config(&Setup { subscriptions: subscription(&receiver.url("/hook"), ""), ..Setup::default() });
    let mut relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"in-flight","data":1}"#).await.status, 202);

    receiver.next().await;
    relay.terminate();
    relay.wait_for_log("Shutdown requested; finishing in-flight work.", 1, |_| true).await;
    receiver.release(1);
    let status = relay.wait_exit().await;
    assert!(status.success(), "exit status {status}");
    assert!(relay.logs().iter().any(|line| line["message"] == "Delivery succeeded."));
    assert!(!env.socket().exists(), "the socket file is removed at shutdown");

    let store = env.store();
    let stored = deliveries(&store);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, DeliveryStatus::Delivered, "the finished attempt was recorded before exit");
}

/// Takes the 10 s shutdown grace period: the only test that waits for it.
#[tokio::test]
async fn an_attempt_abandoned_at_shutdown_is_made_again_after_restart() {
    let env = TestEnv::new();
    let receiver = Receiver::start_holding(&env.ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: subscription(&receiver.url("/hook"), "timeout = \"60s\""),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"stuck","data":1}"#).await.status, 202);
    let first = receiver.next().await;
    assert_eq!(first.header("x-hookrelay-attempt"), "1");

    relay.terminate();
    let status = relay.wait_exit().await;
    assert!(status.success(), "exit status {status}");
    relay.wait_for_log("Attempt abandoned at shutdown; it is retried after restart.", 1, |_| true).await;

    let _relay = env.start().await;
    let again = receiver.next().await;
    assert_eq!(again.header("webhook-id"), "stuck");
    assert_eq!(again.body, first.body);
    receiver.release(2);
}

#[tokio::test]
async fn a_restart_requeues_pending_cancels_removed_and_remembers_failed_deliveries() {
    let env = TestEnv::new();
    let (doomed, held) = (Receiver::start(&env.ca, always(503)).await, Receiver::start(&env.ca, always(200)).await);
    let doomed_subscription = unsigned_subscription("doomed", &doomed.url("/"), "retry = []\npause_after = 0");
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("held", &held.url("/"), "enabled = false")
            + &unsigned_subscription("gone", &held.url("/"), "enabled = false")
            + &doomed_subscription,
        ..Setup::default()
    });
    let relay = env.start().await;
    // Enough deliveries that the start-up scan splits them over threads and ranges.
    let mut accepted = BTreeSet::new();
    for batch in 0..3 {
        let events: Vec<_> =
            (0..100).map(|i| json!({"type": "lab.completed", "id": format!("r-{batch}-{i}"), "data": i})).collect();
        assert_eq!(relay.post_unix(&serde_json::to_string(&events).unwrap()).await.status, 202);
        accepted.extend((0..100).map(|i| format!("r-{batch}-{i}")));
    }
    relay
        .wait_for_log("Delivery failed after its last attempt; requeue it with `hookrelay retry`.", 300, |_| true)
        .await;
    relay.kill9().await;

    env.write_config(&Setup {
        subscriptions: unsigned_subscription("held", &held.url("/"), "") + &doomed_subscription,
        ..Setup::default()
    });
    let relay = env.start().await;
    let opened = relay.wait_for_log("Store opened.", 1, |_| true).await;
    assert_eq!((opened["pending"].as_u64(), opened["unconfigured"].as_u64()), (Some(600), Some(300)), "{opened}");
    let cancelled = relay
        .wait_for_log("Removed subscription's queued deliveries cancelled.", 1, |l| l["subscription"] == "gone")
        .await;
    assert_eq!(cancelled["cancelled"], 300, "after the grace period (none in tests)");
    let mut delivered = BTreeSet::new();
    while delivered.len() < accepted.len() {
        delivered.insert(held.next().await.header("webhook-id").to_owned());
    }
    assert_eq!(delivered, accepted);

    let cancelled = relay.admin_get("/v1/deliveries?status=cancelled&limit=1000").await;
    let cancelled = cancelled["deliveries"].as_array().unwrap();
    assert_eq!(cancelled.len(), 300);
    assert!(cancelled.iter().all(|d| d["subscription"] == "gone"));
    let metrics = String::from_utf8(send(&relay.unix, Call::get("/metrics")).await.body.to_vec()).unwrap();
    assert!(
        metrics.lines().any(|l| l == "hookrelay_deliveries{subscription=\"doomed\",status=\"failed\"} 300"),
        "the failed gauge is rebuilt from the store:\n{metrics}"
    );
    assert_eq!(doomed.count(), 300, "failed deliveries are not attempted again");
}
