//! Hot reload (SPEC §7) against a running relay and real HTTPS receivers: saves by rename and in place,
//! a symlinked config, SIGHUP, invalid files, removed and disabled subscriptions.

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use hookrelay::store::DeliveryStatus;
use serde_json::{json, Value};

use support::receiver::{always, Receiver};
use support::relay::{deliveries, RelayProcess, Setup, TestEnv};

const RELOADED: &str = "Config reloaded.";

/// A subscription to every event; see [`subscription_to`].
fn subscription(name: &str, url: &str, extra: &str) -> String {
    subscription_to(name, url, "*", extra)
}

fn subscription_to(name: &str, url: &str, events: &str, extra: &str) -> String {
    format!("[[subscription]]\nname = \"{name}\"\nurl = \"{url}\"\nevents = [\"{events}\"]\nsignature = \"none\"\n{extra}\n")
}

fn setup(subscriptions: String) -> Setup {
    Setup { subscriptions, ..Setup::default() }
}

/// A retry schedule long enough that nothing ends `failed` during a test.
fn patient_retry() -> String {
    format!("retry = [{}]", vec!["\"100ms\""; 100].join(", "))
}

async fn post(relay: &RelayProcess, id: &str) {
    let answer = relay.post_unix(&json!({"type": "lab.completed", "id": id, "data": {"n": id}}).to_string()).await;
    assert_eq!(answer.status, 202, "{id}: {:?}", answer.body);
}

/// Waits for the n-th reload and returns its log line.
async fn reloaded(relay: &RelayProcess, n: usize) -> Value {
    relay.wait_for_log(RELOADED, n, |_| true).await
}

#[tokio::test]
async fn a_subscription_added_by_a_rename_replace_save_gets_the_next_event() {
    let env = TestEnv::new();
    let (first, second) = (Receiver::start(&env.ca, always(200)).await, Receiver::start(&env.ca, always(200)).await);
    env.write_config(&setup(subscription("first", &first.url("/"), "")));
    let relay = env.start().await;
    post(&relay, "before").await;
    assert_eq!(first.next().await.header("webhook-id"), "before");

    env.save_by_rename(&setup(
        subscription("first", &first.url("/"), "") + &subscription("second", &second.url("/"), ""),
    ));
    let line = reloaded(&relay, 1).await;
    assert_eq!(line["added"], "[\"second\"]");
    assert_eq!(line["removed"], "[]");
    post(&relay, "after").await;
    assert_eq!(second.next().await.header("webhook-id"), "after");
    assert_eq!(first.next().await.header("webhook-id"), "after");
}

#[tokio::test]
async fn queued_deliveries_go_to_the_new_url_once_it_is_saved() {
    let env = TestEnv::new();
    let (down, up) = (Receiver::start(&env.ca, always(503)).await, Receiver::start(&env.ca, always(200)).await);
    env.write_config(&setup(subscription("vet", &down.url("/"), &patient_retry())));
    let relay = env.start().await;
    for id in ["q1", "q2", "q3"] {
        post(&relay, id).await;
    }
    relay.wait_for_log("Delivery attempt failed; will retry.", 3, |_| true).await;

    env.write_config(&setup(subscription("vet", &up.url("/"), &patient_retry())));
    assert_eq!(reloaded(&relay, 1).await["changed"], "[\"vet\"]");
    let mut arrived = BTreeSet::new();
    while arrived.len() < 3 {
        arrived.insert(up.next().await.header("webhook-id").to_owned());
    }
    assert_eq!(arrived, BTreeSet::from(["q1".to_owned(), "q2".to_owned(), "q3".to_owned()]));
}

