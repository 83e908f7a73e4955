//! The store's format version (`state_dir/format`): a store written by an older hookrelay is upgraded in
//! place at its first start; one written by a newer hookrelay is refused with both versions named, and
//! nothing in the state directory changes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

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
