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
    /// A write transaction of the named handle `handle` ([`crate::Db::handle`])
    /// waited `wait` for the lock of `table`. The Db calls this one; its
    /// default passes on to [`DbMetrics::table_lock_wait`].
    fn handle_lock_wait(&self, handle: &str, table: &str, wait: Duration) {
        let _ = handle;
        self.table_lock_wait(table, wait);
    }
    /// A write transaction of `handle` held the locks of `tables` for
    /// `held` (from when it had them all to its commit or abort).
    fn handle_lock_hold(&self, handle: &str, tables: &[&str], held: Duration) {
        let _ = (handle, tables, held);
    }
    /// A commit's graveyard collection dropped `collected` deleted objects
    /// of `table`, those every change iterator had seen (up to
    /// `low_watermark`, the oldest revision a live iterator still needs),
    /// in `duration`.
    fn graveyard_collected(
        &self,
        table: &str,
        collected: usize,
        low_watermark: Revision,
        duration: Duration,
    ) {
        let _ = (table, collected, low_watermark, duration);
    }
    /// After a commit: how many change iterators of `table` are alive.
    fn change_iterators(&self, table: &str, count: usize) {
        let _ = (table, count);
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
