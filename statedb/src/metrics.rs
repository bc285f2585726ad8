//! Hook for database metrics.

use std::time::Duration;

use crate::Revision;

/// Receives database metrics. Every method has a no-op default, so an
/// implementation overrides only what it records. Install with
/// [`crate::Db::with_metrics`]; without one the Db takes no timings.
pub trait DbMetrics: Send + Sync + 'static {
    /// A write transaction over `tables` committed `duration` after it
    /// started (lock wait included).
    fn write_txn_duration(&self, tables: &[&str], duration: Duration) {
        let _ = (tables, duration);
    }
    /// A write transaction waited `wait` for the lock of `table`.
    fn table_lock_wait(&self, table: &str, wait: Duration) {
        let _ = (table, wait);
    }
    /// After a commit: the table's object count, graveyard size and
    /// revision.
    fn table_contents(&self, table: &str, objects: usize, graveyard: usize, revision: Revision) {
        let _ = (table, objects, graveyard, revision);
    }
    /// A write transaction over `tables` was aborted (or dropped without
    /// a commit).
    fn write_txn_aborted(&self, tables: &[&str]) {
        let _ = tables;
    }
    /// A change iterator of `table` read the table `behind` revisions
    /// after the last change it had seen (its lag when it looked).
    fn change_iterator_lag(&self, table: &str, behind: Revision) {
        let _ = (table, behind);
    }
}

/// Metrics that record nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopMetrics;

impl DbMetrics for NoopMetrics {}
