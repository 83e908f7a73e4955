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

/// Runs `check` on `text` and asserts it reports exactly the `expected` problems, each at its place.
fn assert_problems(text: &str, expected: &[(&str, usize, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    let output = hookrelay(&["check", "-c", path.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    for (needle, nth, message) in expected {
        let (line, column) = position(text, needle, *nth);
        let prefix = format!("{}:{line}:{column}: ", path.display());
        assert!(
            lines.iter().any(|l| l.starts_with(&prefix) && l.contains(message)),
            "expected `{prefix}...{message}` in:\n{printed}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "one line per problem:\n{printed}");
    printed
}

#[test]
fn check_reports_every_problem_with_its_line_and_column() {
    let printed = assert_problems(BROKEN, EXPECTED);
    assert!(!printed.contains("s3cr3t"), "a secret value was printed:\n{printed}");
}

/// Dialect settings (SPEC §6a) that contradict each other or the relay's own headers.
const DIALECT_CONFLICTS: &str = r#"[relay]
state_dir = "state"

[ingest]
http = "127.0.0.1:8787"

[delivery.envelope]
colour = "x"

[[subscription]]
name = "clash"
url = "https://a.example/"
events = ["*"]
signature = "hmac-sha256"
signature_header = "X-Sig"
secret = "s"
user_agent = "bad\u0001agent"
headers = { "X-Event" = "k" }

[subscription.envelope]
id = "event"
type = "event"
timestamp_format = "iso"
extra = { data = 1, success = true }

[subscription.header_names]
event = "X-Event"
delivery = "bad header"
timestamp = "x-sig"
bogus = "x"

[[subscription]]
name = "standard"
url = "https://b.example/"
events = ["*"]
secret = "s"

[subscription.header_names]
id = "X-Id"
"#;

/// Before: durations and counts had no upper bound, so `retry = ["300000000years"]` passed `check` and
/// overflowed the backoff arithmetic at run time (a panic), and a 10 MB `source` went into every body;
/// urls with port 0 or a password passed too.
#[test]
fn values_past_their_upper_bounds_are_config_errors() {
    let source = "x".repeat(300);
    let text = format!(
        "[relay]\nstate_dir = \"state\"\nretention = \"20000d\"\nsource = \"{source}\"\n\
         [ingest]\nunix_socket = \"s.sock\"\nmax_body_bytes = 1073741824\n\
         [delivery]\nretry = [\"1m\", \"300000000years\"]\ntimeout = \"31d\"\nconcurrency = 5000\n\
         [[subscription]]\nname = \"a\"\nurl = \"https://127.0.0.1:0/\"\nevents = [\"*\"]\nsignature = \"none\"\n\
         [[subscription]]\nname = \"b\"\nurl = \"https://user:pw@hooks.example/\"\nevents = [\"*\"]\nsignature = \"none\"\n"
    );
    assert_problems(
        &text,
        &[
            ("\"20000d\"", 1, "over the maximum of 3650 days"),
            ("\"xxx", 1, "`source` must be at most 256 bytes"),
            ("1073741824", 1, "`max_body_bytes` must be at most"),
            ("\"300000000years\"", 1, "over the maximum of 30 days"),
            ("\"31d\"", 1, "over the maximum of 30 days"),
            ("5000", 1, "`concurrency` must be from 1 to 1024"),
            ("\"https://127.0.0.1:0/\"", 1, "port 0"),
            ("\"https://user:pw@", 1, "must not hold a user or password"),
        ],
    );
}

#[test]
fn check_reports_dialect_conflicts_with_their_line_and_column() {
    assert_problems(
        DIALECT_CONFLICTS,
        &[
            ("colour", 1, "unknown key `colour` in [delivery.envelope]"),
            ("\"bad\\u0001agent\"", 1, "`user_agent` must be a non-empty printable header value"),
            ("\"X-Event\" = \"k\"", 1, "header `X-Event` is set by the relay itself"),
            ("\"event\"", 2, "`type` and `id` are the same envelope field `event`"),
            ("\"iso\"", 1, "unknown `timestamp_format` `iso`"),
            ("data = 1", 1, "`extra.data` and `data` are the same envelope field `data`"),
            ("\"bad header\"", 1, "`bad header` is not a valid HTTP header name"),
            ("\"x-sig\"", 1, "`header_names.timestamp` and the signature header are the same header `x-sig`"),
            ("bogus", 1, "unknown key `bogus` in [subscription.header_names]"),
            ("\"X-Id\"", 1, "the id header is always `webhook-id`"),
        ],
    );
}

#[test]
fn check_accepts_every_vendor_example() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let secrets =
        ["VETIGEN_WEBHOOK_SECRET", "ODONTOLOGY_WEBHOOK_SECRET", "NOVAMED_WEBHOOK_SECRET", "CLINIK_WEBHOOK_SECRET"];
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        command.arg("check").arg("-c").arg(&path);
        for name in secrets {
            command.env(name, "example-secret");
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}: {}", path.display(), stdout(&output));
        checked += 1;
    }
    assert_eq!(checked, 5, "one example per vendor in the seeds");
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
    // Judged by the CLI itself, before any connection (the config file does not even exist).
    let missing = Path::new("/nonexistent/relay.toml");
    let cases = [
        &["deliveries", "--limit", "0"][..],
        &["deliveries", "--status", "done"],
        &["deliveries", "--after", "bogus"],
        &["retry", "--failed", "--since", "soon"],
        &["resend"],
        &["erase"],
    ];
    for args in cases {
        assert_eq!(hookrelay(args, Some(missing)).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn secret_prints_a_fresh_32_byte_whsec_key() {
    let first = stdout(&hookrelay(&["secret"], None));
    let second = stdout(&hookrelay(&["secret"], None));
    let key = first.trim().strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(key).unwrap().len(), 32);
    assert_ne!(first, second);
}

/// `--version` names the commit it was built from, so an operator's report says exactly which build.
#[test]
fn version_names_the_commit() {
    let output = hookrelay(&["--version"], None);
    assert!(output.status.success());
    let line = stdout(&output);
    let commit = line
        .strip_prefix(&format!("hookrelay {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(commit, hookrelay::COMMIT);
    // In a git checkout (CI's, a developer's) it is this checkout's HEAD; `unknown` only outside one.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    // (cargo also sets HOOKRELAY_COMMIT for this process, from build.rs: whether it was given is asked of
    // the build instead.)
    match (env!("HOOKRELAY_COMMIT_GIVEN") == "true", head) {
        (true, _) => {}
        (false, Some(head)) => assert_eq!(commit, head, "the build's commit is HEAD"),
        (false, None) => assert_eq!(commit, "unknown"),
    }
}