#[tokio::test]
async fn an_invalid_save_changes_nothing_and_the_fixed_file_applies() {
    let env = TestEnv::new();
    let (old, new) = (Receiver::start(&env.ca, always(200)).await, Receiver::start(&env.ca, always(200)).await);
    env.write_config(&setup(subscription("vet", &old.url("/"), "")));
    let relay = env.start().await;

    let broken = setup(
        subscription("vet", &new.url("/"), "")
            + &subscription("plain", "http://insecure.example/", "")
            + &subscription("typo", &new.url("/"), "evnts = [\"x\"]"),
    );
    env.save_by_rename(&broken);
    relay.wait_for_log("Config not reloaded; the relay keeps running on the previous config.", 1, |_| true).await;
    let problems: Vec<String> = relay
        .logs()
        .iter()
        .filter(|line| line["message"] == "Invalid config file." && line["level"] == "ERROR")
        .map(|line| line["problem"].as_str().unwrap().to_owned())
        .collect();
    let config = env.config_path().display().to_string();
    assert!(problems.iter().any(|p| p.starts_with(&config) && p.contains("must use https://")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("unknown key `evnts`")), "{problems:?}");
    assert!(problems.iter().all(|p| p.split(':').nth(1).is_some_and(|line| line.parse::<u32>().is_ok())));

    post(&relay, "still-old").await;
    assert_eq!(old.next().await.header("webhook-id"), "still-old", "routing is unchanged");

    env.save_by_rename(&setup(subscription("vet", &new.url("/"), "")));
    reloaded(&relay, 1).await;
    post(&relay, "now-new").await;
    assert_eq!(new.next().await.header("webhook-id"), "now-new");
}

#[tokio::test]
async fn a_disabled_subscription_holds_its_deliveries_and_releases_them_in_order() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let with = |enabled: bool| {
        setup(subscription("vet", &receiver.url("/"), &format!("enabled = {enabled}\nconcurrency = 1")))
    };
    env.write_config(&with(true));
    let relay = env.start().await;

    env.save_by_rename(&with(false));
    assert_eq!(reloaded(&relay, 1).await["changed"], "[\"vet\"]");
    for id in ["h1", "h2", "h3"] {
        post(&relay, id).await;
    }
    let enabled_at = Instant::now();
    env.save_by_rename(&with(true));
    reloaded(&relay, 2).await;
    for id in ["h1", "h2", "h3"] {
        let request = receiver.next().await;
        assert_eq!(request.header("webhook-id"), id, "released in acceptance order");
        assert!(request.at > enabled_at, "{id} was delivered while its subscription was disabled");
    }
}

const CANCELLED: &str = "Removed subscription's queued deliveries cancelled.";

/// Deliveries cancelled so far, by the relay's log.
fn cancelled_so_far(relay: &RelayProcess) -> u64 {
    relay.logs().iter().filter(|l| l["message"] == CANCELLED).filter_map(|l| l["cancelled"].as_u64()).sum()
}

fn timestamp(line: &Value) -> time::OffsetDateTime {
    let text = line["timestamp"].as_str().unwrap();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

/// Before: the first half of a config saved in two writes (valid TOML, ending between two
/// `[[subscription]]` tables) applied, and the queued deliveries of the subscription in the second half
/// were cancelled for good; the second half re-added it to no avail.
#[tokio::test]
async fn a_config_saved_in_two_writes_keeps_the_queued_work_of_a_subscription_briefly_missing() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let first = subscription("first", &receiver.url("/first"), "enabled = false");
    let second = |extra: &str| subscription("second", &receiver.url("/second"), extra);
    env.write_config(&setup(first.clone() + &second("enabled = false")));
    let relay = env.start_with_env(&[(hookrelay::relay::REMOVED_GRACE_VARIABLE, "10m")]).await;
    for i in 0..20 {
        post(&relay, &format!("half-{i}")).await;
    }

    env.write_config(&setup(first.clone()));
    assert_eq!(reloaded(&relay, 1).await["removed"], "[\"second\"]");
    env.write_config(&setup(first + &second("")));
    assert_eq!(reloaded(&relay, 2).await["added"], "[\"second\"]");
    let mut delivered = BTreeSet::new();
    while delivered.len() < 20 {
        let request = receiver.next().await;
        assert_eq!(request.path, "/second");
        delivered.insert(request.header("webhook-id").to_owned());
    }
    assert_eq!(cancelled_so_far(&relay), 0);
    let opened =
        relay.logs().into_iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Subscription not in")));
    assert_eq!(opened.map(|l| l["grace"].clone()), Some(json!("10m")), "the grace period started with the removal");
}

