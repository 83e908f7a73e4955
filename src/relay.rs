//! Wires the parts together: open the store, rebuild the queues from it, start the workers, bind the
//! listeners, and run until shutdown. Tests and `main` both call [`run`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::admin::Admin;
use crate::backlog::Backlog;
use crate::clock::now_ms;
use crate::config::Config;
use crate::delivery::Dispatcher;
use crate::ingest::{self, Acceptor, Routes};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::shutdown::{Shutdown, GRACE};
use crate::store::FlushObserver;
use crate::store::{DeliveryId, DeliveryStatus, Store};
use crate::str_map::entry;
use crate::{reload, retention, systemd};

/// Runs the relay until `shutdown` is triggered and everything in flight has finished or been abandoned.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let hangups = reload::hangup_signal().context("cannot listen for SIGHUP")?;
    let client_timeout = ingest::client_timeout()?;
    let metrics = Arc::new(Metrics::default());
    let observer: FlushObserver = {
        let metrics = Arc::clone(&metrics);
        Arc::new(move |duration| metrics.flush(duration))
    };
    let opening = Instant::now();
    let store = Store::open(&config.relay.state_dir, Some(observer))
        .with_context(|| format!("cannot open the store in {}", config.relay.state_dir.display()))?;
    let opened = opening.elapsed();
    let scheduler = Arc::new(Scheduler::default());
    let recovered = recover(&store, &scheduler, &config, &metrics).context("cannot read the store")?;
    info!(
        state_dir = %config.relay.state_dir.display(),
        pending = recovered.pending,
        cancelled = recovered.cancelled,
        open_ms = opened.as_millis() as u64,
        recover_ms = (opening.elapsed() - opened).as_millis() as u64,
        "Store opened."
    );
    let backlog = Arc::new(Backlog::new(recovered.pending));
    let config = Arc::new(ArcSwap::from_pointee(config));

    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        Arc::clone(&scheduler),
        Arc::clone(&config),
        Arc::clone(&backlog),
        shutdown.clone(),
        Arc::clone(&metrics),
    ));
    for subscription in &config.load().subscriptions {
        dispatcher.ensure_worker(&subscription.name);
    }

    // Before "ready": a save right after the relay says it is ready must not be missed.
    reload::spawn(Arc::clone(&dispatcher), hangups, shutdown.stop.clone());
    retention::spawn(store.clone(), Arc::clone(&config), Arc::clone(&metrics), shutdown.stop.clone());

    let routes = Arc::new(Routes {
        acceptor: Acceptor::new(Arc::clone(&config), store.clone(), scheduler, backlog),
        admin: Admin { dispatcher: Arc::clone(&dispatcher) },
        metrics,
        ready: Default::default(),
        client_timeout,
    });
    let (servers, socket_path) = bind_listeners(&config.load(), &routes, &shutdown).await?;
    systemd::ready(shutdown.stop.clone());

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
    servers.join_all().await;
    dispatcher.tasks.close();
    dispatcher.tasks.wait().await;
    if let Err(error) = store.commit().await {
        warn!(%error, "Final flush failed; the last attempt results may be repeated after restart.");
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
    info!(unix_socket, http, subscriptions = config.subscriptions.len(), "Relay ready.");
    Ok((servers, config.ingest.unix_socket.clone()))
}

struct Recovered {
    /// Unfinished deliveries, queued again.
    pending: u64,
    /// Pending deliveries of subscriptions no longer in the config.
    cancelled: u64,
}

/// Queues every pending delivery again at its due time. Those whose attempt was in flight at a crash
/// are due at once (their `next_attempt_at` is in the past). Deliveries of a subscription that is no
/// longer configured become `cancelled`, as a reload would have made them.
fn recover(
    store: &Store,
    scheduler: &Scheduler,
    config: &Config,
    metrics: &Metrics,
) -> Result<Recovered, crate::store::StoreError> {
    /// One scan thread's findings, merged once all are done (no shared locks while scanning).
    #[derive(Default)]
    struct Found {
        pending: HashMap<String, Vec<(DeliveryId, u64)>>,
        failed: HashMap<String, i64>,
        orphans: Vec<DeliveryId>,
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let found = store.scan_delivery_states(threads, Found::default, |found, id, state| {
        let subscription = state.subscription.as_ref();
        match state.status {
            DeliveryStatus::Failed => *entry(&mut found.failed, subscription) += 1,
            DeliveryStatus::Pending if config.subscription(subscription).is_some() => {
                entry(&mut found.pending, subscription).push((id, state.next_attempt_at.unwrap_or(0)));
            }
            DeliveryStatus::Pending => found.orphans.push(id),
            DeliveryStatus::Delivered | DeliveryStatus::Cancelled => {}
        }
    })?;

    let mut recovered = Recovered { pending: 0, cancelled: 0 };
    for found in found {
        for (subscription, deliveries) in found.pending {
            recovered.pending += deliveries.len() as u64;
            scheduler.enqueue_all(&subscription, deliveries);
        }
        for (subscription, count) in found.failed {
            metrics.failed(&subscription, count);
        }
        for id in found.orphans {
            let Some(mut delivery) = store.delivery(id)? else { continue };
            delivery.cancel(now_ms());
            store.put_delivery(&delivery)?;
            recovered.cancelled += 1;
        }
    }
    Ok(recovered)
}
