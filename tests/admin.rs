//! The admin API (SPEC §5) and the admin commands (SPEC §2) against a running relay: listing with filters
//! and paging, one delivery with its attempts, one event, requeueing, `send`, and clear errors.

mod support;

use std::process::Output;

use hookrelay::store::DeliveryId;
use serde_json::{json, Value};

use support::client::{send, Call};
use support::receiver::{always, sequence, Receiver, Reply};
use support::relay::{cli, unsigned_subscription as subscription, Setup, TestEnv};

const FAILED: &str = "Delivery failed after its last attempt; requeue it with `hookrelay retry`.";

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn a_failed_delivery_is_listed_inspected_and_requeued_with_the_cli() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(500)], 200)).await;
    env.write_config(&Setup {
        subscriptions: subscription("vet", &receiver.url("/"), "retry = []"),
        ..Setup::default()
    });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"adm-1","data":{}}"#).await.status, 202);
    relay.wait_for_log(FAILED, 1, |_| true).await;
    assert_eq!(receiver.next().await.header("x-hookrelay-attempt"), "1");

    let table = stdout(&cli(&env, &["deliveries", "--status", "failed"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row:\n{table}");
    let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
    assert_eq!(header, ["ID", "STATUS", "SUBSCRIPTION", "EVENT TYPE", "ATTEMPTS", "NEXT ATTEMPT", "LAST RESULT"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[1..5], ["failed", "vet", "lab.completed", "1"]);
    let status_column = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][status_column..status_column + 6], "failed", "columns are aligned");

    let listed: Value = serde_json::from_str(&stdout(&cli(&env, &["deliveries", "--json"]).await)).unwrap();
    let delivery = &listed["deliveries"][0];
    assert_eq!(listed["next"], Value::Null);
    assert_eq!((delivery["status"].as_str(), delivery["last_status_code"].as_u64()), (Some("failed"), Some(500)));
    let id = delivery["id"].as_str().unwrap().to_owned();

    let shown: Value = serde_json::from_str(&stdout(&cli(&env, &["delivery", &id, "--json"]).await)).unwrap();
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["response_body"], "{\"ok\":true}");
    assert!(attempts[0]["duration_ms"].is_u64());
    let human = stdout(&cli(&env, &["delivery", &id]).await);
    for field in [
        "\nstatus        failed\n",
        "\nattempts      1\n",
        "\nlast status   500\n",
        "\nevent         adm-1 (lab.completed)\n",
    ] {
        assert!(human.contains(field), "{field:?} in:\n{human}");
    }
    assert!(human.contains("\nlast error    receiver answered 500 Internal Server Error\n"), "{human}");
    assert!(human.ends_with("\nattempt 1 response body (11 bytes):\n  {\"ok\":true}\n"), "{human}");
    assert!(!human.lines().any(|line| line.starts_with("[{") || line.starts_with("{\"")), "no raw JSON: {human}");

    assert_eq!(stdout(&cli(&env, &["retry", &id]).await).trim(), format!("requeued {id}"));
    let retried = receiver.next().await;
    assert_eq!(retried.header("x-hookrelay-attempt"), "2", "attempts go on counting after a requeue");
    relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;
    let delivered = relay.admin_get("/v1/deliveries?status=delivered").await;
    assert_eq!(delivered["deliveries"][0]["id"], id.as_str());

    let again = cli(&env, &["retry", &id]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("was delivered already"));
}

