//! systemd integration for `Type=notify` units: READY=1 once the store is open and the listeners are
//! bound, WATCHDOG=1 pings at half the `WatchdogSec=` period while the store's commit thread answers,
//! STOPPING=1 when shutdown begins. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::store::Store;

/// Tells systemd the relay is ready, and starts the watchdog pings if the unit asks for them. Each ping
/// follows a commit round of `store` (an empty one costs a flush): a relay whose commit thread is wedged
/// stops pinging, and systemd restarts it, instead of answering health checks while accepting nothing.
pub fn ready(stop: CancellationToken, store: Store) {
    notify(NotifyState::Ready);
    if let Some(period) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period / 2);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.cancelled() => return,
                }
                match tokio::time::timeout(period / 2, store.commit()).await {
                    Ok(Ok(())) => notify(NotifyState::Watchdog),
                    Ok(Err(error)) => warn!(%error, "The store cannot commit; not pinging the watchdog."),
                    // Out of file descriptors is not a hang (SPEC §7): the commit goes on once one is free.
                    Err(_) if store.waiting_for_descriptors() => notify(NotifyState::Watchdog),
                    Err(_) => warn!("The store's commit thread did not answer in time; not pinging the watchdog."),
                }
            }
        });
    }
}

pub fn stopping() {
    notify(NotifyState::Stopping);
}

fn notify(state: NotifyState) {
    if let Err(error) = sd_notify::notify(&[state]) {
        warn!(%error, "Cannot notify systemd.");
    }
}
