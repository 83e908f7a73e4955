//! A child process's output read line by line as it comes, so a test can wait for a line (a readiness
//! banner, a request printed by `hookrelay receive`) instead of sleeping.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use super::PATIENCE;

#[derive(Clone)]
pub struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// The number of lines so far; the sender is dropped when the stream closes.
    count: watch::Receiver<usize>,
}

impl Lines {
    /// Starts reading `stream` (a child's stdout or stderr) in a task; `echo` prefixes copies on stderr,
    /// shown when a test fails.
    pub fn read(stream: impl AsyncRead + Unpin + Send + 'static, echo: &'static str) -> Lines {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (counter, count) = watch::channel(0);
        let kept = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("{echo}{line}");
                let mut kept = kept.lock().unwrap();
                kept.push(line);
                counter.send_replace(kept.len());
            }
        });
        Lines { lines, count }
    }

    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `found` returns something for the lines so far, and returns it.
    pub async fn wait_for<T>(&self, what: &str, found: impl Fn(&[String]) -> Option<T>) -> T {
        let mut count = self.count.clone();
        let waiting = async {
            loop {
                if let Some(value) = found(&self.lines.lock().unwrap()) {
                    return Ok(value);
                }
                if count.changed().await.is_err() {
                    return found(&self.lines.lock().unwrap()).ok_or("the stream closed");
                }
            }
        };
        let outcome = tokio::time::timeout(PATIENCE, waiting).await.unwrap_or(Err("timed out"));
        outcome.unwrap_or_else(|why| panic!("{why} waiting for {what}; the output:\n{}", self.all().join("\n")))
    }

    /// Waits for a line containing `text`.
    pub async fn wait_for_line(&self, text: &str) -> String {
        self.wait_for(text, |lines| lines.iter().find(|line| line.contains(text)).cloned()).await
    }
}
