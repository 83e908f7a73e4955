//! The command line (SPEC §2): `check` lists every problem with its position, exit codes, `secret`, and
//! `run` refusing to start on a bad file.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;

fn hookrelay(args: &[&str], config_env: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    command.args(args).env_remove("HOOKRELAY_CONFIG").env_remove("RUST_LOG");
    if let Some(path) = config_env {
        command.env("HOOKRELAY_CONFIG", path);
    }
    command.output().expect("the hookrelay binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A file with one problem per marked line; each needle is the text the diagnostic must point at.
const BROKEN: &str = r#"[relay]
state_dir = "state"
max_pending = 0
colour = "blue"

[ingest]
socket_mode = "999"
http = "localhost:80:80"

[delivery]
timeout = "soon"
retry = ["1m", "often"]
signature = "rsa"

[[subscription]]
name = "Vetigen"
url = "http://api.vetigen.example/hook"
events = ["appointment.[*"]
secret = { env = "HOOKRELAY_TEST_SURELY_UNSET" }
headers = { "X-Api-Key" = "bad\u0001value-s3cr3t", "webhook-id" = "x" }

[[subscription]]
name = "dup"
url = "https://a.example/"
events = ["*"]
secret = "whsec_not base64! s3cr3t"

[[subscription]]
name = "dup"
url = "https://b.example/"
events = []
signature = "none"
"#;

/// (text the diagnostic points at, nth occurrence, words the message must contain)
const EXPECTED: &[(&str, usize, &str)] = &[
    ("0\n", 1, "`max_pending` must be at least 1"),
    ("colour", 1, "unknown key `colour` in [relay]"),
    ("\"999\"", 1, "invalid `socket_mode`"),
    ("\"localhost:80:80\"", 1, "invalid `http` address"),
    ("\"soon\"", 1, "invalid duration `soon`"),
    ("\"often\"", 1, "invalid duration `often`"),
    ("\"rsa\"", 1, "unknown `signature` `rsa`"),
    ("\"Vetigen\"", 1, "invalid subscription name"),
    ("\"http://", 1, "must use https://"),
    ("\"appointment.[*\"", 1, "invalid pattern `appointment.[*`"),
    ("{ env = \"HOOKRELAY_TEST_SURELY_UNSET\" }", 1, "environment variable `HOOKRELAY_TEST_SURELY_UNSET` is not set"),
    ("\"bad", 1, "the value of header `X-Api-Key` is not a valid header value"),
    ("\"webhook-id\"", 1, "header `webhook-id` is set by the relay itself"),
    ("\"whsec_not", 1, "not valid base64"),
    ("\"dup\"", 2, "duplicate subscription name `dup`"),
    ("[]", 1, "`events` is empty"),
];

/// 1-based line and column of the nth occurrence of `needle`.
fn position(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let offset = text.match_indices(needle).nth(nth - 1).unwrap_or_else(|| panic!("`{needle}` in the fixture")).0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn check_reports_every_problem_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let output = hookrelay(&["check", "-c", path.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    for (needle, nth, message) in EXPECTED {
        let (line, column) = position(BROKEN, needle, *nth);
        let prefix = format!("{}:{line}:{column}: ", path.display());
        assert!(
            lines.iter().any(|l| l.starts_with(&prefix) && l.contains(message)),
            "expected `{prefix}...{message}` in:\n{printed}"
        );
    }
    assert_eq!(lines.len(), EXPECTED.len(), "one line per problem:\n{printed}");
    assert!(!printed.contains("s3cr3t"), "a secret value was printed:\n{printed}");
}

#[test]
fn check_accepts_the_example_config_and_reads_hookrelay_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let output = hookrelay(&["check", "-c", example.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let from_env = hookrelay(&["check"], Some(&example));
    assert_eq!(from_env.status.code(), Some(0), "-c defaults to $HOOKRELAY_CONFIG: {}", stdout(&from_env));
}

#[test]
fn check_names_a_missing_file() {
    let output = hookrelay(&["check", "-c", "/nonexistent/relay.toml"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("/nonexistent/relay.toml: cannot read config file"), "{}", stdout(&output));
}

#[test]
fn run_refuses_to_start_on_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let output = hookrelay(&["run", "-c", path.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(":17:7: `url` must use https://"), "{stderr}");
    assert!(!dir.path().join("state").exists(), "nothing was created");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hookrelay(&["frobnicate"], None).status.code(), Some(2));
    assert_eq!(hookrelay(&["check", "--bogus"], None).status.code(), Some(2));
}

#[test]
fn secret_prints_a_fresh_32_byte_whsec_key() {
    let first = stdout(&hookrelay(&["secret"], None));
    let second = stdout(&hookrelay(&["secret"], None));
    let key = first.trim().strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(key).unwrap().len(), 32);
    assert_ne!(first, second);
}
