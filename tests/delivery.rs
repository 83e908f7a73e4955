//! Delivery end to end: the real binary, a real HTTPS receiver behind a test CA, events posted on the unix
//! socket and the TCP listener; headers, bodies, signatures, retries, concurrency and ordering.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use hookrelay::store::{DeliveryId, DeliveryRecord, DeliveryStatus, Keyring, Record};
use support::client::{send, Call};
use support::receiver::{always, sequence, Receiver, Reply};
use support::relay::{deliveries, unsigned_subscription, Setup, TestEnv};
use support::tls::TestCa;

/// The Standard Webhooks documentation's example secret.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// HMAC-SHA256, computed here independently of the relay's own signing code.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The `v1,<base64>` entry a Standard Webhooks verifier expects for `secret`.
fn standard_entry(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let signed = [format!("{id}.{timestamp}.").as_bytes(), body].concat();
    format!("v1,{}", BASE64.encode(hmac_sha256(&key, &signed)))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn subscription(name: &str, url: &str, extra: &str) -> String {
    format!("[[subscription]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}

#[tokio::test]
async fn an_event_posted_on_the_unix_socket_reaches_the_receiver_signed_in_an_envelope() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        relay: "source = \"clinic-test\"".into(),
        subscriptions: subscription(
            "vet",
            &receiver.url("/hook"),
            &format!("events = [\"appointment.*\"]\nsecret = \"{WHSEC}\"\nheaders = {{ \"X-Api-Key\" = \"k-123\" }}"),
        ) + &subscription(
            "lab",
            &receiver.url("/lab"),
            &format!("events = [\"lab.*\"]\nsecret = \"{WHSEC}\""),
        ),
        ..Setup::default()
    });
    let relay = env.start().await;

    let answer = relay
        .post_unix(
            r#"{"type": "appointment.created", "id": "apt-1", "occurred_at": "2026-04-11T10:30:00Z",
                "data": {"patient": {"fp": "patient_01J"}, "n": 1}}"#,
        )
        .await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.json(), json!({"id": "apt-1", "subscriptions": ["vet"]}));

    let request = receiver.next().await;
    assert_eq!(request.path, "/hook");
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"id":"apt-1","type":"appointment.created","timestamp":"2026-04-11T10:30:00Z","source":"clinic-test","data":{"patient":{"fp":"patient_01J"},"n":1}}"#
    );
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("user-agent"), format!("hookrelay/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(request.header("webhook-id"), "apt-1");
    let timestamp = request.header("webhook-timestamp");
    assert!((unix_now() - timestamp.parse::<i64>().unwrap()).abs() < 60, "a current Unix timestamp: {timestamp}");
    assert_eq!(request.header("webhook-signature"), standard_entry(WHSEC, "apt-1", timestamp, &request.body));
    assert_eq!(request.header("x-hookrelay-event"), "appointment.created");
    assert!(request.header("x-hookrelay-delivery").starts_with("dlv_"));
    assert_eq!(request.header("x-hookrelay-attempt"), "1");
    assert_eq!(request.header("x-api-key"), "k-123");

    relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;
    assert_eq!(receiver.count(), 1, "the `lab` subscription did not match and got nothing");
    let logs = serde_json::to_string(&relay.logs()).unwrap();
    for private in ["patient_01J", "k-123", WHSEC] {
        assert!(!logs.contains(private), "`{private}` (payload or secret) appeared in the log:\n{logs}");
    }
}

