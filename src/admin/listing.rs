//! Where `GET /v1/deliveries` finds the deliveries it lists, by the status asked for, so that a page of
//! a rare status costs about a page of reads, not a scan of the store (issue 14):
//! - `pending` and `held`: the scheduler's queues, which hold every unfinished delivery;
//! - `failed` and `cancelled`: the store's status index;
//! - `delivered` and `all`: every delivery in acceptance order (delivered ones are most of the store).
//!
//! Each source yields deliveries in acceptance order after the cursor; the caller still applies the
//! full filter, since a record may have changed between the source's read and its own.

use crate::config::Config;
use crate::scheduler::Scheduler;
use crate::store::{DeliveryId, DeliveryRecord, DeliveryStatus, Store, StoreError};

use super::view::{ListQuery, StatusFilter};

/// Ids taken from the queues at a time.
const QUEUE_CHUNK: usize = 256;

type Deliveries<'a> = Box<dyn Iterator<Item = Result<DeliveryRecord, StoreError>> + 'a>;

/// The deliveries that may match `query`, in acceptance order; call on the blocking pool.
pub fn candidates<'a>(
    store: &'a Store,
    scheduler: &'a Scheduler,
    config: &'a Config,
    query: &ListQuery,
) -> Deliveries<'a> {
    let subscription = query.subscription.clone();
    let named = move |name: &str| subscription.as_deref().is_none_or(|wanted| wanted == name);
    let enabled = |name: &str| config.subscription(name).is_none_or(|s| s.enabled);
    match query.status {
        StatusFilter::Pending => {
            Box::new(Unfinished::new(store, scheduler, query.after, move |name| named(name) && enabled(name)))
        }
        StatusFilter::Held => {
            Box::new(Unfinished::new(store, scheduler, query.after, move |name| named(name) && !enabled(name)))
        }
        StatusFilter::Failed => Box::new(store.deliveries_with_status(DeliveryStatus::Failed, query.after)),
        StatusFilter::Cancelled => Box::new(store.deliveries_with_status(DeliveryStatus::Cancelled, query.after)),
        StatusFilter::Delivered | StatusFilter::All => Box::new(store.deliveries_after(query.after)),
    }
}

/// The pending deliveries of the subscriptions `wanted` accepts, read a chunk of queue ids at a time.
struct Unfinished<'a, F> {
    store: &'a Store,
    scheduler: &'a Scheduler,
    wanted: F,
    after: Option<DeliveryId>,
    chunk: std::vec::IntoIter<DeliveryId>,
    exhausted: bool,
}

impl<'a, F: Fn(&str) -> bool> Unfinished<'a, F> {
    fn new(store: &'a Store, scheduler: &'a Scheduler, after: Option<DeliveryId>, wanted: F) -> Self {
        Unfinished { store, scheduler, wanted, after, chunk: Vec::new().into_iter(), exhausted: false }
    }
}

impl<F: Fn(&str) -> bool> Iterator for Unfinished<'_, F> {
    type Item = Result<DeliveryRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(id) = self.chunk.next() {
                self.after = Some(id);
                match self.store.delivery(id) {
                    Ok(Some(delivery)) if delivery.status == DeliveryStatus::Pending => return Some(Ok(delivery)),
                    // Finished or purged since the queue was read.
                    Ok(_) => continue,
                    Err(error) => return Some(Err(error)),
                }
            }
            if self.exhausted {
                return None;
            }
            let ids = self.scheduler.unfinished_after(self.after, QUEUE_CHUNK, &self.wanted);
            self.exhausted = ids.len() < QUEUE_CHUNK;
            self.chunk = ids.into_iter();
        }
    }
}
