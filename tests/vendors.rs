//! One test per vendor dialect in `examples/`: the relay runs the example's subscription (pointed at a test
//! receiver) and the receiver checks each delivery the way that vendor's documentation tells integrators
//! to. A change that breaks a dialect fails the test named after the vendor.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use support::receiver::{always, sequence, Receiver, Reply};
use support::relay::{Setup, TestEnv};

/// The `[[subscription]]` part of `examples/<file>`, with the lines setting each `replace` key rewritten.
fn example_subscription(file: &str, replace: &[(&str, String)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(file);
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("[[subscription]]").expect("the example has a subscription");
    text[start..]
        .lines()
        .map(|line| match replace.iter().find(|(key, _)| line.starts_with(&format!("{key} = "))) {
            Some((key, value)) => format!("{key} = {value}"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON value that keeps its objects' key order, as JavaScript's `JSON.parse` does.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum Js {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Js>),
    Object(IndexMap<String, Js>),
}

/// `JSON.stringify(JSON.parse(body))`, what Express handlers that sign `req.body` compute.
fn js_stringify(body: &[u8]) -> String {
    serde_json::to_string(&serde_json::from_slice::<Js>(body).unwrap()).unwrap()
}

/// The body's top-level keys, in order.
fn keys(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Js>(body).unwrap() {
        Js::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other:?}"),
    }
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn quoted(url: String) -> String {
    format!("\"{url}\"")
}

#[tokio::test]
async fn vetigen_receivers_verify_the_signature_over_json_stringify_of_the_body() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        relay: "source = \"clinic_01JQMKXXXXX\"".into(),
        subscriptions: example_subscription("vetigen.toml", &[("url", quoted(receiver.url("/webhooks/vetigen")))]),
        ..Setup::default()
    });
    let relay = env.start_with_env(&[("VETIGEN_WEBHOOK_SECRET", "vetigen-shared-secret")]).await;
    let event = r#"{"type": "appointment.created", "id": "evt_01JQMKXXXXX", "occurred_at": "2026-04-11T10:30:00Z",
        "data": {"fp": "event_01JQMKXXXXX", "type": "CHECKUP", "status": "SCHEDULED",
                 "patient": {"fp": "patient_01JQMKXXXXX", "name": "Luna"}, "start_at": "2026-04-15T10:00:00+03:00"}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);

    let request = receiver.next().await;
    let expected = hmac_hex(b"vetigen-shared-secret", js_stringify(&request.body).as_bytes());
    assert_eq!(request.header("x-vetigen-signature"), expected);
    assert_eq!(keys(&request.body), ["event_id", "event_type", "occurred_at", "clinic_fp", "data"]);
    let body = request.body_json();
    assert_eq!(body["event_id"], "evt_01JQMKXXXXX");
    assert_eq!(body["event_type"], "appointment.created");
    assert_eq!(body["occurred_at"], "2026-04-11T10:30:00Z");
    assert_eq!(body["clinic_fp"], "clinic_01JQMKXXXXX");
    assert_eq!(body["data"]["patient"]["name"], "Luna");
}

#[tokio::test]
async fn odontologyapp_receivers_verify_the_raw_body_with_the_whsec_secret_as_written() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: example_subscription("odontologyapp.toml", &[("url", quoted(receiver.url("/webhook")))]),
        ..Setup::default()
    });
    let relay = env.start_with_env(&[("ODONTOLOGY_WEBHOOK_SECRET", "whsec_abc123xyz")]).await;
    let event = r#"{"type": "payment.received", "data": {"payment_id": 123, "patient_id": 45, "amount": 500,
        "payment_method": "credit_card"}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);

    let request = receiver.next().await;
    assert_eq!(request.header("x-webhook-signature"), hmac_hex(b"whsec_abc123xyz", &request.body));
    assert_eq!(request.header("x-webhook-event"), "payment.received");
    assert_eq!(request.header("user-agent"), "OdontologyApp-Webhooks/1.0");
    assert_eq!(keys(&request.body), ["event", "timestamp", "data"]);
    let body = request.body_json();
    assert_eq!(body["event"], "payment.received");
    assert!(OffsetDateTime::parse(body["timestamp"].as_str().unwrap(), &Rfc3339).is_ok());
    assert_eq!(body["data"]["amount"], 500);
}

