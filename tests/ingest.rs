//! The ingest API (SPEC §4) through the real binary: answers, every rejection with its JSON error body,
//! idempotency, capacity, health and readiness; and that nothing refused reaches the store.

mod support;

use http::Method;
use serde_json::json;

use support::client::{send, Call};
use support::receiver::{always, Receiver};
use support::relay::{catch_all, deliveries, Setup, TestEnv};

#[tokio::test]
async fn every_rejection_answers_its_status_and_stores_nothing() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        ingest: "token = \"t0ken\"\nmax_body_bytes = 1024".into(),
        subscriptions: catch_all(&receiver.url("/hook")),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    let unix = relay.unix.clone();
    let tcp = relay.tcp().clone();

    let invalid = [
        (r#"{"type": "a", "id": "r-json", "data": "#, "body is not valid JSON"),
        (r#"{"type": "a", "id": "r-data"}"#, "`data` is required"),
        (r#"{"type": "no spaces", "id": "r-type", "data": 1}"#, "`type`"),
        (r#"{"type": "a", "id": "r-when", "occurred_at": "soon", "data": 1}"#, "`occurred_at`"),
        (r#"{"type": "a", "id": "r-extra", "data": 1, "patient": "x"}"#, "has an unknown field (at column 51"),
        (r#"[{"type": "a", "id": "r-batch-ok", "data": 1}, {"type": "b", "id": "r-batch-bad"}]"#, "`[1].data`"),
        ("[]", "at least one event"),
    ];
    for (body, named) in invalid {
        let answer = send(&unix, Call::events(body)).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.error_code(), "invalid_event");
        assert!(answer.error_message().contains(named), "{body}: {:?} should name {named}", answer.error_message());
    }

    let event = r#"{"type": "a", "id": "r-auth", "data": 1}"#;
    let unauthorized = send(&tcp, Call::events(event)).await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.error_code(), "unauthorized");
    assert_eq!(unauthorized.headers["www-authenticate"], "Bearer");
    let wrong = send(&tcp, Call::events(event).header("authorization", "Bearer t0ken-not")).await;
    assert_eq!(wrong.status, 401);

    let get = send(&unix, Call::events(event).method(Method::GET)).await;
    assert_eq!(get.status, 405);
    assert_eq!(get.headers["allow"], "POST");
    assert_eq!(get.error_code(), "method_not_allowed");
    let control = send(&unix, Call::events(event)).await;
    assert_eq!(control.status, 202, "the same event with POST on the unix socket is accepted");
    let missing = send(&tcp, Call::get("/v1/nothing-here")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");

    let big = format!(r#"{{"type": "a", "id": "r-big", "data": "{}"}}"#, "x".repeat(2000));
    let too_large = send(&unix, Call::events(big)).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.error_code(), "payload_too_large");

    let as_text =
        send(&unix, Call::events(r#"{"type":"a","id":"r-text","data":1}"#).header("content-type", "text/plain")).await;
    assert_eq!(as_text.status, 415);
    assert_eq!(as_text.error_code(), "unsupported_media_type");

    let conflict = send(&unix, Call::events(r#"{"type": "a", "id": "r-auth", "data": 2}"#)).await;
    assert_eq!(conflict.status, 409, "r-auth was accepted above with data 1");
    assert_eq!(conflict.error_code(), "conflict");

    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let store = env.store();
    for id in ["r-json", "r-data", "r-type", "r-when", "r-extra", "r-batch-ok", "r-batch-bad", "r-big", "r-text"] {
        assert!(store.event(id).unwrap().is_none(), "refused event {id} was stored");
    }
    let stored = deliveries(&store);
    assert_eq!(stored.len(), 1, "only the control event has a delivery: {stored:?}");
    assert_eq!(stored[0].event_id, "r-auth");
}

#[tokio::test]
async fn the_tcp_listener_accepts_the_right_token_and_the_unix_socket_needs_none() {
    let env = TestEnv::new();
    env.write_config(&Setup { ingest: "token = \"t0ken\"".into(), ..Setup::default() });
    let relay = env.start().await;
    let with_token = Call::events(r#"{"type":"a","data":1}"#).header("authorization", "Bearer t0ken");
    assert_eq!(send(relay.tcp(), with_token).await.status, 202);
    assert_eq!(relay.post_unix(r#"{"type":"a","data":1}"#).await.status, 202);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(send(relay.tcp(), Call::get(path)).await.status, 200, "{path} needs no token");
    }
}

#[tokio::test]
async fn a_repeated_id_gets_the_original_answer_and_no_new_delivery() {
    let (env, receiver) = TestEnv::with_catch_all().await;
    let mut relay = env.start().await;

    let event = r#"{"type": "patient.updated", "id": "pu-1", "data": {"fp": "p_9"}}"#;
    let first = relay.post_unix(event).await;
    assert_eq!(first.status, 202);
    // Whitespace does not make a different body: the event is compared as compact JSON.
    let again = relay.post_unix(r#"{"type":"patient.updated","id":"pu-1","data":{"fp":"p_9"}}"#).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first.json());

    let batch =
        r#"[{"type":"patient.updated","id":"pu-1","data":{"fp":"p_9"}},{"type":"lab.completed","id":"lc-1","data":2}]"#;
    let mixed = relay.post_unix(batch).await;
    assert_eq!(mixed.status, 202, "one event of the batch is new");
    assert_eq!(
        mixed.json(),
        json!([{"id": "pu-1", "subscriptions": ["all"]}, {"id": "lc-1", "subscriptions": ["all"]}])
    );

    relay.wait_for_log("Delivery succeeded.", 2, |_| true).await;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let store = env.store();
    let ids: Vec<_> = deliveries(&store).into_iter().map(|d| d.event_id).collect();
    assert_eq!(ids, ["pu-1", "lc-1"], "one delivery per event, none for the repeats");
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn concurrent_repeats_of_one_id_store_one_event_and_agree_on_the_winner() {
    let (env, receiver) = TestEnv::with_catch_all().await;
    let mut relay = env.start().await;

    const ROUNDS: usize = 6;
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        // Sent at once, so that repeats are decided while the first is queued for the store.
        let id = format!("race-{round}");
        let bodies = ["A", "B"].map(|data| json!({"type": "a", "id": id, "data": data}).to_string());
        let mut posts = tokio::task::JoinSet::new();
        for n in 0..48 {
            let (unix, body) = (relay.unix.clone(), bodies[n % 2].clone());
            posts.spawn(async move { (body.clone(), send(&unix, Call::events(body)).await) });
        }
        let answers = posts.join_all().await;
        let won: Vec<&String> = answers.iter().filter(|(_, a)| a.status == 202).map(|(body, _)| body).collect();
        assert_eq!(won.len(), 1, "{id}: exactly one request stored the event");
        for (body, answer) in &answers {
            match answer.status.as_u16() {
                202 => {}
                200 => {
                    assert_eq!(body, won[0], "{id}: only the winner's body is a repeat");
                    assert_eq!(answer.json(), json!({"id": id, "subscriptions": ["all"]}));
                }
                409 => assert_ne!(body, won[0], "{id}: only the other body conflicts"),
                other => panic!("{id}: {other}: {}", String::from_utf8_lossy(&answer.body)),
            }
        }
        winners.push(serde_json::from_str::<serde_json::Value>(won[0]).unwrap());
    }

    for _ in 0..ROUNDS {
        let delivered = receiver.next().await.body_json();
        let winner = winners.iter().find(|w| w["id"] == delivered["id"]).expect("a winner");
        assert_eq!(delivered["data"], winner["data"], "the stored event is the winner's");
    }
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let stored = deliveries(&env.store());
    assert_eq!(stored.len(), ROUNDS, "one delivery per id: {stored:?}");
    assert_eq!(receiver.count(), ROUNDS);
}

#[tokio::test]
async fn events_whose_producers_hang_up_while_they_are_stored_are_still_delivered() {
    use tokio::io::AsyncWriteExt;
    let (env, receiver) = TestEnv::with_catch_all().await;
    let relay = env.start().await;
    let support::client::Target::Unix(socket) = &relay.unix else { unreachable!() };

    let body = |n: usize| format!(r#"{{"type":"lab.completed","id":"hung-up-{n}","data":{n}}}"#);
    for n in 0..20 {
        // The whole request, then the write side closed at once: the relay sees the end of the
        // connection while the event waits for its commit.
        let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let body = body(n);
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    }
    // Once a producer that stayed is answered, each event is durable, from its own request or from the
    // one that hung up; either way it must be delivered now, not after a restart.
    for n in 0..20 {
        let answer = relay.post_unix(&body(n)).await;
        assert!(answer.status == 200 || answer.status == 202, "{}", answer.status);
    }
    let mut delivered = std::collections::BTreeSet::new();
    while delivered.len() < 20 {
        delivered.insert(receiver.next().await.header("webhook-id").to_owned());
    }
}

#[tokio::test]
async fn an_event_matching_nothing_is_accepted_with_no_delivery() {
    let env = TestEnv::new();
    env.write_config(&Setup {
        subscriptions: "[[subscription]]\nname = \"labs\"\nurl = \"https://127.0.0.1:9/x\"\nevents = [\"lab.*\"]\n\
                        signature = \"none\"\n"
            .into(),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    let answer = relay.post_unix(r#"{"type":"invoice.paid","id":"inv-1","data":{}}"#).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.json(), json!({"id": "inv-1", "subscriptions": []}));
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let store = env.store();
    assert!(store.event("inv-1").unwrap().is_some(), "stored although nobody subscribes");
    assert!(deliveries(&store).is_empty());
}

#[tokio::test]
async fn max_pending_answers_503_with_retry_after_until_deliveries_finish() {
    let env = TestEnv::new();
    let receiver = Receiver::start_holding(&env.ca, always(200)).await;
    env.write_config(&Setup {
        relay: "max_pending = 2".into(),
        subscriptions: catch_all(&receiver.url("/hook")),
        ..Setup::default()
    });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"a","data":1}"#).await.status, 202);
    let over = relay.post_unix(r#"[{"type":"a","id":"over-1","data":2},{"type":"a","id":"over-2","data":3}]"#).await;
    assert_eq!(over.status, 503, "1 unfinished + 2 would pass max_pending = 2");
    assert_eq!(over.error_code(), "backlog_full");
    assert!(over.headers.contains_key("retry-after"));
    assert_eq!(relay.post_unix(r#"{"type":"a","data":4}"#).await.status, 202, "exactly max_pending fits");

    receiver.next().await;
    receiver.next().await;
    receiver.release(2);
    relay.wait_for_log("Delivery succeeded.", 2, |_| true).await;
    assert_eq!(relay.post_unix(r#"{"type":"a","data":5}"#).await.status, 202, "room again once delivered");
}

#[tokio::test]
async fn health_and_readiness_answer_on_both_listeners() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let relay = env.start().await;
    for target in [&relay.unix, relay.tcp()] {
        let health = send(target, Call::get("/healthz")).await;
        assert_eq!((health.status.as_u16(), health.json()), (200, json!({"status": "ok"})));
        let ready = send(target, Call::get("/readyz")).await;
        assert_eq!((ready.status.as_u16(), ready.json()), (200, json!({"status": "ready"})));
        assert_eq!(send(target, Call::get("/healthz").method(Method::POST)).await.status, 405);
    }
}