#[tokio::test]
async fn an_event_posted_over_tcp_reaches_every_matching_subscription_with_its_scheme() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(204)).await;
    let old_secret = "plain-old-secret";
    env.write_config(&Setup {
        ingest: "token = \"ingest-token\"".into(),
        subscriptions: subscription(
            "standard",
            &receiver.url("/standard"),
            &format!("events = [\"order:*\"]\nsecret = [\"{WHSEC}\", \"{old_secret}\"]"),
        ) + &subscription(
            "erp",
            &receiver.url("/erp"),
            "events = [\"*\"]\nsignature = \"hmac-sha256\"\nsignature_header = \"X-Erp-Signature\"\n\
             body = \"data\"\nsecret = \"erp-secret\"",
        ),
        ..Setup::default()
    });
    let relay = env.start().await;

    let call = Call::events(r#"{"type":"order:shipped","data":[1, {"sku": "A-1"}]}"#)
        .header("authorization", "Bearer ingest-token");
    let answer = send(relay.tcp(), call).await;
    assert_eq!(answer.status, 202);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("evt_"), "an assigned id: {id}");
    assert_eq!(answer.json()["subscriptions"], json!(["standard", "erp"]));

    let (first, second) = (receiver.next().await, receiver.next().await);
    let (standard, erp) = if first.path == "/standard" { (first, second) } else { (second, first) };
    assert_eq!(standard.header("webhook-id"), id);
    assert_eq!(erp.header("webhook-id"), id);
    assert_ne!(standard.header("x-hookrelay-delivery"), erp.header("x-hookrelay-delivery"));

    let timestamp = standard.header("webhook-timestamp");
    let expected = format!(
        "{} {}",
        standard_entry(WHSEC, &id, timestamp, &standard.body),
        standard_entry(old_secret, &id, timestamp, &standard.body)
    );
    assert_eq!(standard.header("webhook-signature"), expected, "one entry per secret, in order");

    assert_eq!(std::str::from_utf8(&erp.body).unwrap(), r#"[1,{"sku":"A-1"}]"#, "`data` alone, compact");
    assert_eq!(erp.header("x-erp-signature"), hex::encode(hmac_sha256(b"erp-secret", &erp.body)));
    assert!(erp.headers.get("webhook-signature").is_none());
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_same_body_and_id_with_fresh_timestamps_on_attempt_three() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(500), Reply::status(503)], 200)).await;
    env.write_config(&Setup {
        // The first retry waits over a second, so a timestamp made afresh for it must differ.
        subscriptions: subscription(
            "vet",
            &receiver.url("/hook"),
            &format!("events = [\"*\"]\nsecret = \"{WHSEC}\"\nretry = [\"1100ms\", \"50ms\"]"),
        ),
        ..Setup::default()
    });
    let relay = env.start().await;
    let answer = relay.post_unix(r#"{"type":"soap.signed","id":"soap-9","data":{"note":"fp_77"}}"#).await;
    assert_eq!(answer.status, 202);

    let attempts = [receiver.next().await, receiver.next().await, receiver.next().await];
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.header("x-hookrelay-attempt"), (n + 1).to_string());
        assert_eq!(attempt.header("webhook-id"), "soap-9");
        assert_eq!(attempt.body, attempts[0].body, "byte-identical body on attempt {}", n + 1);
        assert_eq!(attempt.header("x-hookrelay-delivery"), attempts[0].header("x-hookrelay-delivery"));
        let timestamp = attempt.header("webhook-timestamp");
        assert_eq!(attempt.header("webhook-signature"), standard_entry(WHSEC, "soap-9", timestamp, &attempt.body));
        let age = unix_now() - timestamp.parse::<i64>().unwrap();
        assert!((0..=2).contains(&age), "attempt {} carries a fresh timestamp ({age} s old)", n + 1);
    }
    let first: i64 = attempts[0].header("webhook-timestamp").parse().unwrap();
    let second: i64 = attempts[1].header("webhook-timestamp").parse().unwrap();
    assert!(second > first, "the retry a second later was signed with a new timestamp ({first} then {second})");
    let success = relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;
    assert_eq!(success["attempt"], 3);
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_failed_after_the_schedule() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(500)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/hook"), ""),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":null}"#).await.status, 202);

    let failed = relay
        .wait_for_log("Delivery failed after its last attempt; requeue it with `hookrelay retry`.", 1, |_| true)
        .await;
    assert_eq!(failed["attempt"], 3, "1 + two retries");
    let retrying = relay.wait_for_log("Delivery attempt failed; will retry.", 1, |_| true).await;
    for line in [&failed, &retrying] {
        for field in ["event_id", "delivery_id", "subscription", "attempt", "status", "error", "duration_ms"] {
            assert!(!line[field].is_null(), "the attempt's log line has `{field}`: {line}");
        }
    }
    assert!(retrying["next_attempt_in_ms"].is_u64(), "{retrying}");
    assert_eq!((retrying["level"].as_str(), failed["level"].as_str()), (Some("WARN"), Some("ERROR")));
    assert_eq!(receiver.count(), 3);
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    let store = env.store();
    let deliveries = deliveries(&store);
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, DeliveryStatus::Failed);
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[0].last_status_code, Some(500));
    let attempts = store.attempts(&deliveries[0], &mut Vec::new()).unwrap();
    assert_eq!(attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(), vec![Some(500); 3]);
}