/// Before (found in review): a grace timer outlived its subscription's return, so a second removal soon
/// after was cancelled when the first removal's grace period ended, not its own.
#[tokio::test]
async fn a_second_removal_gets_a_full_grace_period_of_its_own() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let held = subscription("held", &receiver.url("/"), "enabled = false");
    env.write_config(&setup(held.clone()));
    let relay = env.start_with_env(&[(hookrelay::relay::REMOVED_GRACE_VARIABLE, "1500ms")]).await;
    post(&relay, "twice-removed").await;

    for (n, text) in [(1, setup(String::new())), (2, setup(held.clone())), (3, setup(String::new()))] {
        env.save_by_rename(&text);
        reloaded(&relay, n).await;
    }
    let second_removal = timestamp(&reloaded(&relay, 3).await);
    let cancelled = relay.wait_for_log(CANCELLED, 1, |_| true).await;
    assert_eq!(cancelled["cancelled"], 1);
    let waited = timestamp(&cancelled) - second_removal;
    assert!(waited >= time::Duration::milliseconds(1500), "cancelled {waited} after the second removal");
}

#[tokio::test]
async fn a_removed_subscription_s_queued_deliveries_become_cancelled() {
    let env = TestEnv::new();
    let (down, other) = (Receiver::start(&env.ca, always(503)).await, Receiver::start(&env.ca, always(200)).await);
    let keep = subscription_to("other", &other.url("/"), "never.*", "");
    env.write_config(&setup(subscription("gone", &down.url("/"), &patient_retry()) + &keep));
    let mut relay = env.start().await;
    for id in ["c1", "c2"] {
        post(&relay, id).await;
    }
    relay.wait_for_log("Delivery attempt failed; will retry.", 2, |_| true).await;

    env.save_by_rename(&setup(keep.clone()));
    assert_eq!(reloaded(&relay, 1).await["removed"], "[\"gone\"]");
    // Both at once from the queue, or one then the other when an attempt in flight ends.
    let mut lines = 0;
    while cancelled_so_far(&relay) < 2 {
        lines += 1;
        relay.wait_for_log(CANCELLED, lines, |_| true).await;
    }
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    let store = env.store();
    let stored = deliveries(&store);
    assert_eq!(stored.len(), 2);
    for delivery in stored {
        assert_eq!(delivery.subscription, "gone");
        assert_eq!(delivery.status, DeliveryStatus::Cancelled, "{}", delivery.event_id);
    }
}

#[tokio::test]
async fn sighup_reloads_a_secret_read_from_a_file() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    std::fs::write(env.dir.path().join("vet.secret"), "first-secret\n").unwrap();
    env.write_config(&setup(format!(
        "[[subscription]]\nname = \"vet\"\nurl = \"{}\"\nevents = [\"*\"]\nsignature = \"hmac-sha256\"\n\
         secret = {{ file = \"vet.secret\" }}\n",
        receiver.url("/")
    )));
    let relay = env.start().await;
    let signature = |body: &[u8], key: &[u8]| {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    };
    post(&relay, "s1").await;
    let request = receiver.next().await;
    assert_eq!(request.header("x-hookrelay-signature"), signature(&request.body, b"first-secret"));

    // The TOML file is untouched, so only the signal can bring the new secret in.
    std::fs::write(env.dir.path().join("vet.secret"), "second-secret\n").unwrap();
    relay.hangup();
    assert_eq!(reloaded(&relay, 1).await["changed"], "[\"vet\"]");
    post(&relay, "s2").await;
    let request = receiver.next().await;
    assert_eq!(request.header("x-hookrelay-signature"), signature(&request.body, b"second-secret"));
}

