//! The real `hookrelay` binary as a child process, on a config written into a temp dir, with its JSON
//! log lines collected so tests can wait for what the relay says (readiness, attempts) instead of sleeping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use hookrelay::store::{DeliveryRecord, Store};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::client::{self, Answer, Call, Target};
use super::receiver::{always, Receiver};
use super::tls::TestCa;
use super::{within, PATIENCE};

/// Extra lines for each section of the test config; the defaults keep schedules short and logs JSON.
#[derive(Default)]
pub struct Setup {
    pub relay: String,
    pub ingest: String,
    pub delivery: String,
    /// `[[subscription]]` tables.
    pub subscriptions: String,
    /// `[log] level`; by default INFO, and every attempt's line (the quiet ones are at DEBUG).
    pub log_level: &'static str,
}

/// A temp dir holding a config, the test CA, the state directory and the socket.
pub struct TestEnv {
    pub dir: TempDir,
    pub ca: TestCa,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        ca.write_ca(&dir.path().join("ca.pem"));
        TestEnv { dir, ca }
    }

    /// A test env whose config sends every event to one receiver that answers 200 (see [`catch_all`]).
    pub async fn with_catch_all() -> (TestEnv, Receiver) {
        let env = TestEnv::new();
        let receiver = Receiver::start(&env.ca, always(200)).await;
        env.write_config(&Setup { subscriptions: catch_all(&receiver.url("/hook")), ..Setup::default() });
        (env, receiver)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("relay.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The config file's text for `setup`.
    pub fn config_text(&self, setup: &Setup) -> String {
        format!(
            "[relay]\nstate_dir = \"state\"\n{}\n\
             [ingest]\nunix_socket = \"relay.sock\"\nhttp = \"127.0.0.1:0\"\n{}\n\
             [log]\nformat = \"json\"\nlevel = \"{}\"\n\n\
             [delivery]\nca_file = \"ca.pem\"\ntimeout = \"5s\"\nretry = [\"50ms\", \"50ms\"]\njitter = 0.0\n{}\n\
             {}\n",
            setup.relay,
            setup.ingest,
            if setup.log_level.is_empty() { "info,hookrelay::delivery::worker=debug" } else { setup.log_level },
            setup.delivery,
            setup.subscriptions
        )
    }

    /// Writes the config in place (truncate and rewrite).
    pub fn write_config(&self, setup: &Setup) {
        std::fs::write(self.config_path(), self.config_text(setup)).unwrap();
    }

    /// Saves the config the way vim, `sed -i` and Ansible do: a temp file renamed over the original.
    pub fn save_by_rename(&self, setup: &Setup) {
        let temp = self.dir.path().join(".relay.toml.swp");
        std::fs::write(&temp, self.config_text(setup)).unwrap();
        std::fs::rename(&temp, self.config_path()).unwrap();
    }

    pub async fn start(&self) -> RelayProcess {
        RelayProcess::start(&self.config_path(), &[]).await
    }

    /// Starts the relay with extra environment variables (secrets read with `{ env = ... }`).
    pub async fn start_with_env(&self, vars: &[(&str, &str)]) -> RelayProcess {
        RelayProcess::start(&self.config_path(), vars).await
    }

    /// Starts the relay under `prlimit --nofile=<limits>` (soft:hard), as systemd's `LimitNOFILE=` would.
    pub async fn start_with_open_files(&self, limits: &str) -> RelayProcess {
        let nofile = format!("--nofile={limits}");
        RelayProcess::start_under(&["prlimit", &nofile, "--"], &self.config_path(), &[], &[]).await
    }

    /// Opens the store to look at it; only while no relay runs on this state dir, and once per test
    /// (the database stays locked until the store's commit thread has wound down).
    pub fn store(&self) -> Store {
        Store::open(&self.state_dir(), None, Default::default()).unwrap()
    }
}

/// Runs `hookrelay <args> -c <config>` (an admin or helper command) and returns its output.
pub async fn cli(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookrelay")).args(args).arg("-c").arg(env.config_path()).output().await.unwrap()
}

/// An unsigned `[[subscription]]` for every event, with `extra` settings.
pub fn unsigned_subscription(name: &str, url: &str, extra: &str) -> String {
    format!("[[subscription]]\nname = \"{name}\"\nurl = \"{url}\"\nevents = [\"*\"]\nsignature = \"none\"\n{extra}\n")
}

/// A `[[subscription]]` named `all` for every event, unsigned.
pub fn catch_all(url: &str) -> String {
    unsigned_subscription("all", url, "")
}

/// Every delivery in the store, in acceptance order.
pub fn deliveries(store: &Store) -> Vec<DeliveryRecord> {
    store.deliveries().collect::<Result<Vec<_>, _>>().unwrap()
}

/// Collected log lines: JSON objects, or plain strings for lines that are not JSON.
#[derive(Clone)]
struct Logs {
    lines: Arc<Mutex<Vec<Value>>>,
    /// The number of lines so far; the sender is dropped when stderr closes.
    count: watch::Receiver<usize>,
}

pub struct RelayProcess {
    child: Child,
    pub unix: Target,
    pub tcp: Option<Target>,
    logs: Logs,
}

impl RelayProcess {
    /// Starts `hookrelay run -c config` and waits for its "Relay ready." line.
    pub async fn start(config: &std::path::Path, vars: &[(&str, &str)]) -> RelayProcess {
        Self::start_with_args(config, vars, &[]).await
    }

    /// [`RelayProcess::start`] with more arguments to `run`.
    pub async fn start_with_args(config: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> RelayProcess {
        Self::start_under(&[], config, vars, args).await
    }

    /// [`RelayProcess::start_with_args`] under a wrapper command, e.g. `["prlimit", "--nofile=600", "--"]`.
    pub async fn start_under(
        wrapper: &[&str],
        config: &std::path::Path,
        vars: &[(&str, &str)],
        args: &[&str],
    ) -> RelayProcess {
        Self::spawn(wrapper, config, vars, args, None).await
    }

    /// [`RelayProcess::start`] that also appends each log line to the file `copy`, as a log redirected
    /// to a file would be written.
    pub async fn start_copying_log(config: &std::path::Path, vars: &[(&str, &str)], copy: PathBuf) -> RelayProcess {
        Self::spawn(&[], config, vars, &[], Some(copy)).await
    }

    async fn spawn(
        wrapper: &[&str],
        config: &std::path::Path,
        vars: &[(&str, &str)],
        args: &[&str],
        copy: Option<PathBuf>,
    ) -> RelayProcess {
        // HOOKRELAY_BINARY runs another build (the benchmark compares two side by side); said on stderr,
        // so that a variable left exported does not silently test another build.
        let binary = match std::env::var("HOOKRELAY_BINARY") {
            Ok(other) => {
                eprintln!("HOOKRELAY_BINARY is set: running {other}");
                other
            }
            Err(_) => env!("CARGO_BIN_EXE_hookrelay").into(),
        };
        let binary = binary.as_str();
        let (program, before) = match wrapper.split_first() {
            Some((program, rest)) => (*program, [rest, &[binary]].concat()),
            None => (binary, Vec::new()),
        };
        let mut child = Command::new(program)
            .args(before)
            .args(["run", "-c"])
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            // Removed subscriptions' work is cancelled at once unless a test asks for the grace period.
            .env(hookrelay::relay::REMOVED_GRACE_VARIABLE, "0s")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the hookrelay binary starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (counter, count) = watch::channel(0);
        let collected = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            let mut copy = copy.map(|path| std::fs::File::options().create(true).append(true).open(path).unwrap());
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(file) = copy.as_mut() {
                    std::io::Write::write_all(file, format!("{line}\n").as_bytes()).unwrap();
                }
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                let mut lines = collected.lock().unwrap();
                lines.push(value);
                counter.send_replace(lines.len());
            }
        });
        let logs = Logs { lines, count };
        let ready = logs.wait_for("the relay to be ready", 1, |line| line["message"] == "Relay ready.").await;
        let unix = Target::Unix(PathBuf::from(ready["unix_socket"].as_str().expect("a unix socket")));
        let tcp = ready["http"].as_str().map(|a| Target::Tcp(a.parse::<SocketAddr>().unwrap()));
        RelayProcess { child, unix, tcp, logs }
    }

    pub async fn post_unix(&self, body: &str) -> Answer {
        client::send(&self.unix, Call::events(body.to_owned())).await
    }

    /// `GET path` on the admin API (unix socket), which must answer 200; its JSON body.
    pub async fn admin_get(&self, path: &str) -> Value {
        let answer = client::send(&self.unix, Call::get(path)).await;
        assert_eq!(answer.status, 200, "{path}: {}", String::from_utf8_lossy(&answer.body));
        answer.json()
    }

    pub fn tcp(&self) -> &Target {
        self.tcp.as_ref().expect("an HTTP listener")
    }

    /// Waits for the `n`-th log line whose `message` is `message` (and which passes `filter`).
    pub async fn wait_for_log(&self, message: &str, n: usize, filter: impl Fn(&Value) -> bool) -> Value {
        self.logs.wait_for(message, n, |line| line["message"] == message && filter(line)).await
    }

    /// Waits for the `n`-th log line that passes `matches`.
    pub async fn wait_for_line(&self, what: &str, n: usize, matches: impl Fn(&Value) -> bool) -> Value {
        self.logs.wait_for(what, n, matches).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the relay is running")
    }

    /// Resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The log lines so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lines.lock().unwrap().clone()
    }

    /// SIGTERM, as systemd stops a service.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGHUP, as `systemctl reload` sends it.
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("the relay is running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGKILL: the process dies at once, without any chance to flush.
    pub async fn kill9(mut self) {
        self.child.kill().await.unwrap();
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        within("the relay to exit", self.child.wait()).await.unwrap()
    }
}

impl Logs {
    async fn wait_for(&self, what: &str, n: usize, matches: impl Fn(&Value) -> bool) -> Value {
        let find = || self.lines.lock().unwrap().iter().filter(|line| matches(line)).nth(n - 1).cloned();
        let mut count = self.count.clone();
        let waiting = async {
            loop {
                if let Some(line) = find() {
                    return Ok(line);
                }
                if count.changed().await.is_err() {
                    return find().ok_or("the relay exited");
                }
            }
        };
        let outcome = tokio::time::timeout(PATIENCE, waiting).await.unwrap_or(Err("timed out"));
        outcome.unwrap_or_else(|why| {
            panic!("{why} before logging `{what}` ({n}); its log:\n{}", render(&self.lines.lock().unwrap()))
        })
    }
}

fn render(lines: &[Value]) -> String {
    lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
}