#[tokio::test]
async fn spakinect_receivers_get_millisecond_timestamps_and_success_true() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: example_subscription("spakinect.toml", &[("url", quoted(receiver.url("/webhooks/visit")))]),
        ..Setup::default()
    });
    let relay = env.start().await;
    let event = r#"{"type": "visit.completed", "occurred_at": "2024-05-02T18:40:00Z",
        "data": {"location_id": "loc_12345", "gfe_id": "gfe_abc123xyz789", "status": "Completed",
                 "approved_treatments": ["Botox Injection"], "deferred_treatments": []}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);

    let request = receiver.next().await;
    assert_eq!(request.header("user-agent"), "Spakinect-Webhook/1.0");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(keys(&request.body), ["event", "timestamp", "success", "data"]);
    let body = request.body_json();
    assert_eq!(body["event"], "visit.completed", "handlers reject any other event type");
    let occurred = OffsetDateTime::parse("2024-05-02T18:40:00Z", &Rfc3339).unwrap();
    assert_eq!(body["timestamp"], json!(occurred.unix_timestamp() * 1000), "Unix milliseconds, as a number");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["gfe_id"], "gfe_abc123xyz789");
}

#[tokio::test]
async fn novamed_receivers_check_the_api_key_header_and_dedupe_on_event_id() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        relay: "source = \"550e8400-e29b-41d4-a716-446655440000\"".into(),
        subscriptions: example_subscription("novamed.toml", &[("url", quoted(receiver.url("/webhooks/novamed")))]),
        ..Setup::default()
    });
    let relay = env.start_with_env(&[("NOVAMED_WEBHOOK_SECRET", "nm-key-123")]).await;
    let event = r#"{"type": "order:shipped", "id": "evt_abc123xyz", "occurred_at": "2025-01-15T10:30:00Z",
        "data": {"order_id": "ord_12345", "tracking_number": "1Z999AA10123456784", "carrier": "UPS"}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);

    let request = receiver.next().await;
    assert_eq!(request.header("x-api-key"), "nm-key-123");
    assert_eq!(keys(&request.body), ["event_id", "event_type", "timestamp", "clinic_id", "data"]);
    let body = request.body_json();
    assert_eq!(body["event_id"], "evt_abc123xyz");
    assert_eq!(body["event_type"], "order:shipped");
    assert_eq!(body["timestamp"], "2025-01-15T10:30:00Z");
    assert_eq!(body["clinic_id"], "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(body["data"]["carrier"], "UPS");
}

#[tokio::test]
async fn clinikapi_receivers_verify_the_raw_body_and_dedupe_on_the_delivery_id_across_retries() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(503)], 200)).await;
    env.write_config(&Setup {
        relay: "source = \"clinic_7f3a\"".into(),
        subscriptions: example_subscription(
            "clinikapi.toml",
            &[("url", quoted(receiver.url("/clinik"))), ("retry", "[\"0s\"]".into())],
        ),
        ..Setup::default()
    });
    let relay = env.start_with_env(&[("CLINIK_WEBHOOK_SECRET", "clinik-secret")]).await;
    let event = r#"{"type": "patient.created", "id": "pat-evt-1", "data": {"id": "pat_01", "name": "Ada"}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);

    let attempts = [receiver.next().await, receiver.next().await];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    for request in &attempts {
        assert_eq!(request.header("x-clinik-signature"), hmac_hex(b"clinik-secret", &request.body));
        let sent_at: i64 = request.header("x-clinik-timestamp").parse().unwrap();
        assert!((now - sent_at).abs() < 300, "a fresh Unix timestamp in seconds: {sent_at}");
        assert_eq!(request.header("x-clinik-event"), "patient.created");
        assert_eq!(request.header("user-agent"), "ClinikAPI-Webhooks/1.0");
        assert!(request.headers.get("x-hookrelay-attempt").is_none(), "`attempt = \"\"` drops the header");
        assert_eq!(request.body, attempts[0].body);
    }
    assert_eq!(attempts[0].header("x-clinik-delivery-id"), attempts[1].header("x-clinik-delivery-id"));
    assert_eq!(keys(&attempts[0].body), ["event_id", "event_type", "occurred_at", "clinic_id", "success", "data"]);
    let body = attempts[0].body_json();
    assert_eq!(body["success"], true);
    assert_eq!(body["clinic_id"], "clinic_7f3a");
}