#[tokio::test]
async fn retry_failed_requeues_by_subscription_and_age() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(500)).await;
    env.write_config(&Setup {
        subscriptions: subscription("a", &receiver.url("/a"), "retry = []")
            + &subscription("b", &receiver.url("/b"), "retry = []"),
        ..Setup::default()
    });
    let relay = env.start().await;
    for id in ["r1", "r2"] {
        assert_eq!(relay.post_unix(&json!({"type": "x", "id": id, "data": 1}).to_string()).await.status, 202);
    }
    relay.wait_for_log(FAILED, 4, |_| true).await;

    let output = stdout(&cli(&env, &["retry", "--failed", "--subscription", "a", "--since", "1h"]).await);
    assert_eq!(output.trim(), "requeued 2");
    relay.wait_for_log(FAILED, 6, |_| true).await;
    let failed_b = relay.admin_get("/v1/deliveries?status=failed&subscription=b").await;
    assert_eq!(failed_b["deliveries"].as_array().unwrap().len(), 2);
    let attempts_a: Vec<u64> = relay.admin_get("/v1/deliveries?subscription=a").await["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts_a, [2, 2], "only subscription a was requeued");

    let usage = cli(&env, &["retry"]).await;
    assert_eq!(usage.status.code(), Some(2), "ids or --failed are required");
}

#[tokio::test]
async fn listing_filters_and_pages_with_a_cursor() {
    let env = TestEnv::new();
    env.write_config(&Setup {
        subscriptions: subscription("held", "https://127.0.0.1:9/", "enabled = false"),
        ..Setup::default()
    });
    let relay = env.start().await;
    let batch: Vec<Value> = (0..5).map(|i| json!({"type": "x", "id": format!("p{i}"), "data": i})).collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&batch).unwrap()).await.status, 202);

    let mut seen = Vec::new();
    let mut path = "/v1/deliveries?limit=2&status=held".to_owned();
    loop {
        let page = relay.admin_get(&path).await;
        seen.extend(page["deliveries"].as_array().unwrap().iter().map(|d| d["event_id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/deliveries?limit=2&status=held&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4"], "every delivery once, in acceptance order");
    assert_eq!(relay.admin_get("/v1/deliveries?status=pending").await["deliveries"], json!([]));
    assert_eq!(relay.admin_get("/v1/deliveries?subscription=other").await["deliveries"], json!([]));

    let bad = send(&relay.unix, Call::get("/v1/deliveries?status=sent")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("`status`"));

    let event = relay.admin_get("/v1/events/p3").await;
    assert_eq!(event["data"], 3);
    assert_eq!(event["deliveries"][0]["status"], "held");
    assert_eq!(send(&relay.unix, Call::get("/v1/events/nope")).await.status, 404);
    assert_eq!(send(&relay.unix, Call::get("/v1/deliveries/dlv_nope")).await.status, 404);
}

/// A receiver's answer is shown by `delivery ID`, but escape sequences in it are shown escaped, not sent
/// to the operator's terminal (one could recolour the screen or, OSC 52, set the clipboard).
#[tokio::test]
async fn a_response_body_with_escape_sequences_is_shown_escaped() {
    let env = TestEnv::new();
    let hostile = "busy\n\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2J\u{1b}[31mall good";
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(503).with_body(hostile)], 503)).await;
    env.write_config(&Setup {
        subscriptions: subscription("vet", &receiver.url("/"), "retry = []"),
        ..Setup::default()
    });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"esc-1","data":{}}"#).await.status, 202);
    relay.wait_for_log(FAILED, 1, |_| true).await;
    let listed = relay.admin_get("/v1/deliveries?status=failed").await;
    let id = listed["deliveries"][0]["id"].as_str().unwrap().to_owned();

    let human = stdout(&cli(&env, &["delivery", &id]).await);
    assert!(!human.contains('\u{1b}') && !human.contains('\u{7}'), "{human:?}");
    let shown = "\n  busy\n  \\u{1b}]52;c;cm0gLXJmIH4=\\u{7}\\u{1b}[2J\\u{1b}[31mall good\n";
    assert!(human.ends_with(shown), "{human}");
}

