//! Patient data at rest (SPEC §8) through the real binary: payloads sealed with `encryption_key`, key
//! rotation, key errors, `{ credential = ... }`, private files whatever the umask, erase of data whose
//! key is gone, and `redact` (SPEC §6c).

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use hookrelay::store::{DeliveryRecord, Keyring, Record, StoreKey};
use serde_json::Value;

use hookrelay::relay::{OLDER_KEY_IN_USE, UNLISTED_KEY};
use support::receiver::{always, sequence, Receiver, Reply};
use support::relay::{cli, unsigned_subscription as subscription, RelayProcess, Setup, TestEnv};

const SUCCEEDED: &str = "Delivery succeeded.";

/// A store key as `hookrelay secret --kind store-key` prints it, and its fingerprint.
fn store_key() -> (String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args(["secret", "--kind", "store-key"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(&text).unwrap().try_into().unwrap();
    (text, StoreKey::new(&bytes).id().to_string())
}

/// `[relay]` lines: `encryption_key` set to the given keys (none: no key).
fn keys(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [one] => format!("encryption_key = \"{one}\"\n"),
        many => {
            format!("encryption_key = [{}]\n", many.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "))
        }
    }
}

/// Every file under `dir` whose raw bytes contain `marker`.
fn files_containing(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for path in files_under(dir) {
        let bytes = std::fs::read(&path).unwrap();
        if bytes.windows(marker.len()).any(|window| window == marker.as_bytes()) {
            found.push(path);
        }
    }
    found
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Runs `hookrelay <command> -c <config>` to its end with only `vars` added to the environment (and no
/// `CREDENTIALS_DIRECTORY` from the test runner's).
async fn hookrelay(env: &TestEnv, command: &str, vars: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args([command, "-c"])
        .arg(env.config_path())
        .env_remove("CREDENTIALS_DIRECTORY")
        .envs(vars.iter().copied())
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The data of the i-th planted event: key order, number text and escapes a re-serializer would change.
fn planted(i: usize) -> String {
    format!(r#"{{"zeta":{i},"patient":{{"name":"DATA-MARKER-Luna","note":"caf\u00e9"}},"amount":500.00}}"#)
}

const BODY_MARKER: &str = "BODY-MARKER-rejected-Luna";

/// Events with a planted marker in their data, to a receiver that answers with a marker in its body, and
/// to a held subscription (so pending data is stored too). Checks
/// that every delivery arrived byte for byte and that the relay kept both markers (readable through the
/// admin API), then stops it the given way. Returns the files holding each marker.
async fn plant_markers(key: Option<&str>, stop: fn(RelayProcess) -> tokio::task::JoinHandle<()>) -> [Vec<PathBuf>; 2] {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, std::sync::Arc::new(|_| Reply::status(200).with_body(BODY_MARKER))).await;
    let url = receiver.url("/");
    env.write_config(&Setup {
        relay: keys(key.as_slice()),
        subscriptions: subscription("vet", &url, "body = \"data\"") + &subscription("held", &url, "enabled = false"),
        ..Setup::default()
    });
    let relay = env.start().await;
    for i in 0..5 {
        let event = format!(r#"{{"type":"lab.completed","id":"e-{i}","data":{}}}"#, planted(i));
        assert_eq!(relay.post_unix(&event).await.status, 202);
    }
    relay.wait_for_log(SUCCEEDED, 5, |_| true).await;
    let mut bodies = BTreeSet::new();
    for _ in 0..5 {
        bodies.insert(receiver.next().await.body.to_vec());
    }
    let sent: BTreeSet<Vec<u8>> = (0..5).map(|i| planted(i).into_bytes()).collect();
    assert_eq!(bodies, sent, "the data byte for byte");
    let shown = relay.admin_get("/v1/events/e-3").await;
    assert_eq!(shown["data"]["patient"]["name"], "DATA-MARKER-Luna", "{shown}");
    let vet = shown["deliveries"].as_array().unwrap().iter().find(|d| d["subscription"] == "vet").unwrap().clone();
    let attempts =
        relay.admin_get(&format!("/v1/deliveries/{}", vet["id"].as_str().unwrap())).await["attempts"].clone();
    assert_eq!(attempts[0]["response_body"], BODY_MARKER, "{attempts}");
    let unencrypted =
        relay.logs().into_iter().filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("No encryption_key")));
    let levels: Vec<Value> = unencrypted.map(|line| line["level"].clone()).collect();
    assert_eq!(
        levels,
        if key.is_some() { vec![] } else { vec![Value::from("WARN")] },
        "said once at start, without a key"
    );
    stop(relay).await.unwrap();
    [files_containing(&env.state_dir(), "DATA-MARKER"), files_containing(&env.state_dir(), BODY_MARKER)]
}

fn terminate(mut relay: RelayProcess) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        relay.terminate();
        assert!(relay.wait_exit().await.success());
    })
}

fn kill9(relay: RelayProcess) -> tokio::task::JoinHandle<()> {
    tokio::spawn(relay.kill9())
}

/// SPEC §8: with `encryption_key`, no byte of event data or response bodies is in `state_dir` in the
/// clear, after a clean stop or a `kill -9`; without it the same scan finds both (so it can fail).
#[tokio::test]
async fn with_a_store_key_no_file_under_the_state_dir_holds_event_data_or_response_bodies() {
    let (key, _) = store_key();
    for stop in [terminate as fn(RelayProcess) -> _, kill9] {
        let [data, bodies] = plant_markers(Some(&key), stop).await;
        assert!(data.is_empty(), "event data in the clear in {data:?}");
        assert!(bodies.is_empty(), "a response body in the clear in {bodies:?}");
    }
    let [data, bodies] = plant_markers(None, terminate).await;
    assert!(!data.is_empty() && !bodies.is_empty(), "without a key both are stored as they came");
}

/// Posts four events with ids `prefix-0` to `prefix-3`.
async fn post(relay: &RelayProcess, prefix: &str) {
    let events: Vec<Value> = (0..4)
        .map(|i| serde_json::json!({"type": "lab.completed", "id": format!("{prefix}-{i}"), "data": {"n": i}}))
        .collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&events).unwrap()).await.status, 202);
}

