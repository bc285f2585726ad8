//! The reconcilers' own state as a table of the Db they reconcile: one
//! row per reconciler with its latest [`Reconciled`] report, so that the
//! inspection API, `sdb` and the web view show it beside the tables, and
//! [`crate::wait_for_reconciliation`] sees what the status index cannot
//! (hard deletes still pending, changes not yet read).

use std::time::Duration;

use serde::Serialize;
use statedb::{Db, Index, Table, TxnError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::report::Reconciled;

/// The name of the table of reconciler states ([`ReconcilerState`]),
/// registered in a Db by the first reconciler built on it (inspectable,
/// for the HTTP API, `sdb` and the web view, with the `inspect` feature).
pub const STATE_TABLE: &str = "reconcilers";

/// One reconciler's row in the [`STATE_TABLE`] table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcilerState {
    /// The table it reconciles.
    pub table: String,
    /// Its module id ([`crate::Params`]).
    pub module_id: String,
    /// Its latest report, as [`crate::Reconciler::progress`] returns it.
    #[serde(flatten)]
    pub report: Reconciled,
}

/// The primary index of the state table: (table, module id), printed as
/// `table,module`.
fn primary() -> Index<ReconcilerState, (String, String)> {
    Index::unique("id", |s: &ReconcilerState, k| {
        k.push(&(s.table.clone(), s.module_id.clone()))
    })
}

/// The state table of `db`, if a reconciler registered it.
pub fn state_table(db: &Db) -> Option<Table<ReconcilerState>> {
    db.table(STATE_TABLE)
}

/// The state table of `db`, registered (inspectable) if it is not yet.
/// `None` when the Db holds another table of that name.
pub(crate) fn ensure_state_table(db: &Db) -> Option<Table<ReconcilerState>> {
    if let Some(t) = state_table(db) {
        return Some(t);
    }
    let table = Table::new(STATE_TABLE, &primary()).ok()?;
    #[cfg(feature = "inspect")]
    let registered = db.register_inspectable(&table);
    #[cfg(not(feature = "inspect"))]
    let registered = db.register_table(&table);
    match registered {
        Ok(()) => Some(table),
        // Registered meanwhile by another reconciler being built.
        Err(_) => state_table(db),
    }
}

/// How long a state write waits before trying again when the state table
/// is locked (by another reconciler's state write, or a user).
const RETRY: Duration = Duration::from_millis(2);

/// Writes the reconciler's reports into its row as they change, until
/// `done` fires; then writes the last report and returns. Never blocks
/// the thread: a busy table is tried again shortly.
pub(crate) async fn publish_state(
    db: Db,
    table: Table<ReconcilerState>,
    mut row: ReconcilerState,
    mut reports: watch::Receiver<Reconciled>,
    done: CancellationToken,
) {
    let mut pending = true;
    loop {
        if pending {
            row.report = reports.borrow_and_update().clone();
            pending = !write(&db, &table, &row);
        }
        let retry = async {
            if pending {
                tokio::time::sleep(RETRY).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = done.cancelled() => break,
            changed = reports.changed() => {
                if changed.is_err() {
                    break;
                }
                pending = true;
            }
            _ = retry => {}
        }
    }
    // The last report (running: false) is written, waiting for the lock
    // as long as it takes: a stale "running" row would hold up waits.
    row.report = reports.borrow().clone();
    while !write(&db, &table, &row) {
        tokio::time::sleep(RETRY).await;
    }
}

/// One try; false when the table is busy (the caller retries).
fn write(db: &Db, table: &Table<ReconcilerState>, row: &ReconcilerState) -> bool {
    let mut w = match db.try_write_txn(&[table]) {
        Ok(w) => w,
        Err(TxnError::TablesBusy { .. } | TxnError::WouldDeadlock { .. }) => return false,
        Err(e) => {
            // Not retryable (the table left the Db): give up quietly.
            tracing::debug!(error = %e, "reconciler state not written");
            return true;
        }
    };
    if let Err(e) = table.insert(&mut w, row.clone()) {
        tracing::debug!(error = %e, "reconciler state not written");
        return true;
    }
    w.commit();
    true
}
