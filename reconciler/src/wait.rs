//! Waiting until every object is reconciled.

use std::time::Duration;

use statedb::{Db, Index, Table, WatchSet};

use crate::state::state_table;
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
    /// The reconciler's lifecycle has not been started: nothing would
    /// ever answer the wait.
    #[error("the reconciler has not been started (start its lifecycle first)")]
    NotStarted,
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
    // What statuses cannot show: a running reconciler of the table that
    // has not yet read every change (a delete, say), whose deletes of rows
    // gone from the table have not all succeeded, or that has work
    // failing or still to redo.
    if let Some(states) = state_table(db) {
        let revision = table.revision(&txn)?;
        let (rows, watch) = states.all_watch(&txn)?;
        set.add(watch);
        busy |= rows.map(|(s, _)| s).any(|s| {
            s.table == table.name()
                && s.report.running
                && (s.report.pending_hard_deletes > 0
                    || s.report.revision < revision
                    // Failing or redoing work the status cannot show (a
                    // status getter that panics leaves the old Done).
                    || s.report.errors > 0
                    || s.report.lowest_unsettled.is_some())
        });
    }
    Ok(busy.then_some(set))
}

/// Completes once no object of `table` is pending or in error, as seen
/// through `status_index` (see [`crate::new_status_index`] and
/// [`crate::new_status_set_index`]), and every running reconciler of the
/// table has read every change, has no delete of a removed row still
/// pending or failing, and no work failing or to be redone (as its row in
/// the [`crate::STATE_TABLE`] table says). Cancel it by dropping the future, e.g. with
/// `tokio::time::timeout`.
///
/// ## Warning
///
/// Only reconcilers built on the same Db are seen: a status written by a
/// reconciler elsewhere counts through the status index alone.
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
    let deadline = crate::time::std_deadline(std::time::Instant::now(), timeout);
    while let Some(set) = check(db, table, status_index)? {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || set.wait_timeout(left).is_empty() {
            return Err(WaitError::Timeout);
        }
    }
    Ok(())
}
