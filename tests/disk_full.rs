//! A store that cannot write (issue #5). The disk filling up is played by a file-size limit set on the
//! running relay (`prlimit`): the kernel then fails its writes with EFBIG exactly where a full disk
//! fails them with ENOSPC, without a tmpfs or root. The relay must answer 503 for what it could not make
//! durable, stop so that systemd restarts it on a freshly opened store, and come back on its own.

mod support;

use std::collections::BTreeSet;

use support::client::{send, try_send, Call};
use support::receiver::{always, Receiver};
use support::relay::{catch_all, Setup, TestEnv};
use support::within;

/// Sets the relay's file-size limit (the soft one; the hard one stays unlimited so it can be raised).
fn limit_file_size(pid: u32, bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: prlimit(2) reads `limit` and writes nothing (null old-limit pointer).
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Runs the relay with its file-size limit set from the start, until it exits on its own.
async fn start_with_file_size_limit(env: &TestEnv, bytes: u64) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    command.args(["run", "-c"]).arg(env.config_path()).env_remove("RUST_LOG").kill_on_drop(true);
    // SAFETY: setrlimit(2) is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    within("the relay on a full disk to stop", command.output()).await.unwrap()
}

fn event(id: &str) -> String {
    format!(r#"{{"type":"lab.completed","id":"{id}","data":{{"report":"{}"}}}}"#, "r".repeat(10_000))
}

#[tokio::test]
async fn when_the_store_cannot_write_ingest_answers_503_and_the_relay_restarts_clean() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    // Held while the disk fills, so that ingest is the only writer and meets the failure first.
    env.write_config(&Setup { subscriptions: catch_all(&receiver.url("/")) + "enabled = false\n", ..Setup::default() });
    let mut relay = env.start().await;

    let mut accepted = BTreeSet::new();
    for n in 0..5 {
        let id = format!("before-{n}");
        assert_eq!(relay.post_unix(&event(&id)).await.status, 202);
        accepted.insert(id);
    }
    let db_size = std::fs::metadata(env.state_dir().join("db")).unwrap().len();
    limit_file_size(relay.pid(), db_size + 300_000);

    let mut refused = Vec::new();
    for n in 0..2000 {
        let id = format!("full-{n}");
        let Ok(answer) = try_send(&relay.unix, Call::events(event(&id))).await else {
            break; // the relay has stopped
        };
        match answer.status.as_u16() {
            202 => assert!(refused.is_empty(), "{id} accepted after a refusal"),
            503 => {
                assert_eq!(answer.error_code(), "store_unavailable");
                let message = answer.error_message();
                assert!(message.contains("File too large"), "the cause is named: {message}");
                assert!(!message.contains("rrrr"), "no payload in the message");
            }
            other => panic!("{id}: {other}"),
        }
        if answer.status == 202 {
            accepted.insert(id);
        } else {
            refused.push(id);
            break;
        }
    }
    assert!(!refused.is_empty(), "the limit was hit within 2000 events");
    assert!(!relay.wait_exit().await.success(), "the relay stops with a failure, for systemd to restart it");
    let logs = relay.logs();
    assert!(
        logs.iter().any(|l| l["level"] == "ERROR" && l["message"].as_str().unwrap_or("").starts_with("The store cannot write")),
        "the reason is logged"
    );
    assert!(logs.iter().all(|l| !l.to_string().contains("rrrrrrrr")), "no payload in the logs");

    // systemd's Restart=on-failure while the disk is still full: the relay must stop again by itself
    // (at open, or at its first write), and leave the store as it was.
    env.write_config(&Setup { subscriptions: catch_all(&receiver.url("/")), ..Setup::default() });
    let still_full = start_with_file_size_limit(&env, 4096).await;
    assert!(!still_full.status.success(), "a relay that cannot write stops");
    let said = String::from_utf8_lossy(&still_full.stderr);
    assert!(said.contains("File too large"), "it says why:\n{said}");

    // Once the disk has room again.
    let relay = env.start().await;
    for id in &refused {
        let shown = send(&relay.unix, Call::get(&format!("/v1/events/{id}"))).await;
        match shown.status.as_u16() {
            404 => {}
            // The write may have reached the disk before the commit failed; then it is whole.
            200 => assert_eq!(shown.json()["deliveries"].as_array().unwrap().len(), 1, "{id} is whole"),
            other => panic!("{id}: {other}"),
        }
    }
    let mut delivered = BTreeSet::new();
    while !accepted.is_subset(&delivered) {
        delivered.insert(receiver.next().await.header("webhook-id").to_owned());
    }
    assert_eq!(relay.post_unix(&event("after-restart")).await.status, 202, "ingest works again");
}
