//! `GET /metrics` as scrapers see it (SPEC §4, §7), through the real binary: the classic text format to
//! those that ask for `text/plain` (and to curl), OpenMetrics to those that ask for it, accepted by
//! `promtool check metrics`; every series there from start at zero; unrouted events counted; refused
//! ingest requests logged at DEBUG by reason, never with their body.

mod support;

use std::collections::HashMap;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use support::client::{send, Call};
use support::relay::{RelayProcess, Setup, TestEnv};
use support::within;

/// What Prometheus 2.x sends by default: OpenMetrics first.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Stands for patient data in bodies: it must never reach the log.
const PATIENT_DATA: &str = "Bella Rossi, 12 Via Roma";

/// Every `reason` ingest can refuse a request for (SPEC §4's error codes).
const REASONS: [&str; 9] = [
    "unauthorized",
    "unsupported_media_type",
    "payload_too_large",
    "bad_request",
    "request_timeout",
    "invalid_event",
    "conflict",
    "backlog_full",
    "store_unavailable",
];

const OUTCOMES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "error"];

/// A subscription to `lab.*` events at an address nothing listens on (no test here delivers).
fn lab_subscription(name: &str) -> String {
    format!(
        "[[subscription]]\nname = \"{name}\"\nurl = \"https://127.0.0.1:9/\"\nevents = [\"lab.*\"]\nsignature = \"none\"\n"
    )
}

fn setup(names: &[&str]) -> Setup {
    Setup {
        subscriptions: names.iter().copied().map(lab_subscription).collect(),
        // The unrouted and refused lines are at DEBUG.
        log_level: "info,hookrelay::ingest=debug",
        ..Setup::default()
    }
}

/// `GET /metrics` on the TCP listener, with `accept` when given: (content type, body).
async fn scrape(relay: &RelayProcess, accept: Option<&str>) -> (String, String) {
    let mut call = Call::get("/metrics");
    if let Some(accept) = accept {
        call = call.header("accept", accept);
    }
    let answer = send(relay.tcp(), call).await;
    assert_eq!(answer.status, 200);
    let content_type = answer.headers["content-type"].to_str().unwrap().to_owned();
    (content_type, String::from_utf8(answer.body.to_vec()).unwrap())
}

/// Every sample line as `name{labels}` → value.
fn samples(exposition: &str) -> HashMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no sample `{series}` in {samples:#?}"))
}

#[tokio::test]
async fn text_plain_gets_the_classic_format_and_openmetrics_gets_openmetrics() {
    let env = TestEnv::new();
    env.write_config(&setup(&["vet"]));
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":1}"#).await.status, 202);

    // curl sends `*/*`; a bare HTTP client sends no Accept: both are answered as text/plain is.
    for accept in [Some("text/plain"), Some("text/plain; version=0.0.4"), Some("*/*"), None] {
        let (content_type, text) = scrape(&relay, accept).await;
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{accept:?}: {content_type}");
        assert!(text.contains("# HELP hookrelay_events_accepted_total "), "{accept:?}:\n{text}");
        assert!(text.contains("# TYPE hookrelay_events_accepted_total counter\n"), "{accept:?}:\n{text}");
        assert!(text.contains("# TYPE hookrelay_delivery_attempts_total counter\n"), "{accept:?}:\n{text}");
        assert!(text.contains("# TYPE hookrelay_events_rejected_total counter\n"), "{accept:?}:\n{text}");
        assert!(!text.contains("# TYPE hookrelay_events_accepted counter"), "{accept:?}:\n{text}");
        assert!(!text.contains("# EOF"), "{accept:?}:\n{text}");
        assert!(!text.contains("# UNIT"), "{accept:?}:\n{text}");
        assert_eq!(value(&samples(&text), "hookrelay_events_accepted_total"), 1.0);
    }

    for accept in [PROMETHEUS_ACCEPT, "application/openmetrics-text"] {
        let (content_type, text) = scrape(&relay, Some(accept)).await;
        assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"), "{accept}: {content_type}");
        assert!(text.contains("# TYPE hookrelay_events_accepted counter\n"), "{accept}:\n{text}");
        assert!(text.ends_with("# EOF\n"), "{accept}:\n{text}");
        assert_eq!(value(&samples(&text), "hookrelay_events_accepted_total"), 1.0);
    }
}

