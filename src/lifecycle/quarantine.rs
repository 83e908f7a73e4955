//! Quarantine: a record found damaged by a read outside a transition (the start-up scan, a listing, a
//! worker's load) is moved aside by a transition, which reads it again and quarantines it if it is still
//! damaged (see [`crate::store::Records`]).

use std::sync::Arc;

use super::Deliveries;
use crate::store::{Change, StoreError};

impl Deliveries {
    /// Quarantines the records under `keys` that do not decode; returns how many it moved aside.
    pub async fn quarantine(self: &Arc<Self>, keys: Vec<Vec<u8>>) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.store
            .transition(move |records| {
                let mut moved = 0;
                for key in &keys {
                    moved += usize::from(records.quarantine_if_damaged(key)?);
                }
                Ok(Change::only(moved))
            })?
            .wait()
            .await
    }
}
