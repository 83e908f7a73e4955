//! Shutdown in two steps (SPEC §7): on SIGTERM/SIGINT stop accepting and stop starting attempts; ten
//! seconds later abandon what is still in flight (it stays pending on disk and is retried after the
//! restart). A second signal exits at once.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// How long in-flight attempts get to finish after a shutdown signal.
pub const GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    /// Stop accepting events and starting attempts.
    pub stop: CancellationToken,
    /// Give up on attempts still in flight.
    pub abandon: CancellationToken,
}

impl Shutdown {
    /// Begins a shutdown: stops at once, abandons after [`GRACE`].
    pub fn begin(&self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        let abandon = self.abandon.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            abandon.cancel();
        });
    }

    /// Stops and abandons at once, for when nothing in flight could be recorded anyway.
    pub fn abort(&self) {
        self.stop.cancel();
        self.abandon.cancel();
    }

    /// Begins a shutdown on the first SIGTERM or SIGINT; exits the process on the second.
    pub fn on_signals(&self) -> std::io::Result<()> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            for round in 0.. {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                if round == 0 {
                    tracing::info!(grace_seconds = GRACE.as_secs(), "Shutdown requested; finishing in-flight work.");
                    shutdown.begin();
                } else {
                    tracing::warn!(
                        "Second shutdown signal; exiting now. Unfinished attempts are retried after restart."
                    );
                    std::process::exit(1);
                }
            }
        });
        Ok(())
    }
}
