//! `hookrelay check` through the real binary (SPEC §2, §3, issue #17): a value of the wrong type said at
//! the value in the words of its key, a `url` without a scheme, "did you mean" for misspelt keys, where a
//! duplicate name was first defined, the success line's plural, the warnings (exit 0), and `--no-secrets`.

use std::process::Command;

use tempfile::TempDir;

/// The store key every config here sets, so that only the warnings a test is about are printed.
const STORE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A valid head of a config: `[relay]` with an `encryption_key`, and a unix-socket `[ingest]`.
fn head() -> String {
    format!(
        "[relay]\nstate_dir = \"state\"\nencryption_key = \"{STORE_KEY}\"\n\n[ingest]\nunix_socket = \"relay.sock\"\n"
    )
}

/// An unsigned subscription named `name` with `extra` lines.
fn subscription(name: &str, extra: &str) -> String {
    let url = format!("https://hooks.example.com/{name}");
    format!("\n[[subscription]]\nname = \"{name}\"\nurl = \"{url}\"\nsignature = \"none\"\n{extra}\n")
}

/// What one `check` run printed.
struct Checked {
    code: Option<i32>,
    stdout: String,
    /// The config file as `check` names it.
    file: String,
    _dir: TempDir,
}

impl Checked {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts that `message` is printed at the `nth` occurrence of `needle` in `text`, as one whole line.
    fn assert_line(&self, text: &str, needle: &str, nth: usize, message: &str) {
        let expected = format!("{}:{}: {message}", self.file, position(text, needle, nth));
        assert!(self.lines().contains(&expected.as_str()), "expected the line\n{expected}\nin:\n{}", self.stdout);
    }
}

/// Writes `text` as a config file and runs `hookrelay check [args] -c FILE` on it, with no secret or proxy
/// from the test's own environment.
fn check(text: &str, args: &[&str]) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    command.arg("check").args(args).arg("-c").arg(&path);
    for name in ["HOOKRELAY_CONFIG", "RUST_LOG", "CREDENTIALS_DIRECTORY", "HOOKRELAY_TEST_UNSET_VAR"] {
        command.env_remove(name);
    }
    for name in ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
        command.env_remove(name);
    }
    let output = command.output().expect("the hookrelay binary runs");
    Checked {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        file: path.display().to_string(),
        _dir: dir,
    }
}

