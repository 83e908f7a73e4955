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
//! - A reader outside a transition may see an entry whose record has changed since; readers check the
//!   record's status ([`Store::deliveries_with_status`]).
//! - A store written before the index existed gets one from its format upgrade ([`super::format`]);
//!   recovery then compares the index with the statuses it scans at every start, and corrects (with a
//!   WARN) any difference.

use std::ops::Bound::{Excluded, Included};

use super::records::{DeliveryId, DeliveryRecord, DeliveryStatus};
use super::{keys, Store, StoreError};

/// The statuses with index entries.
pub const INDEXED: [DeliveryStatus; 2] = [DeliveryStatus::Failed, DeliveryStatus::Cancelled];

/// Every index key a delivery could have, whatever its status: for removals that do not know it.
pub fn status_entries(id: DeliveryId) -> impl Iterator<Item = Vec<u8>> {
    INDEXED.into_iter().filter_map(move |status| keys::status_entry(status, id)).map(|entry| entry.to_vec())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: DeliveryId = DeliveryId(ulid::Ulid(7));

    fn delivery(status: DeliveryStatus) -> DeliveryRecord {
        let mut delivery = DeliveryRecord::pending(ID, "evt", "lab.completed", "vet", 1);
        delivery.status = status;
        delivery
    }

    #[tokio::test]
    async fn an_entry_follows_its_delivery_s_status_read_first_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None, Default::default()).unwrap();
        store.write_now(|records| records.put_new_delivery(&delivery(DeliveryStatus::Pending))).await;
        assert_eq!(store.status_index_entries().unwrap(), []);
        // Written without being read first: the entry cannot be known, every possible one is replaced.
        store.write_now(|records| records.put_delivery(&delivery(DeliveryStatus::Failed))).await;
        assert_eq!(store.status_index_entries().unwrap(), [(DeliveryStatus::Failed, ID)]);
        store.write_now(|records| records.put_delivery(&delivery(DeliveryStatus::Cancelled))).await;
        assert_eq!(store.status_index_entries().unwrap(), [(DeliveryStatus::Cancelled, ID)]);
        // Read, then written twice in one transition: only the last status counts.
        store
            .write_now(|records| {
                let mut found = records.delivery(ID).unwrap().unwrap();
                found.status = DeliveryStatus::Failed;
                records.put_delivery(&found);
                found.status = DeliveryStatus::Delivered;
                records.put_delivery(&found);
            })
            .await;
        assert_eq!(store.status_index_entries().unwrap(), []);
        assert_eq!(store.deliveries_with_status(DeliveryStatus::Failed, None).count(), 0);
    }

    #[tokio::test]
    async fn a_quarantined_delivery_loses_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None, Default::default()).unwrap();
        store.write_now(|records| records.put_new_delivery(&delivery(DeliveryStatus::Pending))).await;
        store.write_now(|records| records.put_delivery(&delivery(DeliveryStatus::Failed))).await;
        store.db.insert(keys::delivery(ID), &b"not a delivery"[..]).unwrap();
        store.write_now(|records| assert!(records.delivery(ID).unwrap().is_none(), "damaged: treated as absent")).await;
        assert_eq!(store.status_index_entries().unwrap(), []);
        assert_eq!(store.quarantined().unwrap().len(), 1);
    }
}