/// Recording an attempt with a short answer is one write: the delivery's record carries its latest
/// attempt, and each earlier one moves to a key of its own when the next is recorded. A first attempt that succeeds leaves no
/// attempt key at all, and every view lists the attempts first to last with their answers.
#[tokio::test]
async fn a_delivery_record_carries_its_latest_attempt_and_earlier_ones_have_keys_of_their_own() {
    let env = TestEnv::new();
    let answers = vec![Reply::status(500).with_body("first answer"), Reply::status(503).with_body("second answer")];
    let retried = Receiver::start(&env.ca, sequence(answers, 200)).await;
    let at_once = Receiver::start(&env.ca, always(200)).await;
    let retries = "retry = [\"0s\", \"0s\"]";
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("retried", &retried.url("/hook"), retries)
            + &unsigned_subscription("at-once", &at_once.url("/hook"), ""),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"e-1","data":1}"#).await.status, 202);
    relay.wait_for_log("Delivery succeeded.", 2, |_| true).await;
    let shown = relay.admin_get("/v1/events/e-1").await;
    let id_of = |name: &str| {
        let found = shown["deliveries"].as_array().unwrap().iter().find(|d| d["subscription"] == name).unwrap();
        found["id"].as_str().unwrap().to_owned()
    };
    let attempts = relay.admin_get(&format!("/v1/deliveries/{}", id_of("retried"))).await["attempts"].clone();
    let listed: Vec<_> =
        attempts.as_array().unwrap().iter().map(|a| (a["n"].clone(), a["response_body"].clone())).collect();
    assert_eq!(
        listed,
        vec![(json!(1), json!("first answer")), (json!(2), json!("second answer")), (json!(3), json!("{\"ok\":true}"))]
    );
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    let db = sled::open(env.state_dir()).unwrap();
    let key_of = |name: &str| DeliveryId::parse(&id_of(name)).unwrap().0 .0.to_be_bytes();
    let (retried_id, at_once_id) = (key_of("retried"), key_of("at-once"));
    let attempt_keys: Vec<Vec<u8>> = db.scan_prefix(b"a").map(|entry| entry.unwrap().0.to_vec()).collect();
    let expected: Vec<Vec<u8>> =
        [1u32, 2].iter().map(|n| [&b"a"[..], &retried_id, &n.to_be_bytes()].concat()).collect();
    assert_eq!(attempt_keys, expected, "only the retried delivery's first two attempts have keys of their own");
    for (delivery, n) in [(retried_id, 3), (at_once_id, 1)] {
        let key = [&b"d"[..], &delivery].concat();
        let bytes = db.get(&key).unwrap().unwrap();
        let record = DeliveryRecord::decode(&key, &bytes, &Keyring::default()).unwrap();
        assert_eq!(record.status, DeliveryStatus::Delivered);
        assert_eq!(record.latest_attempt.map(|latest| latest.n), Some(n));
    }
}

/// Answers left to linger far past the test's patience (`HOOKRELAY_COMMIT_LINGER=1h`) are made durable only
/// by a hurry. An ordered subscription's next delivery waits for the previous answer's commit, so its
/// worker hurries it and three events accepted together go out one after another; the last answer, which
/// nothing waits for, lingers until SIGTERM, which ends every linger: the relay exits 0 at once with it
/// recorded. (Without that, the attempt waits out shutdown's grace period and is logged as abandoned; the
/// final commit still records it, so the log line is what shows the difference.)
#[tokio::test]
async fn a_worker_that_waits_for_an_answer_hurries_it_and_shutdown_ends_every_linger() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let ordered = "ordered = true";
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/hook"), ordered),
        ..Setup::default()
    });
    let mut relay = env.start_with_env(&[(hookrelay::relay::COMMIT_LINGER_VARIABLE, "1h")]).await;
    // One request, one accept round: nothing hurried comes after it to end a linger.
    let batch: Vec<_> = (0..3).map(|i| json!({"type": "lab.completed", "id": format!("e-{i}"), "data": i})).collect();
    let answer = send(relay.tcp(), Call::events(serde_json::to_string(&batch).unwrap())).await;
    assert_eq!(answer.status, 202);
    for i in 0..3 {
        assert_eq!(receiver.next().await.header("webhook-id"), format!("e-{i}"));
    }
    relay.wait_for_log("Delivery succeeded.", 2, |_| true).await;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    assert!(
        relay
            .logs()
            .iter()
            .all(|line| line["message"] != "Attempt abandoned at shutdown; it is retried after restart."),
        "the last answer was not left lingering until the grace period ran out"
    );
    let store = env.store();
    let statuses: Vec<_> = deliveries(&store).iter().map(|delivery| delivery.status).collect();
    assert_eq!(statuses, vec![DeliveryStatus::Delivered; 3]);
}