/// The CLI pages with the cursor it prints, and an empty answer for a name the relay does not know says so.
#[tokio::test]
async fn the_cli_pages_with_after_and_names_unknown_subscriptions() {
    let env = TestEnv::new();
    env.write_config(&Setup {
        subscriptions: subscription("held", "https://127.0.0.1:9/", "enabled = false")
            + &subscription("quiet", "https://127.0.0.1:9/", "enabled = false"),
        ..Setup::default()
    });
    let relay = env.start().await;
    let batch: Vec<Value> = (0..5).map(|i| json!({"type": "x", "id": format!("c{i}"), "data": i})).collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&batch).unwrap()).await.status, 202);

    let (mut seen, mut pages, mut after) = (Vec::new(), 0, None::<String>);
    loop {
        let mut args = vec!["deliveries", "--limit", "2"];
        args.extend(after.iter().flat_map(|cursor| ["--after", cursor.as_str()]));
        let page = stdout(&cli(&env, &args).await);
        pages += 1;
        let mut lines = page.lines().skip(1).peekable();
        while let Some(line) = lines.next_if(|line| line.starts_with("dlv_")) {
            seen.push(line.split_whitespace().next().unwrap().to_owned());
        }
        match lines.next().and_then(|line| line.strip_prefix("next page: --after ")) {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => break,
        }
    }
    let all = relay.admin_get("/v1/deliveries?limit=100").await;
    let expected: Vec<&str> = all["deliveries"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(expected.len(), 10, "five events, two subscriptions");
    assert_eq!(seen, expected, "every delivery once, in order, by following `next page`");
    assert_eq!(pages, 5);

    let unknown = stdout(&cli(&env, &["deliveries", "--subscription", "helt"]).await);
    assert!(unknown.ends_with("\nno subscription named \"helt\"; the relay has: held, quiet\n"), "{unknown}");
    let known_but_empty = stdout(&cli(&env, &["deliveries", "--status", "failed", "--subscription", "quiet"]).await);
    assert!(!known_but_empty.contains("no subscription named"), "{known_but_empty}");
    assert_eq!(known_but_empty.lines().count(), 1, "the header alone: {known_but_empty}");
    let retried = stdout(&cli(&env, &["retry", "--failed", "--subscription", "helt"]).await);
    assert_eq!(retried, "requeued 0\nno subscription named \"helt\"; the relay has: held, quiet\n");
    let retried_known = stdout(&cli(&env, &["retry", "--failed", "--subscription", "held"]).await);
    assert_eq!(retried_known, "requeued 0\n");
}

/// `event ID` shows the data as it was stored and is sent: key order, number text and escapes kept, in
/// `--json` byte for byte and in the human view indented.
#[tokio::test]
async fn the_event_view_shows_the_stored_bytes() {
    let env = TestEnv::new();
    env.write_config(&Setup {
        subscriptions: subscription("held", "https://127.0.0.1:9/", "enabled = false"),
        ..Setup::default()
    });
    let relay = env.start().await;
    let data = r#"{"zeta":1,"amount":500.00,"note":"caf\u00e9"}"#;
    let event = format!(r#"{{"type":"lab.completed","id":"ord","data":{data}}}"#);
    assert_eq!(relay.post_unix(&event).await.status, 202);

    let raw = stdout(&cli(&env, &["event", "ord", "--json"]).await);
    assert!(raw.contains(&format!("\"data\":{data},")), "{raw}");
    let human = stdout(&cli(&env, &["event", "ord"]).await);
    assert!(human.starts_with("id           ord\ntype         lab.completed\n"), "{human}");
    assert!(human.contains("\nrouted to    held\n"), "{human}");
    let shown = format!(
        "\ndata ({} bytes, as stored):\n{{\n  \"zeta\": 1,\n  \"amount\": 500.00,\n  \"note\": \"caf\\u00e9\"\n}}\n",
        data.len()
    );
    assert!(human.contains(&shown), "{human}");
    let row = human.lines().last().unwrap();
    assert!(row.starts_with("dlv_") && row.contains(" held "), "its delivery: {human}");

    // JSON lets a raw DEL or C1 control (U+009B is CSI) stand in a string: shown escaped.
    assert_eq!(relay.post_unix("{\"type\":\"x\",\"id\":\"c1\",\"data\":{\"a\":\"\u{9b}2J\"}}").await.status, 202);
    let control = stdout(&cli(&env, &["event", "c1"]).await);
    assert!(!control.contains('\u{9b}') && control.contains("\"a\": \"\\u{9b}2J\""), "{control:?}");

    assert!(stdout(&cli(&env, &["erase", "ord"]).await).contains("erased"));
    let erased = stdout(&cli(&env, &["event", "ord"]).await);
    assert!(erased.contains("\ndata: erased at 20"), "{erased}");
    assert!(!erased.contains("500.00"), "{erased}");
}

#[tokio::test]
async fn admin_routes_answer_404_on_the_tcp_listener() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"x","id":"t1","data":1}"#).await.status, 202);
    for path in ["/v1/deliveries", "/v1/events/t1", "/v1/deliveries/retry", "/v1/subscriptions", "/v1/quarantine"] {
        assert_eq!(send(relay.tcp(), Call::get(path)).await.status, 404, "{path} on TCP");
    }
    let pause = Call::post("/v1/subscriptions/all/pause", "");
    assert_eq!(send(relay.tcp(), pause).await.status, 404, "pause on TCP");
    assert_eq!(send(&relay.unix, Call::get("/v1/events/t1")).await.status, 200);
}

