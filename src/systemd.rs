//! systemd integration for `Type=notify` units: READY=1 once the store is open and the listeners are
//! bound, WATCHDOG=1 pings at half the `WatchdogSec=` period, STOPPING=1 when shutdown begins. Outside
//! systemd (no `NOTIFY_SOCKET`) every call does nothing.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Tells systemd the relay is ready, and starts the watchdog pings if the unit asks for them.
pub fn ready(stop: CancellationToken) {
    notify(NotifyState::Ready);
    if let Some(period) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period / 2);
            loop {
                tokio::select! {
                    _ = ticks.tick() => notify(NotifyState::Watchdog),
                    _ = stop.cancelled() => return,
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