#[tokio::test]
async fn a_symlinked_config_is_followed_when_repointed_and_when_its_target_is_edited() {
    let env = TestEnv::new();
    let receivers = [
        Receiver::start(&env.ca, always(200)).await,
        Receiver::start(&env.ca, always(200)).await,
        Receiver::start(&env.ca, always(200)).await,
    ];
    let release = |version: &str, receiver: &Receiver| {
        let dir = env.dir.path().join("releases").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        // Relative paths resolve against the link's directory, where the state and socket live.
        let text = env.config_text(&setup(subscription("vet", &receiver.url("/"), "")));
        std::fs::write(dir.join("relay.toml"), text).unwrap();
        dir.join("relay.toml")
    };
    let v1 = release("v1", &receivers[0]);
    std::os::unix::fs::symlink(&v1, env.config_path()).unwrap();
    let relay = env.start().await;
    post(&relay, "v1").await;
    assert_eq!(receivers[0].next().await.header("webhook-id"), "v1");

    let v2 = release("v2", &receivers[1]);
    let link = env.dir.path().join("relay.toml.new");
    std::os::unix::fs::symlink(&v2, &link).unwrap();
    std::fs::rename(&link, env.config_path()).unwrap();
    reloaded(&relay, 1).await;
    post(&relay, "v2").await;
    assert_eq!(receivers[1].next().await.header("webhook-id"), "v2");

    let edited = env.config_text(&setup(subscription("vet", &receivers[2].url("/"), "")));
    std::fs::write(&v2, edited).unwrap();
    reloaded(&relay, 2).await;
    post(&relay, "v2-edited").await;
    assert_eq!(receivers[2].next().await.header("webhook-id"), "v2-edited");
}

#[tokio::test]
async fn a_listener_change_is_logged_as_needing_restart_and_the_rest_applies() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup::default());
    let relay = env.start().await;

    env.save_by_rename(&Setup {
        ingest: "socket_mode = \"0600\"".into(),
        subscriptions: subscription("vet", &receiver.url("/"), ""),
        ..Setup::default()
    });
    let line = reloaded(&relay, 1).await;
    assert_eq!(line["added"], "[\"vet\"]");
    relay
        .wait_for_log("Changing this setting requires restart; the running value stays until then.", 1, |line| {
            line["setting"] == "ingest.socket_mode"
        })
        .await;
    post(&relay, "applied").await;
    assert_eq!(receiver.next().await.header("webhook-id"), "applied");
    let logs = serde_json::to_string(&relay.logs()).unwrap();
    assert!(!logs.contains("\"socket_mode\":\"0600\""), "values are not logged");
}

/// Issue 14 #4: a file rewritten every 10 ms applied no reload until the writes stopped (the debounce
/// restarted on every write). It is re-read at least every 2 s while it keeps changing: a reload lands
/// while the writer is still at it.
#[tokio::test]
async fn a_config_that_keeps_changing_is_still_reloaded_while_it_changes() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&setup(subscription("first", &receiver.url("/"), "")));
    let relay = env.start().await;
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (still_writing, path) = (std::sync::Arc::clone(&writing), env.config_path());
    let texts = [
        env.config_text(&setup(
            subscription("first", &receiver.url("/"), "") + &subscription("second", &receiver.url("/"), ""),
        )),
        env.config_text(&setup(
            subscription("first", &receiver.url("/"), "") + &subscription("third", &receiver.url("/"), ""),
        )),
    ];
    // The writer gives up after 12 s, six times the promised 2 s.
    let writer = tokio::spawn(async move {
        for round in 0..1200 {
            if !still_writing.load(std::sync::atomic::Ordering::SeqCst) {
                return true;
            }
            // Saved by rename, so that no read sees half a file.
            let temp = path.with_extension("tmp");
            std::fs::write(&temp, &texts[round % 2]).unwrap();
            std::fs::rename(&temp, &path).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    });
    let line = reloaded(&relay, 1).await;
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.await.unwrap(), "the reload came only after the writes stopped: {line}");
    assert!(line["added"] == "[\"second\"]" || line["added"] == "[\"third\"]", "{line}");
}