#[tokio::test]
async fn retry_after_on_429_is_waited_for_when_longer_than_the_schedule() {
    let env = TestEnv::new();
    let busy = Reply::status(429).with_header("retry-after", "1");
    let receiver = Receiver::start(&env.ca, sequence(vec![busy], 200)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/hook"), "retry = [\"0s\"]"),
        ..Setup::default()
    });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":1}"#).await.status, 202);

    let first = receiver.next().await;
    let second = receiver.next().await;
    assert!(
        second.at.duration_since(first.at) >= Duration::from_secs(1),
        "the retry came {:?} after the 429, before its Retry-After of 1s",
        second.at.duration_since(first.at)
    );
    assert_eq!(second.header("x-hookrelay-attempt"), "2");
}

#[tokio::test]
async fn redirects_are_not_followed_and_untrusted_certificates_are_refused() {
    let env = TestEnv::new();
    let redirect = Reply::status(302).with_header("location", "/elsewhere");
    let receiver = Receiver::start(&env.ca, sequence(vec![redirect], 200)).await;
    let stranger_ca = TestCa::new();
    let stranger = Receiver::start(&stranger_ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("moved", &receiver.url("/hook"), "")
            + &unsigned_subscription("stranger", &stranger.url("/hook"), "retry = []"),
        ..Setup::default()
    });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":1}"#).await.status, 202);

    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!((first.path.as_str(), second.path.as_str()), ("/hook", "/hook"), "the 302 was not followed");
    assert_eq!(second.header("x-hookrelay-attempt"), "2");

    let refused = relay
        .wait_for_log("Delivery failed after its last attempt; requeue it with `hookrelay retry`.", 1, |line| {
            line["subscription"] == "stranger"
        })
        .await;
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("certificate") || error.contains("UnknownIssuer"), "a TLS verification error: {error}");
    assert_eq!(stranger.count(), 0, "no request reached a server with an untrusted certificate");
}

#[tokio::test]
async fn a_subscription_never_has_more_attempts_in_flight_than_its_concurrency() {
    let env = TestEnv::new();
    let receiver = Receiver::start_holding(&env.ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("vet", &receiver.url("/hook"), "concurrency = 2"),
        ..Setup::default()
    });
    let relay = env.start().await;
    let batch: Vec<_> = (0..6).map(|i| json!({"type": "lab.completed", "data": i})).collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&batch).unwrap()).await.status, 202);

    // Two arrive and are held at once; each release lets exactly one more in.
    receiver.next().await;
    receiver.next().await;
    for _ in 0..4 {
        receiver.release(1);
        receiver.next().await;
    }
    receiver.release(2);
    relay.wait_for_log("Delivery succeeded.", 6, |_| true).await;
    assert_eq!(receiver.max_in_flight(), 2);
}

#[tokio::test]
async fn an_ordered_subscription_delivers_one_at_a_time_in_acceptance_order() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(503)], 200)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("erp", &receiver.url("/hook"), "ordered = true\nretry = [\"50ms\"]"),
        ..Setup::default()
    });
    let relay = env.start().await;
    let batch = r#"[{"type":"a","id":"e1","data":1},{"type":"a","id":"e2","data":2},{"type":"a","id":"e3","data":3}]"#;
    assert_eq!(relay.post_unix(batch).await.status, 202);

    let mut seen = Vec::new();
    for _ in 0..4 {
        let request = receiver.next().await;
        seen.push(format!("{}#{}", request.header("webhook-id"), request.header("x-hookrelay-attempt")));
    }
    assert_eq!(seen, ["e1#1", "e1#2", "e2#1", "e3#1"], "e2 waits until e1 is delivered");
}