/// The ids of the next `n` requests `receiver` gets.
async fn arrivals(receiver: &Receiver, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for _ in 0..n {
        ids.insert(receiver.next().await.header("webhook-id").to_owned());
    }
    ids
}

fn ids(prefixes: &[&str]) -> BTreeSet<String> {
    prefixes.iter().flat_map(|prefix| (0..4).map(move |i| format!("{prefix}-{i}"))).collect()
}

async fn stop(mut relay: RelayProcess) {
    relay.terminate();
    assert!(relay.wait_exit().await.success());
}

/// SPEC §8 rotation. Events stored in the clear are sealed by the first start with a key (A), with the
/// events sealed under A; restarted with `[B]` alone, the A records are reported (count and A's
/// fingerprint) and wait, undelivered and kept, while new events go out; with `[B, A]` all are delivered,
/// a resend of one goes out byte for byte, and repeats of their ids are still recognized.
#[tokio::test]
async fn key_rotation_keeps_old_records_readable_and_a_missing_key_makes_them_wait() {
    let ((a, a_id), (b, _)) = (store_key(), store_key());
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let setup = |keys_text: String, enabled: bool| Setup {
        relay: keys_text,
        subscriptions: subscription("vet", &receiver.url("/"), &format!("enabled = {enabled}")),
        ..Setup::default()
    };

    // In the clear, then under A; held, so that both wait in the store.
    env.write_config(&setup(String::new(), false));
    let relay = env.start().await;
    post(&relay, "clear").await;
    stop(relay).await;
    env.write_config(&setup(keys(&[&a]), false));
    let relay = env.start().await;
    let sealed_now =
        relay.wait_for_log("Records stored before encryption_key was set are sealed now.", 1, |_| true).await;
    assert_eq!(sealed_now["events"], 4, "{sealed_now}");
    post(&relay, "under-a").await;
    stop(relay).await;

    // B alone: every A record is reported and waits; new (B) events go.
    env.write_config(&setup(keys(&[&b]), true));
    let relay = env.start().await;
    let report = relay.wait_for_log(UNLISTED_KEY, 1, |_| true).await;
    assert_eq!((report["key"].as_str(), report["events"].as_u64()), (Some(a_id.as_str()), Some(8)), "{report}");
    assert_eq!(report["level"], "ERROR");
    post(&relay, "under-b").await;
    relay.wait_for_log(SUCCEEDED, 4, |_| true).await;
    relay.wait_for_log("Delivery waits for its store key.", 8, |_| true).await;
    assert_eq!(metric(&relay, "hookrelay_deliveries_waiting_for_key").await, Some(8.0));
    assert_eq!(arrivals(&receiver, 4).await, ids(&["under-b"]));
    let waiting = relay.admin_get("/v1/events/clear-0").await;
    assert_eq!(waiting["data"], Value::Null, "{waiting}");
    assert_eq!(waiting["data_sealed_with_unlisted_key"], a_id.as_str());
    assert_eq!(waiting["deliveries"][0]["status"], "pending", "kept, not failed");
    stop(relay).await;

    // [B, A]: the A events go; A is named as still needed.
    env.write_config(&setup(keys(&[&b, &a]), true));
    let relay = env.start().await;
    let still = relay.wait_for_log(OLDER_KEY_IN_USE, 1, |_| true).await;
    assert_eq!((still["key"].as_str(), still["events"].as_u64()), (Some(a_id.as_str()), Some(8)), "{still}");
    relay.wait_for_log(SUCCEEDED, 8, |_| true).await;
    let mut delivered = BTreeSet::new();
    let mut first_body = None;
    for _ in 0..8 {
        let request = receiver.next().await;
        if request.header("webhook-id") == "under-a-0" {
            first_body = Some(request.body.clone());
        }
        delivered.insert(request.header("webhook-id").to_owned());
    }
    assert_eq!(delivered, ids(&["clear", "under-a"]));
    let shown = relay.admin_get("/v1/events/under-a-0").await;
    assert_eq!(shown["data"], serde_json::json!({"n": 0}), "{shown}");
    assert!(relay.logs().iter().all(|line| line["message"] != UNLISTED_KEY), "A is listed again");
    let delivery = shown["deliveries"][0]["id"].as_str().unwrap().to_owned();
    stdout(&cli(&env, &["resend", &delivery]).await);
    let resent = receiver.next().await;
    assert_eq!(resent.header("webhook-id"), "under-a-0");
    assert_eq!(Some(resent.body), first_body, "resent byte for byte");
    // Idempotency across rotation: the fingerprint stored under A still recognizes a repeat.
    let repeat = |n: u32| format!(r#"{{"type":"lab.completed","id":"under-a-0","data":{{"n":{n}}}}}"#);
    assert_eq!(relay.post_unix(&repeat(0)).await.status, 200, "a repeat");
    assert_eq!(relay.post_unix(&repeat(9)).await.status, 409, "the same id with other data");
    stop(relay).await;

    // Stored fingerprints are keyed (a plain SHA-256 of the data would confirm a guess of it), also those
    // of the events first stored in the clear, whose data is sealed now.
    let db = sled::open(env.state_dir()).unwrap();
    for id in ["clear-0", "under-a-0"] {
        let record: Value = serde_json::from_slice(&db.get(format!("e{id}")).unwrap().unwrap()).unwrap();
        assert!(record["fingerprint"].as_str().unwrap().starts_with(&format!("{a_id}:")), "{record}");
        assert!(record["sealed"].as_str().unwrap().starts_with(&a_id), "{record}");
    }
}

/// The value of an unlabelled series in `/metrics`.
async fn metric(relay: &RelayProcess, name: &str) -> Option<f64> {
    let answer = support::client::send(relay.tcp(), support::client::Call::get("/metrics")).await;
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// SPEC §8: a malformed key is a config error at `check` and at start naming where the key came from,
/// never its value; a missing key is a `check` warning only.
#[tokio::test]
async fn a_malformed_store_key_is_a_config_error_naming_its_source_never_its_value() {
    let env = TestEnv::new();
    let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let cases = [
        ("encryption_key = \"not*base64!\"\n", vec![], "(written in the config file) is not base64", "not*base64!"),
        (
            "encryption_key = { env = \"STORE_KEY\" }\n",
            vec![("STORE_KEY", short.as_str())],
            "(from environment variable `STORE_KEY`) decodes to 16 bytes, not 32",
            short.as_str(),
        ),
        ("encryption_key = []\n", vec![], "`encryption_key` is an empty array", "[]"),
    ];
    for (relay_lines, vars, says, value) in cases {
        env.write_config(&Setup { relay: relay_lines.into(), ..Setup::default() });
        let checked = hookrelay(&env, "check", &vars).await;
        let printed = String::from_utf8_lossy(&checked.stdout);
        assert_eq!(checked.status.code(), Some(1), "{printed}");
        assert!(printed.contains(says) && printed.contains("relay.toml:3:"), "{printed}");
        let started = hookrelay(&env, "run", &vars).await;
        let logged = String::from_utf8_lossy(&started.stderr);
        assert_eq!(started.status.code(), Some(1), "{logged}");
        assert!(logged.contains(says), "{logged}");
        if value != "[]" {
            assert!(!printed.contains(value) && !logged.contains(value), "the key's value is shown");
        }
        assert!(!env.state_dir().exists(), "a refused config changes nothing");
    }

    env.write_config(&Setup::default());
    let warned = stdout(&cli(&env, &["check"]).await);
    assert!(warned.contains("relay.toml:1:1: warning: no `encryption_key`"), "{warned}");
    assert!(warned.lines().last().unwrap().ends_with("ok (0 subscriptions)"), "{warned}");
}

/// SPEC §3: `{ credential = "NAME" }` reads `$CREDENTIALS_DIRECTORY/NAME` (what systemd's
/// `LoadCredentialEncrypted=` provides), and is a clear error when that variable is unset.
#[tokio::test]
async fn a_store_key_from_a_systemd_credential_seals_and_an_unset_directory_is_an_error() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let (key, key_id) = store_key();
    let credentials = env.dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("store.key"), format!("{key}\n")).unwrap();
    env.write_config(&Setup {
        relay: "encryption_key = { credential = \"store.key\" }\n".into(),
        subscriptions: subscription("vet", &receiver.url("/"), ""),
        ..Setup::default()
    });

    let unset = hookrelay(&env, "check", &[]).await;
    let printed = String::from_utf8_lossy(&unset.stdout);
    assert_eq!(unset.status.code(), Some(1), "{printed}");
    assert!(printed.contains("credential `store.key` needs $CREDENTIALS_DIRECTORY, which is not set"), "{printed}");

    let directory = credentials.to_str().unwrap();
    let mut relay = env.start_with_env(&[("CREDENTIALS_DIRECTORY", directory)]).await;
    let sealed = relay.wait_for_log("Event data and response bodies are sealed at rest.", 1, |_| true).await;
    assert_eq!(sealed["key"], key_id.as_str());
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":{"name":"CREDENTIAL-MARKER"}}"#).await.status, 202);
    relay.wait_for_log(SUCCEEDED, 1, |_| true).await;
    assert!(relay.logs().iter().all(|line| !line.to_string().contains("No encryption_key")));
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    assert_eq!(files_containing(&env.state_dir(), "CREDENTIAL-MARKER"), Vec::<PathBuf>::new());
}

