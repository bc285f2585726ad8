//! Waiting until every object is reconciled.

use std::time::Duration;

use statedb::{Db, Index, Table, WatchSet};

use crate::status::StatusKind;

/// Why a wait ended without all objects reconciled: one error type for
/// the async and blocking waits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout passed first.
    #[error("timed out waiting for reconciliation")]
    Timeout,
    /// The reconciler stopped (its lifecycle was stopped) before the
    /// revision was reached.
    #[error("the reconciler stopped before reaching the revision")]
    Stopped,
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
    for kind in [
        StatusKind::Pending,
        StatusKind::Error,
        StatusKind::Refreshing,
    ] {
        let (mut objs, watch) = table.list_watch(&txn, status_index.query(&kind))?;
        busy |= objs.next().is_some();
        set.add(watch);
    }
    Ok(busy.then_some(set))
}

/// Completes once no object of `table` is pending or in error, as seen
/// through `status_index` (see [`crate::new_status_index`]). Cancel it by
/// dropping the future, e.g. with `tokio::time::timeout`.
///
/// # Errors
///
/// [`WaitError::Db`] if the table or index is not usable.
pub async fn wait_for_reconciliation<Obj: Send + Sync + 'static>(
    db: &Db,
    table: &Table<Obj>,
    status_index: &Index<Obj, StatusKind>,
) -> Result<(), WaitError> {
    while let Some(set) = check(db, table, status_index)? {
        set.wait_async().await;
    }
    Ok(())
}

/// [`wait_for_reconciliation`] with a deadline (on tokio's clock).
///
/// # Errors
///
/// [`WaitError::Timeout`] when `timeout` passes first; [`WaitError::Db`].
pub async fn wait_for_reconciliation_timeout<Obj: Send + Sync + 'static>(
    db: &Db,
    table: &Table<Obj>,
    status_index: &Index<Obj, StatusKind>,
    timeout: Duration,
) -> Result<(), WaitError> {
    tokio::time::timeout(timeout, wait_for_reconciliation(db, table, status_index))
        .await
        .map_err(|_| WaitError::Timeout)?
}

/// Blocking form of [`wait_for_reconciliation`], for threads outside the
/// runtime; gives up after `timeout`.
///
/// # Errors
///
/// [`WaitError::Timeout`] when `timeout` passes first; [`WaitError::Db`].
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

/// Where a reconciler is: the table revision up to which every change has
/// been processed, and the objects left in error then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Every change of the table up to this revision has been processed
    /// (its operation ran and its result was written back).
    pub revision: statedb::Revision,
    /// Objects in error (waiting for a retry), hard deletes included.
    pub errors: usize,
    /// Primary keys of up to [`Reconciled::MAX_KEYS`] of them, as text
    /// (lossy UTF-8).
    pub error_keys: Vec<String>,
    /// Full reconciliations finished since start.
    pub full_rounds: u64,
    /// Full reconciliations started since start.
    pub full_rounds_started: u64,
}

impl Reconciled {
    /// Most keys listed in [`Reconciled::error_keys`].
    pub const MAX_KEYS: usize = 100;
}
