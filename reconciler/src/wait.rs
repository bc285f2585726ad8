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
    let deadline = crate::time::std_deadline(std::time::Instant::now(), timeout);
    while let Some(set) = check(db, table, status_index)? {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || set.wait_timeout(left).is_empty() {
            return Err(WaitError::Timeout);
        }
    }
    Ok(())
}

/// Where a reconciler is: the table revision up to which every change has
/// been processed, and what is still failing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Every change of the table up to this revision has been processed
    /// (its operation ran and its result was written back, success or
    /// failure). Published as soon as it moves, not only when idle.
    pub revision: statedb::Revision,
    /// Objects in error (waiting for a retry), hard deletes included.
    pub errors: usize,
    /// Primary keys of up to [`Reconciled::MAX_KEYS`] of them, as text
    /// (printable keys as they are, others in hex).
    pub error_keys: Vec<String>,
    /// The lowest revision of a desired version still failing (the retry
    /// low watermark): every change below it has succeeded, once
    /// `revision` has passed it too. `None` when nothing fails.
    pub lowest_failing: Option<statedb::Revision>,
    /// Rows deleted from the table whose delete from the target has not
    /// succeeded yet (counted in `errors` too).
    pub pending_hard_deletes: usize,
    /// Objects with an operation in flight now.
    pub in_flight: usize,
    /// The loop is running (false before start and after stop).
    pub running: bool,
    /// Prunes finished since start (full rounds' included).
    pub prunes: u64,
    /// Prunes started since start.
    pub prunes_started: u64,
    /// Full reconciliations finished since start.
    pub full_rounds: u64,
    /// Full reconciliations started since start.
    pub full_rounds_started: u64,
}

impl Reconciled {
    /// Most keys listed in [`Reconciled::error_keys`].
    pub const MAX_KEYS: usize = 100;

    /// Has every change up to `revision` been processed?
    pub fn processed(&self, revision: statedb::Revision) -> bool {
        self.revision >= revision
    }

    /// Has every change up to `revision` *succeeded*: processed, and none
    /// of them still failing (retries and hard deletes included)?
    pub fn succeeded(&self, revision: statedb::Revision) -> bool {
        self.processed(revision) && self.lowest_failing.is_none_or(|low| low > revision)
    }
}