/// `LINE:COL` (1-based) of the nth occurrence of `needle` in `text` (ASCII).
fn position(text: &str, needle: &str, nth: usize) -> String {
    let offset = text.match_indices(needle).nth(nth - 1).unwrap_or_else(|| panic!("`{needle}` in the fixture")).0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

/// Before: `[delivery]: invalid type: integer `30`, expected a string`, one per table, and a section with
/// such a value was reported missing as well.
#[test]
fn a_value_of_the_wrong_type_is_reported_at_the_value_in_the_words_of_its_key() {
    let text = head().replace("state_dir = \"state\"\n", "state_dir = \"state\"\nmax_pending = \"many\"\n")
        + "\n[delivery]\ntimeout = 30\nconcurrency = \"8\"\n"
        + &subscription("vet", "events = [\"*\"]\nretry = [\"1m\", 5]\nenabled = \"true\"");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    checked.assert_line(
        &text,
        "\"many\"",
        1,
        "relay.max_pending: expected a whole number like 1000000, found string \"many\"",
    );
    checked.assert_line(
        &text,
        "30\n",
        1,
        "delivery.timeout: expected a duration string like \"30s\", found integer 30",
    );
    // A second value of the same table is reported in the same run.
    checked.assert_line(
        &text,
        "\"8\"",
        1,
        "delivery.concurrency: expected a whole number like 8, found string \"8\"; write it without quotes",
    );
    checked.assert_line(&text, "5]", 1, "subscription.retry: expected a duration string like \"30s\", found integer 5");
    checked.assert_line(
        &text,
        "\"true\"",
        1,
        "subscription.enabled: expected true or false, found string \"true\"; write it without quotes",
    );
    assert_eq!(checked.lines().len(), 5, "one line per problem, no section reported missing:\n{}", checked.stdout);
}

#[test]
fn a_url_without_a_scheme_says_what_is_missing() {
    let text = head()
        + "\n[[subscription]]\nname = \"vet\"\nurl = \"hooks.example.com/x\"\nevents = [\"*\"]\nsignature = \"none\"\n";
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    checked.assert_line(
        &text,
        "\"hooks.example.com/x\"",
        1,
        "`url` must be an absolute https:// URL like \"https://hooks.example.com/x\" (no scheme given)",
    );
    assert_eq!(checked.lines().len(), 1, "{}", checked.stdout);
}

#[test]
fn a_misspelt_key_gets_the_key_it_likely_means() {
    let text =
        head().replace("state_dir =", "stat_dir =") + "colour = \"blue\"\n" + &subscription("vet", "event = [\"*\"]");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    checked.assert_line(&text, "event =", 1, "unknown key `event` in [[subscription]] #1; did you mean `events`?");
    checked.assert_line(&text, "stat_dir", 1, "unknown key `stat_dir` in [relay]; did you mean `state_dir`?");
    // Nothing close: the known keys, as before.
    let colour = checked.lines().into_iter().find(|l| l.contains("unknown key `colour`")).unwrap_or_default();
    assert!(colour.contains("expected one of: ") && !colour.contains("did you mean"), "{}", checked.stdout);
}

#[test]
fn a_duplicate_subscription_name_says_where_the_first_is() {
    let text = head() + &subscription("vet", "events = [\"*\"]") + &subscription("vet", "events = [\"lab.*\"]");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    let first_line = position(&text, "\"vet\"", 1).split(':').next().unwrap().to_owned();
    checked.assert_line(
        &text,
        "\"vet\"",
        2,
        &format!("duplicate subscription name `vet` (first defined at line {first_line})"),
    );
    assert_eq!(checked.lines().len(), 1, "{}", checked.stdout);
}

#[test]
fn the_success_line_counts_subscriptions_in_words() {
    let none = check(&head(), &[]);
    let one = check(&(head() + &subscription("a", "events = [\"*\"]")), &[]);
    let two = check(&(head() + &subscription("a", "events = [\"*\"]") + &subscription("b", "events = [\"*\"]")), &[]);
    for (checked, says) in [(none, "ok (0 subscriptions)"), (one, "ok (1 subscription)"), (two, "ok (2 subscriptions)")]
    {
        assert_eq!(checked.code, Some(0), "{}", checked.stdout);
        assert_eq!(checked.stdout, format!("{}: {says}\n", checked.file), "no warning either");
    }
}

/// SPEC §3: settings that are valid but likely mistakes are warnings; the file is still valid.
#[test]
fn likely_mistakes_are_warnings_at_their_place_and_exit_0() {
    let text = "[relay]\nstate_dir = \"state\"\n\n[ingest]\nunix_socket = \"relay.sock\"\nhttp = \"0.0.0.0:8787\"\n"
        .to_owned()
        + &subscription("everything-excluded", "events = [\"appointment.*\", \"lab.completed\"]\nexclude = [\"*\"]")
        + &subscription("unused-header", "events = [\"*\"]\nsignature_header = \"X-Sig\"")
        + &subscription("one-attempt", "events = [\"*\"]\nretry = []");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(0), "{}", checked.stdout);
    let unencrypted = "warning: no `encryption_key`: event data and response bodies are stored unencrypted in \
                       `state_dir` (see `hookrelay secret --kind store-key`)";
    checked.assert_line(&text, "[relay]", 1, unencrypted);
    let lines = checked.lines();
    let warning_at = |needle: &str, nth: usize, says: &str| {
        let prefix = format!("{}:{}: warning: ", checked.file, position(&text, needle, nth));
        assert!(
            lines.iter().any(|l| l.starts_with(&prefix) && l.contains(says)),
            "expected `{prefix}...{says}` in:\n{}",
            checked.stdout
        );
    };
    warning_at("\"0.0.0.0:8787\"", 1, "`http` listens on 0.0.0.0:8787, which is not a loopback address");
    warning_at("[\"*\"]\n", 1, "`exclude` removes every event that `events` matches");
    warning_at("\"X-Sig\"", 1, "`signature_header` is used only with `signature = \"hmac-sha256\"`");
    warning_at("[]", 1, "`retry = []`: each delivery gets a single attempt");
    assert_eq!(lines.len(), 6, "five warnings and the success line:\n{}", checked.stdout);
    assert_eq!(lines[5], format!("{}: ok (3 subscriptions)", checked.file));
}

/// The same settings, meant: a loopback listener, an exclude that leaves events, a header its scheme
/// sends, a `[delivery]` header a subscription takes, retries.
#[test]
fn settings_that_are_meant_are_not_warned_about() {
    let text = head().replace("unix_socket", "http = \"127.0.0.1:8787\"\nunix_socket")
        + "\n[delivery]\nsignature_header = \"X-Default-Sig\"\n"
        + &subscription("partial", "events = [\"*\"]\nexclude = [\"appointment.*\"]\nretry = [\"1m\"]")
        + &subscription("hmac", "events = [\"a*\"]\nexclude = [\"a?\"]").replace(
            "signature = \"none\"",
            "signature = \"hmac-sha256\"\nsignature_header = \"X-Sig\"\nsecret = \"s\"",
        )
        + &subscription("inherits", "events = [\"*\"]")
            .replace("signature = \"none\"", "signature = \"hmac-sha256\"\nsecret = \"s\"");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(0), "{}", checked.stdout);
    assert_eq!(checked.stdout, format!("{}: ok (3 subscriptions)\n", checked.file));
}

/// A `[delivery]` `signature_header` that no subscription's scheme uses is warned about once, at
/// [delivery].
#[test]
fn an_unused_default_signature_header_is_a_warning_at_delivery() {
    let text = head() + "\n[delivery]\nsignature_header = \"X-Default-Sig\"\n" + &subscription("a", "events = [\"*\"]");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(0), "{}", checked.stdout);
    let prefix = format!("{}:{}: warning: `signature_header`", checked.file, position(&text, "\"X-Default-Sig\"", 1));
    assert!(checked.lines()[0].starts_with(&prefix), "{}", checked.stdout);
    assert!(checked.lines()[0].contains("no subscription that takes it from [delivery]"), "{}", checked.stdout);
    assert_eq!(checked.lines().len(), 2, "{}", checked.stdout);
}

