//! The store's format version (`state_dir/format`): a store written by an older hookrelay is upgraded in
//! place at its first start; one written by a newer hookrelay is refused with both versions named, and
//! nothing in the state directory changes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use hookrelay::store::{DeliveryId, DeliveryRecord, Keyring, Record};
use support::client::{send, Call};
use support::receiver::{always, Receiver};
use support::relay::{unsigned_subscription, Setup, TestEnv};

const FAILED: &str = "Delivery failed after its last attempt; requeue it with `hookrelay retry`.";

/// A relay that made 4 delivered and 4 failed deliveries, stopped.
async fn a_store_with_failed_deliveries(env: &TestEnv) {
    let (ok, bad) = (Receiver::start(&env.ca, always(200)).await, Receiver::start(&env.ca, always(500)).await);
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("ok", &ok.url("/"), "")
            + &unsigned_subscription("bad", &bad.url("/"), "retry = []"),
        ..Setup::default()
    });
    let mut relay = env.start().await;
    let batch: Vec<_> = (0..4).map(|i| json!({"type": "x", "id": format!("f{i}"), "data": i})).collect();
    assert_eq!(relay.post_unix(&serde_json::to_string(&batch).unwrap()).await.status, 202);
    relay.wait_for_log(FAILED, 4, |_| true).await;
    relay.wait_for_log("Delivery succeeded.", 4, |_| true).await;
    relay.terminate();
    assert!(relay.wait_exit().await.success());
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            for (name, bytes) in snapshot(&entry.path()) {
                files.insert(format!("{}/{name}", entry.file_name().to_string_lossy()), bytes);
            }
        } else {
            files.insert(entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

/// A store as hookrelay wrote it before the format file and the status index (format 1): the test
/// takes a store of today's format and removes both.
#[tokio::test]
async fn a_store_of_format_1_is_upgraded_in_place_at_its_first_start() {
    let env = TestEnv::new();
    a_store_with_failed_deliveries(&env).await;
    let format_file = env.state_dir().join("format");
    assert_eq!(
        std::fs::read_to_string(&format_file).unwrap(),
        format!("hookrelay-store-format {}\n", hookrelay::store::FORMAT)
    );
    std::fs::remove_file(&format_file).unwrap();
    {
        let db = sled::open(env.state_dir()).unwrap();
        let entries: Vec<_> = db.scan_prefix(b"s").keys().map(Result::unwrap).collect();
        assert_eq!(entries.len(), 4);
        for key in entries {
            db.remove(key).unwrap();
        }
        db.flush().unwrap();
    }

    let relay = env.start().await;
    let upgraded = relay.wait_for_log("Store upgraded to a newer format.", 1, |_| true).await;
    assert_eq!((upgraded["from"].as_u64(), upgraded["to"].as_u64()), (Some(1), Some(2)), "{upgraded}");
    let failed = relay.admin_get("/v1/deliveries?status=failed").await;
    assert_eq!(failed["deliveries"].as_array().unwrap().len(), 4, "{failed}");
    // One line per upgrade, the last to the current format.
    let upgrades = (hookrelay::store::FORMAT - 1) as usize;
    let last = relay.wait_for_log("Store upgraded to a newer format.", upgrades, |_| true).await;
    assert_eq!(last["to"].as_u64(), Some(u64::from(hookrelay::store::FORMAT)), "{last}");
    assert_eq!(
        std::fs::read_to_string(&format_file).unwrap(),
        format!("hookrelay-store-format {}\n", hookrelay::store::FORMAT)
    );
    let unencrypted =
        |line: &serde_json::Value| line["message"].as_str().is_some_and(|m| m.starts_with("No encryption_key"));
    assert!(
        !relay.logs().iter().any(|line| (line["level"] == "WARN" || line["level"] == "ERROR") && !unencrypted(line)),
        "an upgrade is not damage: {:?}",
        relay.logs()
    );
}

#[tokio::test]
async fn a_store_of_a_newer_format_is_refused_naming_both_and_left_untouched() {
    let env = TestEnv::new();
    a_store_with_failed_deliveries(&env).await;
    let newer = hookrelay::store::FORMAT + 1;
    std::fs::write(env.state_dir().join("format"), format!("hookrelay-store-format {newer}\n")).unwrap();
    let before = snapshot(&env.state_dir());

    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args(["run", "-c"])
        .arg(env.config_path())
        .kill_on_drop(true)
        .output();
    let refused = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the relay started on a store of a newer format")
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    let (found, reads) = (format!("the store is format {newer}"), format!("reads formats up to {}", newer - 1));
    assert!(stderr.contains(&found) && stderr.contains(&reads), "{stderr}");
    assert!(snapshot(&env.state_dir()) == before, "the state directory changed");
}

/// A store as format 4 wrote it: delivery records of layout 2, with every attempt under an `a` key of its
/// own. The test takes a store of today's format and moves each carried attempt out of its record. After
/// the upgrade the old attempts read where they are, and a new one is carried by the old record.
#[tokio::test]
async fn a_store_of_format_4_keeps_its_attempts_and_records_new_ones_after_the_upgrade() {
    let env = TestEnv::new();
    a_store_with_failed_deliveries(&env).await;
    std::fs::write(env.state_dir().join("format"), "hookrelay-store-format 4\n").unwrap();
    {
        let db = sled::open(env.state_dir()).unwrap();
        let records: Vec<_> = db.scan_prefix(b"d").map(Result::unwrap).collect();
        assert_eq!(records.len(), 8);
        for (key, value) in records {
            let mut delivery = DeliveryRecord::decode(&key, &value, &Keyring::default()).unwrap();
            let carried = delivery.latest_attempt.take().expect("every delivery was attempted once");
            db.insert([&b"a"[..], &key[1..], &carried.n.to_be_bytes()].concat(), carried.encoded).unwrap();
            // Layout 3 is layout 2 and the carried attempt, of which `None` is the last byte.
            let layout_3 = delivery.encode(&key, &Keyring::default());
            assert_eq!((layout_3[0], layout_3.last()), (3, Some(&0)));
            let layout_2 = [&[2][..], &layout_3[1..layout_3.len() - 1]].concat();
            db.insert(key, layout_2).unwrap();
        }
        db.flush().unwrap();
    }
    // Both subscriptions answer now.
    let receiver = Receiver::start(&env.ca, always(200)).await;
    env.write_config(&Setup {
        subscriptions: unsigned_subscription("ok", &receiver.url("/"), "")
            + &unsigned_subscription("bad", &receiver.url("/"), "retry = []"),
        ..Setup::default()
    });

    let mut relay = env.start().await;
    let upgraded = relay.wait_for_log("Store upgraded to a newer format.", 1, |_| true).await;
    assert_eq!((upgraded["from"].as_u64(), upgraded["to"].as_u64()), (Some(4), Some(5)), "{upgraded}");
    let failed = relay.admin_get("/v1/deliveries?status=failed").await;
    let failed: Vec<String> =
        failed["deliveries"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(failed.len(), 4);
    let retried = send(&relay.unix, Call::post("/v1/deliveries/retry", r#"{"status": "failed"}"#)).await;
    assert_eq!(retried.status, 200, "{}", String::from_utf8_lossy(&retried.body));
    relay.wait_for_log("Delivery succeeded.", 4, |_| true).await;

    let status_codes = |view: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        let attempts = view["attempts"].as_array().unwrap();
        attempts.iter().map(|a| (a["n"].clone(), a["status_code"].clone())).collect()
    };
    for id in &failed {
        let view = relay.admin_get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(view["status"], "delivered", "{view}");
        assert_eq!(status_codes(&view), [(json!(1), json!(500)), (json!(2), json!(200))], "{view}");
    }
    let delivered = relay.admin_get("/v1/deliveries?status=delivered&subscription=ok").await;
    for listed in delivered["deliveries"].as_array().unwrap() {
        let view = relay.admin_get(&format!("/v1/deliveries/{}", listed["id"].as_str().unwrap())).await;
        assert_eq!(status_codes(&view), [(json!(1), json!(200))], "{view}");
    }
    let quarantine = relay.admin_get("/v1/quarantine").await;
    assert_eq!(quarantine["records"], json!([]), "nothing of a format-4 store is damage: {quarantine}");
    relay.terminate();
    assert!(relay.wait_exit().await.success());

    // Where the attempts are now: the first under its own key as format 4 left it, the second carried by
    // the rewritten record (layout 3).
    let db = sled::open(env.state_dir()).unwrap();
    for id in &failed {
        let id = DeliveryId::parse(id).unwrap().0 .0.to_be_bytes();
        let key = [&b"d"[..], &id].concat();
        let value = db.get(&key).unwrap().unwrap();
        assert_eq!(value[0], 3, "rewritten in the current layout");
        let delivery = DeliveryRecord::decode(&key, &value, &Keyring::default()).unwrap();
        assert_eq!(delivery.latest_attempt.map(|carried| carried.n), Some(2));
        let attempt_keys: Vec<_> = db.scan_prefix([&b"a"[..], &id].concat()).keys().map(Result::unwrap).collect();
        assert_eq!(attempt_keys, [[&b"a"[..], &id, &1u32.to_be_bytes()].concat()]);
    }
}