#[tokio::test]
async fn send_submits_json_a_file_or_stdin_and_prints_the_id() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let relay = env.start().await;

    let assigned = stdout(&cli(&env, &["send", "appointment.created", r#"{"patient":{"fp":"p1"}}"#]).await);
    let assigned = assigned.trim();
    assert!(assigned.starts_with("evt_"), "{assigned}");
    assert_eq!(relay.admin_get(&format!("/v1/events/{assigned}")).await["data"], json!({"patient": {"fp": "p1"}}));

    let file = env.dir.path().join("data.json");
    std::fs::write(&file, "[1, 2]").unwrap();
    let from_file =
        stdout(&cli(&env, &["send", "lab.completed", &format!("@{}", file.display()), "--id", "f-1"]).await);
    assert_eq!(from_file.trim(), "f-1");
    assert_eq!(relay.admin_get("/v1/events/f-1").await["data"], json!([1, 2]));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args(["send", "soap.signed", "-", "--id", "s-1", "-c"])
        .arg(env.config_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    child.stdin.take().unwrap().write_all(b"{\"from\": \"stdin\"}").await.unwrap();
    assert_eq!(stdout(&child.wait_with_output().await.unwrap()).trim(), "s-1");
    assert_eq!(relay.admin_get("/v1/events/s-1").await["data"], json!({"from": "stdin"}));

    let invalid = cli(&env, &["send", "bad type", "{}"]).await;
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("`type`"), "the relay's message is shown");
}

#[tokio::test]
async fn admin_commands_say_which_socket_they_could_not_reach() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let output = cli(&env, &["deliveries"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&env.socket().display().to_string()), "{stderr}");
    assert!(stderr.contains("is hookrelay running?"), "{stderr}");
}

#[tokio::test]
async fn a_removed_subscription_s_cancelled_deliveries_can_be_requeued_when_it_comes_back() {
    let env = TestEnv::new();
    let (down, up) = (Receiver::start(&env.ca, always(503)).await, Receiver::start(&env.ca, always(200)).await);
    let patient = format!("retry = [{}]", vec!["\"100ms\""; 100].join(", "));
    env.write_config(&Setup { subscriptions: subscription("vet", &down.url("/"), &patient), ..Setup::default() });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"x","id":"back-1","data":1}"#).await.status, 202);
    relay.wait_for_log("Delivery attempt failed; will retry.", 1, |_| true).await;

    env.save_by_rename(&Setup::default());
    // Cancelled at the end of the grace period (none in tests), or after an attempt in flight then ends.
    relay.wait_for_log("Removed subscription's queued deliveries cancelled.", 1, |line| line["cancelled"] == 1).await;
    let cancelled = relay.admin_get("/v1/deliveries?status=cancelled").await;
    assert_eq!(cancelled["deliveries"][0]["event_id"], "back-1");

    env.save_by_rename(&Setup { subscriptions: subscription("vet", &up.url("/"), ""), ..Setup::default() });
    relay.wait_for_log("Config reloaded.", 2, |_| true).await;
    let call = Call::post("/v1/deliveries/retry", r#"{"status": "cancelled", "subscription": "vet"}"#);
    let answer = send(&relay.unix, call).await;
    assert_eq!(answer.json(), json!({"requeued": 1}));
    let request = up.next().await;
    assert_eq!(request.header("webhook-id"), "back-1");
    let made_before = cancelled["deliveries"][0]["attempts"].as_u64().unwrap();
    assert_eq!(request.header("x-hookrelay-attempt"), (made_before + 1).to_string(), "numbering goes on");
}

/// SPEC §2 and §5: `resend` sends a finished delivery again (same `webhook-id`, same bytes, a new delivery
/// id); `erase` removes an event's data and its stored response bodies and cancels its pending deliveries,
/// keeping ids, types and statuses.
#[tokio::test]
async fn resend_repeats_a_delivery_and_erase_removes_the_data_and_cancels_what_is_pending() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: subscription("vet", &receiver.url("/"), "")
            + &subscription("held", &receiver.url("/"), "enabled = false"),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    let event = r#"{"type":"lab.completed","id":"e-1","data":{"patient":{"name":"Jane-Marker"},"b":1.50}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);
    let first = receiver.next().await;
    relay.wait_for_log("Delivery succeeded.", 1, |_| true).await;
    let deliveries = relay.admin_get("/v1/events/e-1").await["deliveries"].clone();
    let id_of = |name: &str| {
        let found = deliveries.as_array().unwrap().iter().find(|d| d["subscription"] == name).unwrap();
        found["id"].as_str().unwrap().to_owned()
    };
    let (delivered, pending) = (id_of("vet"), id_of("held"));

    let resent = stdout(&cli(&env, &["resend", &delivered]).await);
    let again = receiver.next().await;
    assert_eq!(again.header("webhook-id"), "e-1");
    assert_eq!(again.body, first.body, "the same bytes");
    let fresh = again.header("x-hookrelay-delivery").to_owned();
    assert_ne!(fresh, delivered);
    assert_eq!(resent.trim(), format!("{delivered}: resent as {fresh}"));
    relay.wait_for_log("Delivery succeeded.", 2, |_| true).await;
    let refused = cli(&env, &["resend", &pending]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is pending"), "{refused:?}");

    let erased = stdout(&cli(&env, &["erase", "e-1"]).await);
    assert_eq!(erased.trim(), "e-1: erased; 1 pending deliveries cancelled");
    let shown = relay.admin_get("/v1/events/e-1").await;
    assert_eq!(shown["data"], Value::Null);
    assert!(shown["erased_at"].is_string(), "{shown}");
    let statuses: Vec<_> = shown["deliveries"].as_array().unwrap().iter().map(|d| d["status"].clone()).collect();
    assert_eq!(statuses, [json!("delivered"), json!("cancelled"), json!("delivered")], "{shown}");
    let attempts = relay.admin_get(&format!("/v1/deliveries/{delivered}")).await["attempts"].clone();
    assert_eq!(attempts[0]["response_body"], Value::Null, "no stored response body is left");
    for (args, why) in [(["resend", &delivered], "erased"), (["retry", &pending], "erased")] {
        let refused = cli(&env, &args).await;
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains(why), "{args:?}: {refused:?}");
    }
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let db = sled::open(env.state_dir()).unwrap();
    for entry in db.iter() {
        let (key, value) = entry.unwrap();
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains("Jane-Marker"), "erased data is left under {key:?}");
        assert!(!text.contains("{\"ok\":true}"), "a response body is left under {key:?}");
    }
}