/// A `[delivery]` that signs with hmac-sha256 in its own header, under subscriptions that all sign another
/// way: the header is used by none of them.
#[test]
fn a_default_signature_header_every_subscription_overrides_is_a_warning() {
    let text = head()
        + "\n[delivery]\nsignature = \"hmac-sha256\"\nsignature_header = \"X-Default-Sig\"\n"
        + &subscription("a", "events = [\"*\"]")
        + &subscription("b", "events = [\"*\"]");
    let checked = check(&text, &[]);
    assert_eq!(checked.code, Some(0), "{}", checked.stdout);
    let prefix = format!("{}:{}: warning: `signature_header`", checked.file, position(&text, "\"X-Default-Sig\"", 1));
    assert!(checked.lines()[0].starts_with(&prefix), "{}", checked.stdout);
    assert_eq!(checked.lines().len(), 2, "{}", checked.stdout);
    // With no subscription yet, it is a default set up for the ones to come.
    let alone = head() + "\n[delivery]\nsignature = \"hmac-sha256\"\nsignature_header = \"X-Default-Sig\"\n";
    let checked = check(&alone, &[]);
    assert_eq!(checked.stdout, format!("{}: ok (0 subscriptions)\n", checked.file));
}

/// SPEC §2: `check --no-secrets` validates a production file from a shell without the service's
/// credentials: the sources are not read, everything else is checked as before.
#[test]
fn check_no_secrets_does_not_read_secret_sources_and_checks_the_rest() {
    let text = format!(
        "[relay]\nstate_dir = \"state\"\nencryption_key = {{ credential = \"store.key\" }}\n\n\
         [ingest]\nunix_socket = \"relay.sock\"\ntoken = {{ file = \"/nonexistent/ingest.token\" }}\n{}{}{}",
        subscription("from-env", "events = [\"*\"]")
            .replace("signature = \"none\"", "secret = { env = \"HOOKRELAY_TEST_UNSET_VAR\" }"),
        subscription("from-file", "events = [\"*\"]")
            .replace("signature = \"none\"", "secret = { file = \"/nonexistent/secret\" }"),
        subscription("v1a-only", "events = [\"*\"]")
            .replace("signature = \"none\"", "signing_key = { env = \"HOOKRELAY_TEST_UNSET_VAR\" }"),
    );

    let plain = check(&text, &[]);
    assert_eq!(plain.code, Some(1), "{}", plain.stdout);
    assert!(plain.stdout.contains("environment variable `HOOKRELAY_TEST_UNSET_VAR` is not set"), "{}", plain.stdout);
    assert!(plain.stdout.contains("cannot read secret file `/nonexistent/secret`"), "{}", plain.stdout);
    assert!(plain.stdout.contains("credential `store.key` needs $CREDENTIALS_DIRECTORY"), "{}", plain.stdout);

    let unread = check(&text, &["--no-secrets"]);
    assert_eq!(unread.code, Some(0), "{}", unread.stdout);
    assert_eq!(unread.stdout, format!("{}: ok (3 subscriptions; secret sources not read)\n", unread.file));

    // Everything but reading the sources is still checked: types, urls, a literal secret, a source's shape.
    let broken = text.replace("[ingest]", "[delivery]\ntimeout = 30\n\n[ingest]")
        + &subscription("literal", "events = [\"*\"]")
            .replace("signature = \"none\"", "secret = \"whsec_not base64!\"")
            .replace("https://hooks.example.com/literal", "hooks.example.com/literal")
        + &subscription("bad-source", "events = [\"*\"]").replace("signature = \"none\"", "secret = { env = \"\" }");
    let unread = check(&broken, &["--no-secrets"]);
    assert_eq!(unread.code, Some(1), "{}", unread.stdout);
    unread.assert_line(
        &broken,
        "30\n",
        1,
        "delivery.timeout: expected a duration string like \"30s\", found integer 30",
    );
    unread.assert_line(&broken, "\"whsec_not", 1, "a `whsec_` secret is not valid base64 after the prefix");
    assert!(unread.stdout.contains("`url` must be an absolute https:// URL"), "{}", unread.stdout);
    assert!(unread.stdout.contains("`` is not an environment variable name"), "{}", unread.stdout);
    assert_eq!(unread.lines().len(), 4, "{}", unread.stdout);
    assert!(!unread.stdout.contains("not base64!"), "a secret's value is never printed:\n{}", unread.stdout);

    let syntax = check("[relay\nstate_dir = \"state\"\n", &["--no-secrets"]);
    assert_eq!(syntax.code, Some(1), "{}", syntax.stdout);
    assert!(syntax.stdout.contains("invalid TOML"), "{}", syntax.stdout);
}