/// `promtool` from PATH, or `None` (with a note) when it is not installed. CI installs it (.ci/run), so
/// there a missing promtool fails the test rather than skipping the check.
fn promtool() -> Option<&'static str> {
    match std::process::Command::new("promtool").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => Some("promtool"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed, and CI must run it: apt-get install prometheus (.ci/run does)"
            );
            eprintln!(
                "promtool is not on PATH (Debian: apt-get install prometheus): skipping `promtool check metrics`"
            );
            None
        }
        Err(error) => panic!("cannot run promtool: {error}"),
    }
}

#[tokio::test]
async fn promtool_check_metrics_passes_on_the_classic_format() {
    let Some(promtool) = promtool() else { return };
    let env = TestEnv::new();
    env.write_config(&setup(&["vet", "lab"]));
    let relay = env.start().await;
    // Some of everything: a delivered-nowhere event, an attempted one (refused connection), a refusal.
    assert_eq!(relay.post_unix(r#"{"type":"billing.paid","data":1}"#).await.status, 202);
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":1}"#).await.status, 202);
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed"}"#).await.status, 400);

    let (_, text) = scrape(&relay, Some("text/plain")).await;
    let mut check = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = check.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = within("promtool to finish", check.wait_with_output()).await.unwrap();
    let problems = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && problems.trim().is_empty(), "{}: {problems}\n{text}", output.status);
}

#[tokio::test]
async fn every_series_is_there_at_zero_from_start_and_after_a_reload() {
    let env = TestEnv::new();
    env.write_config(&setup(&["vet", "lab"]));
    let relay = env.start().await;

    let (_, text) = scrape(&relay, Some("text/plain")).await;
    let at_start = samples(&text);
    for subscription in ["vet", "lab"] {
        for outcome in OUTCOMES {
            let series =
                format!("hookrelay_delivery_attempts_total{{subscription=\"{subscription}\",outcome=\"{outcome}\"}}");
            assert_eq!(value(&at_start, &series), 0.0);
        }
        for status in ["pending", "held", "failed"] {
            let series = format!("hookrelay_deliveries{{subscription=\"{subscription}\",status=\"{status}\"}}");
            assert_eq!(value(&at_start, &series), 0.0);
        }
        let paused = format!("hookrelay_subscription_paused{{subscription=\"{subscription}\"}}");
        assert_eq!(value(&at_start, &paused), 0.0);
    }
    for reason in REASONS {
        assert_eq!(value(&at_start, &format!("hookrelay_events_rejected_total{{reason=\"{reason}\"}}")), 0.0);
    }
    for outcome in ["applied", "rejected"] {
        assert_eq!(value(&at_start, &format!("hookrelay_config_reloads_total{{outcome=\"{outcome}\"}}")), 0.0);
    }
    assert_eq!(value(&at_start, "hookrelay_events_accepted_total"), 0.0);
    assert_eq!(value(&at_start, "hookrelay_events_unrouted_total"), 0.0);
    let build = format!("hookrelay_build_info{{version=\"{}\",commit=\"", env!("CARGO_PKG_VERSION"));
    let build_info: Vec<_> = at_start.iter().filter(|(series, _)| series.starts_with(&build)).collect();
    assert_eq!(build_info.len(), 1, "one build_info series with the version:\n{text}");
    assert_eq!(*build_info[0].1, 1.0);

    env.save_by_rename(&setup(&["vet", "lab", "added"]));
    relay.wait_for_log("Config reloaded.", 1, |_| true).await;
    let (_, text) = scrape(&relay, Some("text/plain")).await;
    let after_reload = samples(&text);
    for outcome in OUTCOMES {
        let series = format!("hookrelay_delivery_attempts_total{{subscription=\"added\",outcome=\"{outcome}\"}}");
        assert_eq!(value(&after_reload, &series), 0.0);
    }
    assert_eq!(value(&after_reload, "hookrelay_deliveries{subscription=\"added\",status=\"pending\"}"), 0.0);
    assert_eq!(value(&after_reload, "hookrelay_config_reloads_total{outcome=\"applied\"}"), 1.0);
}

#[tokio::test]
async fn an_event_that_matches_no_subscription_is_counted_and_logged_without_its_data() {
    let env = TestEnv::new();
    env.write_config(&setup(&["vet"]));
    let relay = env.start().await;
    let body = format!(r#"{{"type":"billing.paid","id":"evt-nowhere","data":{{"owner":"{PATIENT_DATA}"}}}}"#);

    let answer = relay.post_unix(&body).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.json()["subscriptions"], serde_json::json!([]));
    let line = relay.wait_for_log("Event matched no subscription.", 1, |_| true).await;
    assert_eq!(line["level"], "DEBUG", "{line}");
    assert_eq!(line["event_id"], "evt-nowhere", "{line}");
    assert_eq!(line["event_type"], "billing.paid", "{line}");
    // A repeat of the id is answered 200 and is not a second unrouted event.
    assert_eq!(relay.post_unix(&body).await.status, 200);
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":1}"#).await.status, 202);

    let (_, text) = scrape(&relay, Some("text/plain")).await;
    let metrics = samples(&text);
    assert_eq!(value(&metrics, "hookrelay_events_unrouted_total"), 1.0);
    assert_eq!(value(&metrics, "hookrelay_events_accepted_total"), 2.0);
    let logged = relay.logs();
    assert_eq!(logged.iter().filter(|l| l["message"] == "Event matched no subscription.").count(), 1);
    assert_no_patient_data(&logged);
}

#[tokio::test]
async fn a_refused_request_is_logged_at_debug_with_its_reason_and_never_its_body() {
    let env = TestEnv::new();
    env.write_config(&setup(&["vet"]));
    let relay = env.start().await;

    let bad_json = format!(r#"{{"type":"lab.completed","data":{{"owner":"{PATIENT_DATA}"}}"#);
    let answer = relay.post_unix(&bad_json).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_code(), "invalid_event");
    let line = relay.wait_for_log("Ingest request refused.", 1, |l| l["reason"] == "invalid_event").await;
    assert_eq!(line["level"], "DEBUG", "{line}");
    assert_eq!(line["status"], 400, "{line}");
    assert_eq!(line["listener"], "Unix", "{line}");
    assert_only_reason_fields(&line);

    let not_json = Call::events(format!("owner={PATIENT_DATA}")).header("content-type", "text/plain");
    let answer = send(relay.tcp(), not_json).await;
    assert_eq!(answer.status, 415);
    let line = relay.wait_for_log("Ingest request refused.", 1, |l| l["reason"] == "unsupported_media_type").await;
    assert_eq!(line["status"], 415, "{line}");
    assert_eq!(line["listener"], "Tcp", "{line}");
    assert_only_reason_fields(&line);

    let (_, text) = scrape(&relay, Some("text/plain")).await;
    let metrics = samples(&text);
    assert_eq!(value(&metrics, "hookrelay_events_rejected_total{reason=\"invalid_event\"}"), 1.0);
    assert_eq!(value(&metrics, "hookrelay_events_rejected_total{reason=\"unsupported_media_type\"}"), 1.0);
    assert_no_patient_data(&relay.logs());
}

fn assert_no_patient_data(lines: &[Value]) {
    for line in lines {
        assert!(!line.to_string().contains(PATIENT_DATA), "a body reached the log: {line}");
    }
}

/// A refusal's line says why by its reason alone: no message (one about the body may quote it), no body.
fn assert_only_reason_fields(line: &Value) {
    let mut fields: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["level", "listener", "message", "reason", "status", "timestamp"], "{line}");
}