/// Every page of one status, through the cursor: the ids in the order listed.
async fn listed_ids(relay: &support::relay::RelayProcess, status: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = relay.admin_get(&format!("/v1/deliveries?status={status}&limit=3{after}")).await;
        for delivery in page["deliveries"].as_array().unwrap() {
            assert_eq!(delivery["status"], status, "{page}");
            ids.push(delivery["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return ids,
        }
    }
}

/// Issue 14 #6: listings of one status read the status index (failed, cancelled) or the queues (pending,
/// held) instead of every delivery; each must list exactly what a scan of everything shows, in the same
/// order and across pages. An index that differs from the deliveries is corrected at start (a store made
/// before the index gets one by its format upgrade: `tests/store_format.rs`).
#[tokio::test]
async fn status_listings_match_a_full_scan_and_a_wrong_index_is_corrected_at_start() {
    let env = TestEnv::new();
    let ok = Receiver::start(&env.ca, always(200)).await;
    let bad = Receiver::start(&env.ca, always(500)).await;
    env.write_config(&Setup {
        subscriptions: subscription("ok", &ok.url("/"), "")
            + &subscription("bad", &bad.url("/"), "retry = []")
            + &subscription("slow", &bad.url("/"), "retry = [\"1h\"]")
            + &subscription("held", &ok.url("/"), "enabled = false"),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    let batch: Vec<Value> = (0..7).map(|i| json!({"type": "x", "id": format!("s{i}"), "data": i})).collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&batch).unwrap()).await.status, 202);
    relay.wait_for_log("Delivery succeeded.", 7, |_| true).await;
    relay.wait_for_log(FAILED, 7, |_| true).await;
    for id in ["s1", "s4"] {
        stdout(&cli(&env, &["erase", id]).await);
    }

    let expect = |all: &Value, status: &str| -> Vec<String> {
        let all = all["deliveries"].as_array().unwrap();
        all.iter().filter(|d| d["status"] == status).map(|d| d["id"].as_str().unwrap().to_owned()).collect()
    };
    let statuses = ["pending", "held", "delivered", "failed", "cancelled"];
    let all = relay.admin_get("/v1/deliveries?status=all&limit=1000").await;
    let counts: Vec<usize> = statuses.iter().map(|status| expect(&all, status).len()).collect();
    assert_eq!(counts, [5, 5, 7, 7, 4], "slow and held lose s1 and s4 to erase:\n{all}");
    for status in statuses {
        assert_eq!(listed_ids(&relay, status).await, expect(&all, status), "{status}");
    }
    let one_failed = relay.admin_get("/v1/deliveries?status=failed&subscription=bad&limit=1").await;
    assert_eq!(one_failed["deliveries"][0]["id"], expect(&all, "failed")[0].as_str());
    assert!(one_failed["next"].is_string());

    // A stale entry (a delivered delivery listed as failed) and a missing one are corrected at start.
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let delivered = DeliveryId::parse(&expect(&all, "delivered")[0]).unwrap();
    let failed = DeliveryId::parse(&expect(&all, "failed")[0]).unwrap();
    with_sled(&env, |db| {
        let entry = |status: &[u8], id: DeliveryId| [status, &id.0 .0.to_be_bytes()[..]].concat();
        db.insert(entry(b"sf", delivered), &[]).unwrap();
        db.remove(entry(b"sf", failed)).unwrap().expect("the failed delivery's entry");
    });
    let relay = env.start().await;
    let corrected = relay
        .wait_for_log(
            "Status index of failed and cancelled deliveries corrected: it did not match the deliveries.",
            1,
            |_| true,
        )
        .await;
    assert_eq!((corrected["added"].as_u64(), corrected["removed"].as_u64()), (Some(1), Some(1)), "{corrected}");
    for status in ["failed", "cancelled"] {
        assert_eq!(listed_ids(&relay, status).await, expect(&all, status), "{status} after the correction");
    }
}

/// Runs `change` on the stopped relay's database, opened with sled directly, and flushes it.
fn with_sled<T>(env: &TestEnv, change: impl FnOnce(&sled::Db) -> T) -> T {
    let db = sled::open(env.state_dir()).unwrap();
    let result = change(&db);
    db.flush().unwrap();
    result
}
