//! Reloading the config while running (SPEC §7): on a change of the file, or on SIGHUP, load and
//! validate the file; if it is valid, swap it in at once; if not, keep the running config and log every
//! problem. Bursts of file events (an editor's save is several) are debounced into one reload.

mod diff;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::delivery::Dispatcher;
use crate::lifecycle::Deliveries;
use crate::metrics::Metrics;

pub use diff::{keep_start_only_settings, SubscriptionChanges};
use watch::ConfigWatcher;

/// Quiet time after the last file event before the file is read.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A file that keeps changing is still read this long after the first change of a burst (SPEC §7).
const MAX_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The file (or its symlink) changed; an unchanged text is not reloaded.
    FileChanged,
    /// SIGHUP: reload even if the text is unchanged, since secrets read from env or files may have moved.
    Hangup,
}

/// Takes over SIGHUP (whose default action would end the process) before anything else can deliver it.
pub fn hangup_signal() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// What a reload changes: the config everyone reads, the workers, and the lifecycle owner (a removed
/// subscription's queue starts its grace period).
pub struct Reloader {
    pub config: Arc<ArcSwap<Config>>,
    pub dispatcher: Arc<Dispatcher>,
    pub deliveries: Arc<Deliveries>,
    pub metrics: Arc<Metrics>,
}

/// Starts watching the config file and acting on `hangups`, until `stop`.
pub fn spawn(reloader: Reloader, mut hangups: Signal, stop: CancellationToken) {
    let path = reloader.config.load().file.clone();
    let (sender, triggers) = mpsc::unbounded_channel();
    let on_change = sender.clone();
    let watcher = match ConfigWatcher::start(&path, move || {
        let _ = on_change.send(Trigger::FileChanged);
    }) {
        Ok(watcher) => {
            // A save between the first load and the start of the watch would otherwise go unnoticed.
            let _ = sender.send(Trigger::FileChanged);
            Some(watcher)
        }
        Err(error) => {
            warn!(file = %path.display(), %error, "Cannot watch the config file; reload it with SIGHUP.");
            None
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if sender.send(Trigger::Hangup).is_err() {
                break;
            }
        }
    });
    tokio::spawn(run(reloader, watcher, triggers, stop));
}

async fn run(
    reloader: Reloader,
    mut watcher: Option<ConfigWatcher>,
    triggers: mpsc::UnboundedReceiver<Trigger>,
    stop: CancellationToken,
) {
    settle(triggers, stop, |forced| {
        if let Some(watcher) = &mut watcher {
            if let Err(error) = watcher.refresh() {
                warn!(%error, "Cannot follow the config file's symlink target; reload it with SIGHUP.");
            }
        }
        reloader.reload(forced);
    })
    .await
}

/// Calls `act` once per burst of triggers, [`DEBOUNCE`] after the last one of the burst, or [`MAX_WAIT`]
/// after its first one if it goes on that long; `forced` when the burst held a SIGHUP.
async fn settle(mut triggers: mpsc::UnboundedReceiver<Trigger>, stop: CancellationToken, mut act: impl FnMut(bool)) {
    loop {
        let mut forced = tokio::select! {
            trigger = triggers.recv() => match trigger {
                Some(trigger) => trigger == Trigger::Hangup,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let quiet = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + DEBOUNCE));
            tokio::select! {
                trigger = triggers.recv() => forced |= trigger == Some(Trigger::Hangup),
                _ = quiet => break,
                _ = stop.cancelled() => return,
            }
        }
        act(forced);
    }
}

impl Reloader {
    /// Loads the file and applies it if it is valid (and, unless `forced`, changed).
    pub fn reload(&self, forced: bool) {
        let current = self.config.load_full();
        match Config::load(&current.file) {
            Err(diagnostics) => {
                for problem in &diagnostics.0 {
                    error!(%problem, "Invalid config file.");
                }
                self.metrics.reload_rejected();
                error!(
                    problems = diagnostics.0.len(),
                    "Config not reloaded; the relay keeps running on the previous config."
                );
            }
            Ok(new) if !forced && new.digest == current.digest => {
                debug!(file = %current.file.display(), "Config file touched but unchanged.");
            }
            Ok(new) => {
                // Counted before `apply` says "Config reloaded.": whoever reads that line sees the count.
                self.metrics.reload_applied();
                self.apply(&current, new);
            }
        }
    }

    /// Swaps in a valid config: new events are routed by it and queued deliveries use their subscription's
    /// new settings from their next attempt; a removed subscription's queued deliveries wait for the
    /// removal grace period, and are cancelled then unless it is back.
    fn apply(&self, current: &Config, mut new: Config) {
        let needs_restart = keep_start_only_settings(current, &mut new);
        let changes = SubscriptionChanges::between(current, &new);
        // Before the new config is seen: a scrape that finds a new subscription finds its series too.
        self.metrics.prepare_subscriptions(&changes.added);
        self.config.store(Arc::new(new));
        for name in &changes.added {
            self.dispatcher.ensure_worker(name);
        }
        self.deliveries.config_changed(&changes.added, &changes.removed);
        info!(
            added = ?changes.added,
            removed = ?changes.removed,
            changed = ?changes.changed,
            "Config reloaded."
        );
        for setting in needs_restart {
            warn!(setting, "Changing this setting requires restart; the running value stays until then.");
        }
        let applied = self.config.load();
        crate::limits::warn_if_outbound_oversubscribed(&applied);
        crate::delivery::warn_about_missing_ca_files(&applied);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `settle` on paused time, feeding it `(delay before, trigger)` pairs; returns each `act` call's
    /// `forced` flag.
    async fn acts_for(script: Vec<(Duration, Trigger)>) -> Vec<bool> {
        let (sender, triggers) = mpsc::unbounded_channel();
        let acts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = Arc::clone(&acts);
        let task = tokio::spawn(settle(triggers, CancellationToken::new(), move |forced| {
            recorded.lock().unwrap().push(forced)
        }));
        for (delay, trigger) in script {
            tokio::time::sleep(delay).await;
            sender.send(trigger).unwrap();
        }
        tokio::time::sleep(DEBOUNCE * 2).await;
        drop(sender);
        task.await.unwrap();
        let acts = acts.lock().unwrap().clone();
        acts
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_file_events_is_one_reload() {
        let quick = DEBOUNCE / 4;
        let burst = vec![(quick, Trigger::FileChanged), (quick, Trigger::FileChanged), (quick, Trigger::FileChanged)];
        assert_eq!(acts_for(burst).await, [false]);
    }

    /// Before: a file rewritten every 10 ms was not reloaded until the writes stopped.
    #[tokio::test(start_paused = true)]
    async fn a_file_that_keeps_changing_is_still_read_every_two_seconds() {
        let storm = vec![(Duration::from_millis(10), Trigger::FileChanged); 600];
        let acts = acts_for(storm).await;
        assert!((3..=4).contains(&acts.len()), "6 s of writes every 10 ms: {} reloads", acts.len());
    }

    #[tokio::test(start_paused = true)]
    async fn events_apart_are_separate_reloads_and_a_hangup_forces() {
        let apart = DEBOUNCE * 3;
        let script =
            vec![(apart, Trigger::FileChanged), (apart, Trigger::FileChanged), (DEBOUNCE / 4, Trigger::Hangup)];
        assert_eq!(acts_for(script).await, [false, true]);
    }
}
