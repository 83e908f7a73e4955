//! Resource limits the relay sets for itself at start (SPEC §7: running out of file descriptors is not a
//! disk failure). The soft open-file limit is often 1,024 (systemd's default) while the hard limit is far
//! higher; a relay with many connections, sled's files and blob files needs more.
//!
//! The descriptors are then budgeted, so that connections can never take the ones the store needs
//! (an `EMFILE` inside sled while it writes a blob file would break the store): each listener may hold a
//! quarter of the soft limit ([`listener_connections`]), outbound deliveries together another quarter
//! ([`outbound_connections`]), and the last quarter stays for the store, the config watcher and logs.

use std::io;

/// Raises the soft limit on open files to the hard limit; returns the soft limit before and after.
pub fn raise_open_files() -> io::Result<(u64, u64)> {
    let mut limit = open_files_limit()?;
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// The soft and hard limits on open files.
fn open_files_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// The soft limit on open files now (1,024 if it cannot be read).
fn open_files() -> u64 {
    open_files_limit().map_or(1024, |limit| limit.rlim_cur)
}

/// Open connections per listener at most (see the module doc).
pub fn listener_connections() -> usize {
    usize::try_from(open_files() / 4).unwrap_or(usize::MAX).clamp(16, 4096)
}

/// Outbound connections of all subscriptions together at most (see the module doc); each subscription
/// is also held to its `concurrency`.
pub fn outbound_connections() -> usize {
    usize::try_from(open_files() / 4).unwrap_or(usize::MAX).clamp(16, 65536)
}

/// Warns when the enabled subscriptions' `concurrency` together is more than [`outbound_connections`]:
/// their attempts then wait for each other's connections (and may time out waiting).
pub fn warn_if_outbound_oversubscribed(config: &crate::config::Config) {
    let wanted: usize = config.subscriptions.iter().filter(|s| s.enabled).map(|s| s.delivery.concurrency).sum();
    let budget = outbound_connections();
    if wanted > budget {
        tracing::warn!(
            concurrency = wanted,
            outbound_connections = budget,
            "The subscriptions' concurrency together is more than the relay's outbound connections (a quarter \
             of the open-file limit): raise LimitNOFILE or lower concurrency."
        );
    }
}
