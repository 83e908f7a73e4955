//! Reading every delivery's state at start, on every core. The relay is not ready until its queues are
//! rebuilt, and with a million deliveries on disk the scan is most of the restart time; it is mostly
//! decoding, which splits cleanly. Delivery keys are ULIDs, so the key space between the first and
//! the last delivery is cut into equal ranges (roughly equal spans of acceptance time), and threads take
//! ranges until none are left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::records::{DeliveryId, DeliveryState};
use super::StoreError;
use super::{encoding, keys};

/// Ranges per thread: more than one, so a thread that got a dense span does not finish last alone.
const RANGES_PER_THREAD: usize = 8;

/// Calls `visit` with every delivery's id and state, on up to `threads` threads, each folding into its
/// own accumulator made by `start`; returns the accumulators, and the keys of records that did not
/// decode (for quarantine: one damaged record must not stop a start). Order across ranges is not kept.
pub fn scan<T: Send>(
    db: &sled::Db,
    threads: usize,
    start: impl Fn() -> T + Sync,
    visit: impl Fn(&mut T, DeliveryId, DeliveryState<'_>) + Sync,
) -> Result<(Vec<T>, Vec<Vec<u8>>), StoreError> {
    let Some((first, last)) = bounds(db)? else { return Ok((Vec::new(), Vec::new())) };
    let threads = threads.max(1);
    let ranges = split(first, last, threads * RANGES_PER_THREAD);
    let next = AtomicUsize::new(0);
    let failure = Mutex::new(None);
    let damaged = Mutex::new(Vec::new());
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut found = start();
                    while let Some(&(low, high)) = ranges.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(error) = scan_range(db, low, high, &mut found, &visit, &damaged) {
                            *failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
                            break;
                        }
                    }
                    found
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join()).collect::<Result<Vec<_>, _>>()
    });
    let results = results.map_err(|_| StoreError::corrupt(&[keys::DELIVERY], "a scan thread panicked"))?;
    match failure.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        Some(error) => Err(error),
        None => Ok((results, damaged.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()))),
    }
}

/// The first and last delivery ids as numbers, if there is any delivery.
fn bounds(db: &sled::Db) -> Result<Option<(u128, u128)>, StoreError> {
    let mut deliveries = db.scan_prefix([keys::DELIVERY]).keys();
    let Some(first) = deliveries.next().transpose()? else { return Ok(None) };
    let last = deliveries.next_back().transpose()?.unwrap_or_else(|| first.clone());
    let number = |key: &[u8]| keys::delivery_id(key).map(|id| id.0 .0);
    match (number(&first), number(&last)) {
        (Some(first), Some(last)) => Ok(Some((first, last))),
        _ => Err(StoreError::corrupt(&first, "not a delivery key")),
    }
}

/// `parts` inclusive ranges covering `first..=last` without gaps or overlap.
fn split(first: u128, last: u128, parts: usize) -> Vec<(u128, u128)> {
    let width = ((last - first) / parts as u128).max(1);
    let mut ranges = Vec::with_capacity(parts);
    let mut low = first;
    while low <= last {
        let high = low.saturating_add(width - 1).min(last);
        ranges.push((low, high));
        if high == last {
            break;
        }
        low = high + 1;
    }
    ranges
}

fn scan_range<T>(
    db: &sled::Db,
    low: u128,
    high: u128,
    found: &mut T,
    visit: &impl Fn(&mut T, DeliveryId, DeliveryState<'_>),
    damaged: &Mutex<Vec<Vec<u8>>>,
) -> Result<(), StoreError> {
    let key = |n: u128| keys::delivery(DeliveryId(ulid::Ulid(n)));
    for entry in db.range(key(low)..=key(high)) {
        let (key, value) = entry?;
        match (keys::delivery_id(&key), encoding::delivery_state(&value)) {
            (Some(id), Ok(state)) => visit(found, id, state),
            _ => damaged.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(key.to_vec()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        for (first, last, parts) in [(0, 0, 4), (5, 6, 16), (0, 1000, 7), (10, 10 + 3 * 16, 16), (0, u128::MAX, 16)] {
            let ranges = split(first, last, parts);
            assert_eq!(ranges.first().unwrap().0, first);
            assert_eq!(ranges.last().unwrap().1, last);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "{first}..={last} in {parts}: {ranges:?}");
            }
            assert!(ranges.len() <= parts + 1);
        }
    }
}
