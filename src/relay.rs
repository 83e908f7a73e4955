//! Wires the parts together: open the store, rebuild the queues from it, start the workers, bind the
//! listeners, and run until shutdown. Tests and `main` both call [`run`].

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::admin::Admin;
use crate::config::Config;
use crate::delivery::Dispatcher;
use crate::ingest::{self, Acceptor, Rejection, Routes};
use crate::lifecycle::{Deliveries, REMOVED_GRACE};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::shutdown::{Shutdown, GRACE};
use crate::store::FlushObserver;
use crate::store::{Keyring, SealedRecords, Store};
use crate::{reload, retention, systemd};

/// Overrides [`REMOVED_GRACE`] (a duration such as `2s`): for tests, and for an operator who wants a
/// removed subscription's work cancelled sooner or later than after 10 minutes.
pub const REMOVED_GRACE_VARIABLE: &str = "HOOKRELAY_REMOVED_SUBSCRIPTION_GRACE";

/// Overrides how long the result of an attempt may wait to share a flush ([`crate::store::LINGER`], a
/// duration such as `2ms`; `0s` never waits): for an operator who trades a little CPU for latency or the
/// other way round, and for tests that make it long enough that only a hurry ends it.
pub const COMMIT_LINGER_VARIABLE: &str = "HOOKRELAY_COMMIT_LINGER";

/// How `hookrelay run` was asked to start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// `--accept-damaged-store`: start even if the store holds fewer deliveries than its ledger says (the
    /// figures are logged).
    pub accept_damaged_store: bool,
}

/// Runs the relay until `shutdown` is triggered and everything in flight has finished or been abandoned.
pub async fn run(config: Config, shutdown: Shutdown, options: Options) -> anyhow::Result<()> {
    let hangups = reload::hangup_signal().context("cannot listen for SIGHUP")?;
    let client_timeout = ingest::client_timeout()?;
    let removed_grace = crate::env_duration::read(REMOVED_GRACE_VARIABLE, REMOVED_GRACE)?;
    let commit_linger = crate::env_duration::read(COMMIT_LINGER_VARIABLE, crate::store::LINGER)?;
    match crate::limits::raise_open_files() {
        Ok((before, after)) if after > before => info!(before, after, "Open-file limit raised."),
        Ok(_) => {}
        Err(error) => warn!(%error, "Cannot raise the open-file limit."),
    }
    crate::limits::warn_if_outbound_oversubscribed(&config);
    crate::delivery::warn_about_missing_ca_files(&config);
    let metrics = Arc::new(Metrics::default());
    let observer: FlushObserver = {
        let metrics = Arc::clone(&metrics);
        Arc::new(move |duration| metrics.flush(duration))
    };
    crate::store::keep_new_files_private();
    let keyring = config.relay.keyring.clone();
    match keyring.sealing_key() {
        Some(key) => info!(%key, "Event data and response bodies are sealed at rest."),
        None => warn!(
            "No encryption_key is set: event data (patient data) and response bodies are stored unencrypted in \
             the state directory until retention removes them. Set [relay] encryption_key (see `hookrelay secret \
             --kind store-key`)."
        ),
    }
    let opening = Instant::now();
    let state_dir = config.relay.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir, Some(observer), keyring))
        .await
        .context("the store's open stopped unexpectedly")?
        .with_context(|| format!("cannot open the store in {}", config.relay.state_dir.display()))?;
    let opened = opening.elapsed();
    store.set_linger(commit_linger);
    let subscriptions: Vec<String> = config.subscriptions.iter().map(|s| s.name.clone()).collect();
    // Every series from start, at zero (see crate::metrics).
    metrics.prepare_subscriptions(&subscriptions);
    metrics.prepare_rejection_reasons(&Rejection::reasons());
    let config = Arc::new(ArcSwap::from_pointee(config));
    let deliveries = Deliveries::new(store.clone(), Arc::clone(&config), Arc::clone(&metrics), removed_grace);
    let recovered = deliveries.recover().await.context("cannot read the store")?;
    check_ledger(&store, recovered.deliveries, options)?;
    info!(
        state_dir = %config.load().relay.state_dir.display(),
        pending = recovered.pending,
        unconfigured = recovered.unconfigured,
        quarantined = recovered.quarantined,
        open_ms = opened.as_millis() as u64,
        recover_ms = (opening.elapsed() - opened).as_millis() as u64,
        "Store opened."
    );

    report_older_keys(&store, &config.load().relay.keyring).await?;

    let dispatcher = Arc::new(Dispatcher::new(Arc::clone(&deliveries), shutdown.clone()));
    for subscription in &subscriptions {
        dispatcher.ensure_worker(subscription);
    }

    // Before "ready": a save right after the relay says it is ready must not be missed.
    let reloader = Reloader {
        config: Arc::clone(&config),
        dispatcher: Arc::clone(&dispatcher),
        deliveries: Arc::clone(&deliveries),
        metrics: Arc::clone(&metrics),
    };
    reload::spawn(reloader, hangups, shutdown.stop.clone());
    retention::spawn(Arc::clone(&deliveries), shutdown.stop.clone());

    let routes = Arc::new(Routes {
        acceptor: Acceptor::new(Arc::clone(&config), Arc::clone(&deliveries)),
        admin: Admin { deliveries },
        metrics,
        ready: Default::default(),
        client_timeout,
    });
    let (servers, socket_path) = bind_listeners(&config.load(), &routes, &shutdown).await?;
    systemd::ready(shutdown.stop.clone(), store.clone());

    let broken = store.broken();
    let store_failed = tokio::select! {
        _ = shutdown.stop.cancelled() => false,
        _ = broken.cancelled() => {
            error!(
                "The store cannot write (see the errors above: a full disk, a file-size limit, an I/O error). \
                 Stopping, so that the service manager restarts the relay on a freshly opened store; events \
                 answered 202 are safe on disk."
            );
            shutdown.abort();
            true
        }
    };
    systemd::stopping();
    // What finishes from now on is made durable at once: shutdown waits for it.
    store.stop_lingering();
    servers.join_all().await;
    dispatcher.wait().await;
    if let Err(error) = store.commit().await {
        warn!(%error, "Final flush failed; the last attempt results may be repeated after restart.");
    }
    if let Err(error) = store.flush_ledger() {
        warn!(%error, "Cannot write the store's ledger; the next start checks less of the store.");
    }
    if let Some(path) = socket_path {
        let _ = std::fs::remove_file(path);
    }
    if store_failed {
        anyhow::bail!("the store failed to write");
    }
    info!("Relay stopped.");
    Ok(())
}