/// SPEC §8: started with umask 0022 (a shell's), the state directory is `0700` and every file the relay
/// made in it `0600`; a file an earlier start left readable is tightened; a state directory that was
/// there already is the operator's, left as it is with a warning. The socket has `socket_mode`, in a
/// directory the clinic application can enter.
#[tokio::test]
async fn the_state_dir_and_its_files_are_private_whatever_the_umask() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let text =
        env.config_text(&Setup { subscriptions: subscription("all", &receiver.url("/"), ""), ..Setup::default() });
    std::fs::write(env.config_path(), text.replace("unix_socket = \"relay.sock\"", "unix_socket = \"run/relay.sock\""))
        .unwrap();
    let umask = ["sh", "-c", "umask 0022 && exec \"$0\" \"$@\""];
    let config = env.config_path();
    let start = || RelayProcess::start_under(&umask, &config, &[], &[]);
    let mut relay = start().await;
    assert_eq!(relay.post_unix(r#"{"type":"lab.completed","data":{}}"#).await.status, 202);
    relay.wait_for_log(SUCCEEDED, 1, |_| true).await;
    let socket = env.dir.path().join("run/relay.sock");
    assert_eq!(
        (mode(&socket), mode(socket.parent().unwrap())),
        (0o660, 0o755),
        "socket_mode, in a directory others enter"
    );
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    assert_private(&env.state_dir());

    let db = env.state_dir().join("db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut relay = start().await;
    relay.wait_for_log("Group and other access taken from the store's files.", 1, |_| true).await;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    assert_private(&env.state_dir());

    std::fs::set_permissions(env.state_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut relay = start().await;
    let warned = relay.wait_for_log("The state directory gives others than the relay's user access; its files are the relay's alone, but consider `chmod 0700` on it.", 1, |_| true).await;
    assert_eq!((warned["level"].as_str(), warned["mode"].as_str()), (Some("WARN"), Some("0755")), "{warned}");
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    assert_eq!(mode(&env.state_dir()), 0o755, "not the relay's to change");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let files = files_under(dir);
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        let parent = file.parent().unwrap();
        assert_eq!(mode(parent), 0o700, "{}", parent.display());
    }
}

/// SPEC §2 erase with sealed data: the right to erasure does not need the key. An event sealed with a
/// key that is no longer listed is erased all the same (its pending delivery cancelled), and is then
/// shown `"data": null` with `erased_at`, not as waiting for its key; erasing twice is fine, an unknown id
/// is 404. The INFO line names the event and nothing of its data.
#[tokio::test]
async fn an_event_sealed_with_a_key_no_longer_listed_can_still_be_erased() {
    let ((a, _), (b, _)) = (store_key(), store_key());
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, sequence(vec![Reply::status(500).with_body(BODY_MARKER)], 200)).await;
    let setup = |keys_text: String| Setup {
        relay: keys_text,
        subscriptions: subscription("vet", &receiver.url("/"), "retry = [\"1h\"]"),
        ..Setup::default()
    };
    env.write_config(&setup(keys(&[&a])));
    let mut relay = env.start().await;
    let event = r#"{"type":"lab.completed","id":"e-erase","data":{"name":"ERASE-MARKER"}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);
    relay.wait_for_log("Delivery attempt failed; will retry.", 1, |_| true).await;
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    env.write_config(&setup(keys(&[&b])));
    let relay = env.start().await;
    relay.wait_for_log(UNLISTED_KEY, 1, |_| true).await;
    let erased = stdout(&cli(&env, &["erase", "e-erase"]).await);
    assert_eq!(erased.trim(), "e-erase: erased; 1 pending deliveries cancelled");
    assert_eq!(
        stdout(&cli(&env, &["erase", "e-erase"]).await).trim(),
        "e-erase: erased; 0 pending deliveries cancelled"
    );
    let unknown = cli(&env, &["erase", "e-nosuch"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    let shown = relay.admin_get("/v1/events/e-erase").await;
    assert_eq!((shown["data"].clone(), shown["data_sealed_with_unlisted_key"].clone()), (Value::Null, Value::Null));
    assert!(shown["erased_at"].is_string(), "{shown}");
    assert_eq!(shown["deliveries"][0]["status"], "cancelled");
    let id = shown["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let attempts = relay.admin_get(&format!("/v1/deliveries/{id}")).await["attempts"].clone();
    assert_eq!(attempts[0]["response_body"], Value::Null, "{attempts}");
    let line = relay.wait_for_log("Event data erased by an operator.", 1, |_| true).await;
    assert_eq!((line["level"].as_str(), line["event_id"].as_str()), (Some("INFO"), Some("e-erase")));
    assert!(relay.logs().iter().all(|line| !line.to_string().contains("ERASE-MARKER")));
    let mut relay = relay;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let db = sled::open(env.state_dir()).unwrap();
    let event = db.get(b"ee-erase").unwrap().expect("the event record is kept");
    let text = String::from_utf8_lossy(&event);
    assert!(!text.contains("sealed"), "the sealed data is gone too: {text}");
    // The only attempt is the latest, carried in the delivery's record as it would be under its own key.
    assert_eq!(db.scan_prefix(b"a").count(), 0);
    let records: Vec<_> = db.scan_prefix(b"d").map(|entry| entry.unwrap()).collect();
    assert_eq!(records.len(), 1);
    let (key, bytes) = &records[0];
    let delivery = DeliveryRecord::decode(key, bytes, &Keyring::default()).unwrap();
    let latest = delivery.latest_attempt.expect("the attempt is kept");
    let attempt: Value = serde_json::from_slice(&latest.encoded).unwrap();
    assert_eq!((attempt["response_body"].clone(), attempt.get("sealed_response_body")), (Value::Null, None));
}

/// Erase forgets every stored answer of the event's deliveries: those of earlier attempts, under keys of
/// their own, and the one each delivery's record carries.
#[tokio::test]
async fn erase_forgets_the_answers_of_earlier_attempts_and_of_the_carried_one() {
    let env = TestEnv::new();
    let answers = vec![Reply::status(500).with_body("FIRST-ANSWER"), Reply::status(503).with_body("SECOND-ANSWER")];
    let receiver = Receiver::start(&env.ca, sequence(answers, 200)).await;
    let retry = "retry = [\"0s\", \"1h\"]";
    env.write_config(&Setup { subscriptions: subscription("vet", &receiver.url("/"), retry), ..Setup::default() });
    let mut relay = env.start().await;
    let event = r#"{"type":"lab.completed","id":"e-answers","data":{"n":1}}"#;
    assert_eq!(relay.post_unix(event).await.status, 202);
    relay.wait_for_log("Delivery attempt failed; will retry.", 2, |_| true).await;
    let erased = stdout(&cli(&env, &["erase", "e-answers"]).await);
    assert_eq!(erased.trim(), "e-answers: erased; 1 pending deliveries cancelled");
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    let db = sled::open(env.state_dir()).unwrap();
    let mut answers = Vec::new();
    for entry in db.scan_prefix(b"a") {
        let attempt: Value = serde_json::from_slice(&entry.unwrap().1).unwrap();
        answers.push((attempt["n"].clone(), attempt["response_body"].clone()));
    }
    for entry in db.scan_prefix(b"d") {
        let (key, bytes) = entry.unwrap();
        let delivery = DeliveryRecord::decode(&key, &bytes, &Keyring::default()).unwrap();
        let carried: Value = serde_json::from_slice(&delivery.latest_attempt.unwrap().encoded).unwrap();
        answers.push((carried["n"].clone(), carried["response_body"].clone()));
    }
    assert_eq!(answers, vec![(Value::from(1), Value::Null), (Value::from(2), Value::Null)]);
}

/// SPEC §6c `redact`: the pointers are removed from the data for that subscription only, every other
/// byte kept (key order, number text, escapes), the same bytes on every attempt; other subscriptions get
/// the whole data; a pointer that matches nothing is not an error.
#[tokio::test]
async fn redacted_fields_are_removed_for_one_subscription_byte_for_byte_on_every_attempt() {
    let env = TestEnv::new();
    let redacting = Receiver::start(&env.ca, sequence(vec![Reply::status(503)], 200)).await;
    let whole = Receiver::start(&env.ca, always(200)).await;
    let pointers = r#"redact = ["/patient/name", "/owner/phone", "/a~1b", "/x~0y", "/items/0", "/no/such"]"#;
    env.write_config(&Setup {
        subscriptions: subscription("redacted", &redacting.url("/"), &format!("body = \"data\"\n{pointers}"))
            + &subscription("whole", &whole.url("/"), "body = \"data\""),
        ..Setup::default()
    });
    let relay = env.start().await;
    let data = r#"{"zeta":1,"patient":{"name":"Luna","fp":"p_1"},"owner":{"phone":"555","city":"Z\u00fcrich"},"a/b":2,"x~y":3,"items":["first",4.50],"amount":500.00}"#;
    let event = format!(r#"{{"type":"lab.completed","data":{data}}}"#);
    assert_eq!(relay.post_unix(&event).await.status, 202);
    relay.wait_for_log(SUCCEEDED, 2, |_| true).await;
    let expected = r#"{"zeta":1,"patient":{"fp":"p_1"},"owner":{"city":"Z\u00fcrich"},"items":[4.50],"amount":500.00}"#;
    let (first, second) = (redacting.next().await, redacting.next().await);
    assert_eq!(String::from_utf8_lossy(&first.body), expected);
    assert_eq!(first.body, second.body, "the same bytes on the retry");
    assert_eq!(String::from_utf8_lossy(&whole.next().await.body), data);
}

/// A bad pointer is a config error at its line and column.
#[tokio::test]
async fn a_redact_pointer_that_is_not_a_json_pointer_is_a_config_error_at_its_position() {
    let env = TestEnv::new();
    let setup = Setup {
        subscriptions: subscription("vet", "https://hooks.example/x", r#"redact = ["/ok", "patient/name", "/a~2"]"#),
        ..Setup::default()
    };
    env.write_config(&setup);
    let checked = cli(&env, &["check"]).await;
    let printed = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert_eq!(checked.status.code(), Some(1), "{printed}");
    let text = env.config_text(&setup);
    let line = text.lines().position(|l| l.starts_with("redact")).unwrap() + 1;
    let column = |needle: &str| text.lines().nth(line - 1).unwrap().find(needle).unwrap() + 1;
    let first = format!(
        "relay.toml:{line}:{}: invalid `redact` pointer: `patient/name` is not a JSON pointer",
        column("\"patient")
    );
    let second =
        format!("relay.toml:{line}:{}: invalid `redact` pointer: `/a~2` is not a JSON pointer", column("\"/a~2"));
    assert!(printed.contains(&first) && printed.contains(&second), "{printed}");
}