/// Before: with `RUST_LOG=trace` and the log written to a file next to the config, notify logged every
/// write to that file as a file event, each such line was another write: 252,078 lines in 3 s. Now
/// notify's TRACE records are dropped (unless RUST_LOG names notify), and the watcher still reloads.
#[tokio::test]
async fn a_trace_log_written_next_to_the_config_does_not_feed_itself() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let log_file = env.config_path().with_file_name("relay.log");
    let relay = RelayProcess::start_copying_log(&env.config_path(), &[("RUST_LOG", "trace")], log_file).await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","id":"traced","data":1}"#).await.status, 202);

    // The log file's writes before the save are in the same inotify queue, ahead of the save's events: by
    // "Config reloaded." the watcher has seen them all.
    let held = support::relay::unsigned_subscription("held", "https://127.0.0.1:9/", "enabled = false");
    env.save_by_rename(&Setup { subscriptions: held, ..Setup::default() });
    relay.wait_for_log("Config reloaded.", 1, |_| true).await;
    let logs = relay.logs();
    let echoes = logs.iter().filter(|line| line["message"].as_str().is_some_and(|m| m.starts_with("inotify event")));
    assert_eq!(echoes.count(), 0, "notify's per-event TRACE lines are not logged");
    assert!(
        logs.iter().any(|line| line["level"] == "TRACE"),
        "TRACE is on for everything else, so the check above means something"
    );
}

/// A `ca_file` that is not there yet is a warning, not an error: the relay says so at start and at each
/// reload that applies it (before, a reload applied it silently), and a SIGHUP once the file exists makes
/// the deliveries go through.
#[tokio::test]
async fn a_missing_ca_file_is_warned_about_at_start_and_reload_and_read_once_it_exists() {
    const MISSING: &str =
        "The subscription's ca_file does not exist: its deliveries fail their TLS check until it does \
                           and the config is reloaded (SIGHUP).";
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let patient = format!("ca_file = \"later.pem\"\n{}", patient_retry());
    let vet = support::relay::unsigned_subscription("vet", &receiver.url("/"), &patient);
    env.write_config(&Setup { subscriptions: vet.clone(), ..Setup::default() });
    let relay = env.start().await;
    let warned = relay.wait_for_log(MISSING, 1, |_| true).await;
    assert_eq!((warned["level"].as_str(), warned["subscription"].as_str()), (Some("WARN"), Some("vet")));
    assert!(warned["ca_file"].as_str().is_some_and(|path| path.ends_with("later.pem")), "{warned}");
    post(&relay, "needs-roots").await;
    let failed = relay.wait_for_log("Delivery attempt failed; will retry.", 1, |_| true).await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("set ca_file")), "{failed}");

    let held = support::relay::unsigned_subscription("held", "https://127.0.0.1:9/", "enabled = false");
    env.save_by_rename(&Setup { subscriptions: vet.clone() + &held, ..Setup::default() });
    reloaded(&relay, 1).await;
    relay.wait_for_log(MISSING, 2, |_| true).await;

    env.ca.write_ca(&env.dir.path().join("later.pem"));
    relay.hangup();
    relay.wait_for_log("Delivery succeeded.", 1, |line| line["event_id"] == "needs-roots").await;
    assert_eq!(relay.logs().iter().filter(|line| line["message"] == MISSING).count(), 2, "not once it exists");
}
