//! The status index: an empty-valued key per `failed` and per `cancelled` delivery (layout in
//! [`super::keys`]), so that `GET /v1/deliveries?status=failed` and `hookrelay retry --failed` read the
//! few deliveries they want instead of decoding every delivery in the store (issue 14: two such scans
//! of 200k deliveries took 0.76 s each).
//!
//! Only those two statuses are indexed: a delivery gets an entry when it fails or is cancelled and loses
//! it when it is requeued or purged, so the path every event takes (accepted, then delivered) writes no
//! index entry at all. Pending and held deliveries are listed from the scheduler's queues, which hold
//! every one of them already; delivered ones are the bulk of the store, so a scan finds them quickly.
//!
//! # Invariants
//! - Every delivery record whose status is indexed has its entry: [`super::Records::put_delivery`] moves
//!   the entry with the status in the same batch, purges and quarantines remove it with the record.
//! - An entry may outlive its record's status only between two reads outside a transition; readers
//!   check the record's status ([`Store::deliveries_with_status`]).
//! - Recovery compares the index with the statuses it scans at every start and corrects it, so a store
//!   written before the index existed gets one at its first start.

use std::ops::Bound::{Excluded, Included};

use super::records::{DeliveryId, DeliveryRecord, DeliveryStatus};
use super::{keys, Store, StoreError};

/// The statuses with index entries.
pub const INDEXED: [DeliveryStatus; 2] = [DeliveryStatus::Failed, DeliveryStatus::Cancelled];

impl Store {
    /// Deliveries with an indexed `status`, in acceptance order, starting after `after` (a paging cursor)
    /// or at the first; empty for a status that is not indexed.
    pub fn deliveries_with_status(
        &self,
        status: DeliveryStatus,
        after: Option<DeliveryId>,
    ) -> impl Iterator<Item = Result<DeliveryRecord, StoreError>> + '_ {
        let range = keys::status_prefix(status).map(|prefix| {
            let start = match after.and_then(|id| keys::status_entry(status, id)) {
                Some(entry) => Excluded(entry.to_vec()),
                None => Included(prefix.to_vec()),
            };
            let end = Excluded(vec![prefix[0], prefix[1] + 1]);
            self.db.range::<Vec<u8>, _>((start, end))
        });
        range.into_iter().flatten().filter_map(move |entry| {
            let key = match entry {
                Ok((key, _)) => key,
                Err(error) => return Some(Err(error.into())),
            };
            let id = keys::status_entry_id(&key)?;
            match self.delivery(id) {
                Ok(Some(delivery)) if delivery.status == status => Some(Ok(delivery)),
                // Changed or purged since the entry was read.
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            }
        })
    }

    /// Every entry of the status index, for recovery's check.
    pub fn status_index_entries(&self) -> Result<Vec<(DeliveryStatus, DeliveryId)>, StoreError> {
        let mut entries = Vec::new();
        for status in INDEXED {
            let Some(prefix) = keys::status_prefix(status) else { continue };
            for key in self.db.scan_prefix(prefix).keys() {
                if let Some(id) = keys::status_entry_id(&key?) {
                    entries.push((status, id));
                }
            }
        }
        Ok(entries)
    }
}
