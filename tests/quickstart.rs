//! The README's Quickstart, run as written: its commands, in order, in a temp copy of the example config's
//! directory (`cargo run --` is the binary under test). They must put a verified signed delivery on the
//! receiver's screen.

mod support;

use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use support::lines::Lines;

/// The first ```sh block under "## Quickstart", one command per line.
fn quickstart_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("\n## Quickstart\n").expect("a Quickstart section")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").unwrap()];
    block.lines().filter(|line| !line.trim().is_empty()).map(str::to_owned).collect()
}

/// `command` under `sh`, with `cargo run --` replaced by the binary under test.
fn shell(command: &str, dir: &Path) -> Command {
    let line = command.replacen("cargo run --", &format!("exec '{}'", env!("CARGO_BIN_EXE_hookrelay")), 1);
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(line).current_dir(dir).env_remove("HOOKRELAY_CONFIG").kill_on_drop(true);
    shell
}

fn terminate(child: &Child) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

#[tokio::test]
async fn the_readme_quickstart_puts_a_verified_signed_delivery_on_the_screen() {
    let commands = quickstart_commands();
    assert_eq!(commands.len(), 3, "three commands: {commands:#?}");
    assert!(commands[0].starts_with("cargo run -- receive "), "{}", commands[0]);
    assert!(commands[1].starts_with("cargo run -- run -c relay.example.toml"), "{}", commands[1]);
    assert!(commands[2].starts_with("cargo run -- send -c relay.example.toml "), "{}", commands[2]);

    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    std::fs::copy(example, dir.path().join("relay.example.toml")).unwrap();

    let mut receive = shell(&commands[0], dir.path()).stdout(Stdio::piped()).spawn().unwrap();
    let received = Lines::read(receive.stdout.take().unwrap(), "receive| ");
    received.wait_for_line("hookrelay receive: listening on https://127.0.0.1:8443/").await;

    let mut relay = shell(&commands[1], dir.path()).stderr(Stdio::piped()).spawn().unwrap();
    let logged = Lines::read(relay.stderr.take().unwrap(), "relay| ");
    logged.wait_for_line("Relay ready.").await;

    let sent = shell(&commands[2], dir.path()).output().await.unwrap();
    assert!(sent.status.success(), "send: {}", String::from_utf8_lossy(&sent.stderr));
    let id = String::from_utf8(sent.stdout).unwrap().trim().to_owned();
    assert!(id.starts_with("evt_"), "send prints the event id: {id}");

    let block = received
        .wait_for("the delivery", |lines| {
            let start = lines.iter().position(|line| line.starts_with("── POST / "))?;
            let end = start + lines[start..].iter().position(|line| line.starts_with("answered "))?;
            Some(lines[start..=end].join("\n"))
        })
        .await;
    assert!(block.contains(&format!("\nwebhook-id: {id}\n")), "{block}");
    assert!(block.contains("\nsignature: webhook-signature v1 verified with --secret #1\n"), "{block}");
    assert!(block.ends_with("\nanswered 200 OK"), "{block}");

    terminate(&relay);
    terminate(&receive);
    assert!(relay.wait().await.unwrap().success());
    assert!(receive.wait().await.unwrap().success());
    let warned = logged.all().join("\n");
    assert!(!warned.contains("ca_file does not exist"), "receive made the CA before the relay read it: {warned}");
}