/// Damage is reported, never silent (SPEC §7): a store holding fewer delivery records than its ledger says
/// it made durable was truncated, damaged or replaced. The relay refuses to start on it, with both figures,
/// unless the operator accepts the damage; then the ledger starts over from what is there.
fn check_ledger(store: &Store, found: u64, options: Options) -> anyhow::Result<()> {
    match store.expected_deliveries() {
        Some(expected) if found < expected => {
            let missing = expected - found;
            error!(
                expected,
                found,
                missing,
                "The store holds fewer deliveries than it had made durable: its database was truncated, damaged \
                 or replaced."
            );
            if !options.accept_damaged_store {
                anyhow::bail!(
                    "the store in {} holds {found} deliveries, but had made {expected} durable ({missing} missing); \
                     restore it from a backup, or start with `hookrelay run --accept-damaged-store` to go on \
                     with what is left",
                    store.dir().display()
                );
            }
            warn!(expected, found, missing, "Starting on the damaged store, as --accept-damaged-store asks.");
            store.reset_ledger(found).context("cannot write the store's ledger")
        }
        // What is there is the bound from now on (a crash may have left the file behind).
        _ => store.reset_ledger(found).context("cannot write the store's ledger"),
    }
}

/// The ERROR a start logs for records sealed with a key that is no longer listed.
pub const UNLISTED_KEY: &str = "Records are sealed with a store key that encryption_key does not list: their data \
                                cannot be read, so their deliveries wait (kept, not attempted) until that key is \
                                listed again.";

/// The INFO a start logs while an older listed key still seals or keys records.
pub const OLDER_KEY_IN_USE: &str =
    "Records are still sealed with this older store key: keep it in encryption_key until none is left.";

/// Reports, at start, the records sealed with keys other than the sealing key (SPEC §8): with a key no
/// longer listed at ERROR (they are kept, and their deliveries wait until it is listed again); with an
/// older key still listed, so that the operator knows when it can go. Keys that seal nothing any more
/// are dropped from the store's key log.
async fn report_older_keys(store: &Store, keyring: &Keyring) -> anyhow::Result<()> {
    let reader = store.clone();
    let counts = tokio::task::spawn_blocking(move || reader.sealed_with_older_keys())
        .await
        .context("the store scan stopped unexpectedly")?
        .context("cannot read the store")?;
    let mut gone = Vec::new();
    for (key, SealedRecords { events, response_bodies, fingerprints }) in counts {
        match (events + response_bodies + fingerprints, keyring.lists(key)) {
            (0, listed) => {
                if listed {
                    info!(%key, "No record is sealed with this older store key any more: it can be removed from encryption_key.");
                }
                gone.push(key);
            }
            (_, true) => info!(
                %key, events, response_bodies, fingerprints,
                "{OLDER_KEY_IN_USE}"
            ),
            (_, false) => error!(%key, events, response_bodies, fingerprints, "{UNLISTED_KEY}"),
        }
    }
    // The key log is a file written and fsynced: off the async workers.
    let writer = store.clone();
    tokio::task::spawn_blocking(move || writer.forget_sealing_keys(&gone))
        .await
        .context("the key log's write stopped unexpectedly")?
        .context("cannot write the store's key log")
}

/// Binds every configured listener, starts serving and turns `/readyz` to 200; then logs one
/// "Relay ready." line with the bound addresses (the TCP port may have been chosen by the system).
async fn bind_listeners(
    config: &Config,
    routes: &Arc<Routes>,
    shutdown: &Shutdown,
) -> anyhow::Result<(JoinSet<()>, Option<PathBuf>)> {
    let mut servers = JoinSet::new();
    let mut http_address = None;
    if let Some(path) = &config.ingest.unix_socket {
        let listener = ingest::bind_unix(path, config.ingest.socket_mode)
            .await
            .with_context(|| format!("cannot listen on the unix socket {}", path.display()))?;
        servers.spawn(ingest::serve_unix(listener, Arc::clone(routes), shutdown.stop.clone(), GRACE));
    }
    if let Some(address) = config.ingest.http {
        let listener =
            tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
        http_address = Some(listener.local_addr()?);
        servers.spawn(ingest::serve_tcp(listener, Arc::clone(routes), shutdown.stop.clone(), GRACE));
    }
    let unix_socket = config.ingest.unix_socket.as_ref().map(|p| p.display().to_string());
    let http = http_address.map(|a| a.to_string());
    routes.ready.store(true, Ordering::Release);
    info!(
        unix_socket,
        http,
        subscriptions = config.subscriptions.len(),
        version = crate::VERSION,
        commit = crate::COMMIT,
        "Relay ready."
    );
    Ok((servers, config.ingest.unix_socket.clone()))
}
