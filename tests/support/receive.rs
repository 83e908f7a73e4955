//! `hookrelay receive` run as a child process: its banner (url, ca_file, the subscription snippet) and the
//! requests it prints, one block each.

use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::lines::Lines;

pub struct ReceiveProcess {
    child: Child,
    pub output: Lines,
    /// The banner, from its first line to the end of the `[[subscription]]` snippet.
    pub banner: Vec<String>,
    pub url: String,
    pub ca_file: String,
}

impl ReceiveProcess {
    /// `hookrelay receive --listen 127.0.0.1:0 --dir DIR ARGS...`, once it has printed its banner.
    pub async fn start(dir: &Path, args: &[&str]) -> ReceiveProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookrelay"))
            .args(["receive", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = Lines::read(child.stdout.take().unwrap(), "receive| ");
        let banner = output
            .wait_for("the banner's snippet", |lines| {
                let end = lines.iter().position(|line| line.starts_with("secret = "))?;
                Some(lines[..=end].to_vec())
            })
            .await;
        let value_of = |key: &str| {
            let line = banner.iter().find(|line| line.starts_with(key)).unwrap_or_else(|| panic!("no {key} line"));
            let quoted = line.split('"').nth(1).unwrap();
            quoted.to_owned()
        };
        let (url, ca_file) = (value_of("url "), value_of("ca_file "));
        ReceiveProcess { child, output, banner, url, ca_file }
    }

    /// The `[[subscription]]` snippet it printed, as printed.
    pub fn snippet(&self) -> String {
        let start = self.banner.iter().position(|line| line == "[[subscription]]").expect("a snippet");
        self.banner[start..].join("\n") + "\n"
    }

    /// Waits until `n` request blocks (from `── ` to `answered …`) have been printed; returns them all.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<String> {
        self.output.wait_for(&format!("{n} requests"), |lines| Some(blocks(lines)).filter(|b| b.len() >= n)).await
    }

    pub fn stop(&mut self) {
        let pid = self.child.id().expect("receive is running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        super::within("receive to exit", self.child.wait()).await.unwrap()
    }
}

fn blocks(lines: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in lines {
        if line.starts_with("── ") {
            current = Some(Vec::new());
        }
        if let Some(block) = current.as_mut() {
            block.push(line);
            if line.starts_with("answered ") {
                found.push(block.join("\n"));
                current = None;
            }
        }
    }
    found
}
