//! Waiting until every object is reconciled.

use std::time::Duration;

use statedb::{Db, Index, Table, WatchSet};

use crate::status::StatusKind;

/// Why a wait ended without all objects reconciled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The timeout passed first.
    #[error("timed out waiting for reconciliation")]
    Timeout,
    /// The table or status index is not usable.
    #[error(transparent)]
    Db(#[from] statedb::Error),
}

/// Whether any object is pending or in error, and the watches to wait on.
fn check<Obj: Send + Sync + 'static>(
    db: &Db,
    table: &Table<Obj>,
    status_index: &Index<Obj, StatusKind>,
) -> Result<Option<WatchSet>, statedb::Error> {
    let txn = db.read_txn();
    let mut set = WatchSet::new();
    let mut busy = false;
    for kind in [StatusKind::Pending, StatusKind::Error] {
        let (mut objs, watch) = table.list_watch(&txn, status_index.query(&kind))?;
        busy |= objs.next().is_some();
        set.add(watch);
    }
    Ok(busy.then_some(set))
}

/// Completes once no object of `table` is pending or in error, as seen
/// through `status_index` (see [`crate::new_status_index`]). Cancel it by
/// dropping the future, e.g. with `tokio::time::timeout`.
pub async fn wait_for_reconciliation<Obj: Send + Sync + 'static>(
    db: &Db,
    table: &Table<Obj>,
    status_index: &Index<Obj, StatusKind>,
) -> Result<(), statedb::Error> {
    while let Some(set) = check(db, table, status_index)? {
        set.wait_async().await;
    }
    Ok(())
}

/// Blocking form of [`wait_for_reconciliation`], for threads outside the
/// runtime; gives up after `timeout`.
pub fn wait_for_reconciliation_blocking<Obj: Send + Sync + 'static>(
    db: &Db,
    table: &Table<Obj>,
    status_index: &Index<Obj, StatusKind>,
    timeout: Duration,
) -> Result<(), WaitError> {
    let deadline = std::time::Instant::now() + timeout;
    while let Some(set) = check(db, table, status_index)? {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || set.wait_timeout(left).is_empty() {
            return Err(WaitError::Timeout);
        }
    }
    Ok(())
}
