//! Change iterators: every upsert and delete of a table, in revision order.

use std::sync::Arc;

use part::{OwnedIter, Watch};

use crate::Revision;
use crate::db_inner::DbInner;
use crate::erased::ErasedTable;
use crate::error::{Result, TxnError};
use crate::graveyard::{Watermark, graveyard_key};
use crate::object::Object;
use crate::sync::Ordering;
use crate::table::Table;
use crate::txn::{WriteTxn, collect_if_idle};
use crate::view::ReadTxnLike;

/// One change of an object.
#[derive(Debug, Clone)]
pub struct Change<T> {
    /// The object (for a delete: as it was when deleted).
    pub object: Arc<T>,
    /// Revision of the change.
    pub revision: Revision,
    /// True if the object was deleted.
    pub deleted: bool,
}

/// Follows a table's changes: first every object already in the table as
/// an upsert, then each later upsert and delete in revision order.
///
/// Deleted objects stay in the table's graveyard until every live change
/// iterator has seen them; dropping the iterator releases them. An object
/// created and deleted between two reads shows up as a delete only.
///
/// ```
/// use statedb::{Db, Index, Table};
/// let idx: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
/// let t = Table::new("nums", &idx)?;
/// let db = Db::new();
/// db.register_table(&t)?;
/// let mut w = db.write_txn(&[&t])?;
/// let mut changes = t.changes(&mut w)?;
/// t.insert(&mut w, 1u32)?;
/// w.commit();
/// let (batch, _watch) = changes.next(&db.read_txn())?;
/// assert_eq!(batch.map(|c| (*c.object, c.deleted)).collect::<Vec<_>>(), [(1, false)]);
/// let mut w = db.write_txn(&[&t])?;
/// t.delete(&mut w, &1)?;
/// w.commit();
/// let (batch, _watch) = changes.next(&db.read_txn())?;
/// assert_eq!(batch.map(|c| (*c.object, c.deleted)).collect::<Vec<_>>(), [(1, true)]);
/// # Ok::<(), statedb::Error>(())
/// ```
pub struct ChangeIterator<T: Send + Sync + 'static> {
    table: Table<T>,
    db: Arc<DbInner>,
    tracker: Watermark,
    /// The table revision at registration: older snapshots predate it.
    registered_at: Revision,
    last_upsert: Revision,
    last_delete: Revision,
}

impl<T: Send + Sync + 'static> Table<T> {
    /// Registers a change iterator. Taken in a write transaction that
    /// locks the table, before it writes to the table, so no delete can
    /// slip past it ([`crate::TxnError::ChangesAfterWrite`] otherwise). The
    /// iterator reports changes from snapshots taken after this point;
    /// an older snapshot yields nothing.
    pub fn changes(&self, txn: &mut WriteTxn) -> Result<ChangeIterator<T>, TxnError> {
        let db = txn.db().clone();
        let tt = txn.table_txn_mut(self.inner())?;
        if tt.has_written() {
            return Err(crate::TxnError::ChangesAfterWrite(self.name().to_string()));
        }
        let seen = self.view(txn)?.last_revision();
        let tracker = self.inner().trackers().add(seen);
        Ok(ChangeIterator {
            table: self.clone(),
            db,
            tracker,
            registered_at: seen,
            last_upsert: 0,
            last_delete: seen,
        })
    }
}

impl<T: Send + Sync + 'static> ChangeIterator<T> {
    /// The changes in `txn` not yet seen, and a watch that closes when the
    /// table changes again. Changes count as seen as the returned iterator
    /// yields them.
    ///
    /// Only committed changes are reported: given a [`WriteTxn`], those
    /// committed before it began, never its own uncommitted writes (were
    /// it aborted, their revisions would be given again to other changes,
    /// which this iterator would then skip). Its own writes show up in a
    /// later call, once committed.
    ///
    /// # Errors
    ///
    /// The table is not registered with the transaction's Db;
    /// [`TxnError::ChangesLapped`] once the iterator fell further behind
    /// than its [`max_lag`](ChangeIterator::max_lag) (from then on: drop
    /// it, and re-list the table with a new one).
    pub fn next<'a>(
        &'a mut self,
        txn: &impl ReadTxnLike,
    ) -> Result<(Changes<'a, T>, Watch), TxnError> {
        if self.is_lapped() {
            return Err(TxnError::ChangesLapped {
                table: self.table.name().to_string(),
                max_lag: self.tracker.max_lag.load(Ordering::Relaxed),
            });
        }
        let view = txn.committed_view(self.table.inner())?;
        if let Some(m) = self.db.metrics() {
            let seen = self.last_upsert.max(self.last_delete);
            let behind = view.last_revision().saturating_sub(seen);
            m.change_iterator_lag(self.table.name(), behind);
        }
        let revisions = view.revision_tree();
        let watch = revisions.root_watch();
        // A snapshot from before registration may hold objects whose
        // deletion this iterator would never hear of: report nothing.
        let stale = view.last_revision() < self.registered_at;
        let from = |rev: Revision| {
            if stale {
                Revision::MAX
            } else {
                rev.saturating_add(1)
            }
        };
        let upserts = revisions.lower_bound_owned(&from(self.last_upsert).to_be_bytes());
        let deletes = view
            .graveyard_revision_tree()
            .lower_bound_owned(&graveyard_key(from(self.last_delete), &[]));
        Ok((
            Changes {
                iter: self,
                upserts,
                deletes,
                next_upsert: None,
                next_delete: None,
                started: false,
            },
            watch,
        ))
    }

    /// Bounds how many deleted objects this iterator may hold back in the
    /// table's graveyard (deleted after the last one it has read). A
    /// consumer that stops reading otherwise keeps every later delete in
    /// memory until it is dropped. Past the bound (checked as writers
    /// commit) the iterator is *lapped*: it holds nothing back any more,
    /// and [`ChangeIterator::next`] returns [`TxnError::ChangesLapped`],
    /// telling the consumer to re-list (the shape of etcd's compaction
    /// and Kubernetes' 410 Gone).
    ///
    /// ```
    /// use statedb::{Db, Index, Table, TxnError};
    /// let idx: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// let t = Table::new("nums", &idx)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// let mut changes = t.changes(&mut w)?.max_lag(2);
    /// w.commit();
    /// for n in 0..3 {
    ///     let mut w = db.write_txn(&[&t])?;
    ///     t.insert(&mut w, n)?;
    ///     w.commit();
    ///     let mut w = db.write_txn(&[&t])?;
    ///     t.delete(&mut w, &n)?;
    ///     w.commit();
    /// }
    /// // Three deletes unread, two allowed: lapped, nothing kept for it.
    /// assert!(matches!(changes.next(&db.read_txn()), Err(TxnError::ChangesLapped { .. })));
    /// assert_eq!(db.tables(&db.read_txn())[0].graveyard, 0);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    #[must_use]
    pub fn max_lag(self, deleted_objects: usize) -> Self {
        self.tracker
            .max_lag
            .store(deleted_objects, Ordering::Relaxed);
        self
    }

    /// Whether the iterator was lapped (see [`ChangeIterator::max_lag`]).
    pub fn is_lapped(&self) -> bool {
        self.tracker.lapped.load(Ordering::Acquire)
    }

    /// Revision of the last upsert seen.
    pub fn last_upsert_revision(&self) -> Revision {
        self.last_upsert
    }

    /// Revision of the last delete seen.
    pub fn last_delete_revision(&self) -> Revision {
        self.last_delete
    }

    fn release_graveyard(&self) {
        let erased: Arc<dyn ErasedTable> = self.table.inner().clone();
        collect_if_idle(&self.db, &erased);
    }
}

impl<T: Send + Sync + 'static> Drop for ChangeIterator<T> {
    fn drop(&mut self) {
        self.table.inner().trackers().remove(&self.tracker);
        self.release_graveyard();
    }
}

/// The unseen changes of one [`ChangeIterator::next`] call.
pub struct Changes<'a, T: Send + Sync + 'static> {
    iter: &'a mut ChangeIterator<T>,
    upserts: OwnedIter<Object<T>>,
    deletes: OwnedIter<Object<T>>,
    next_upsert: Option<Object<T>>,
    next_delete: Option<Object<T>>,
    started: bool,
}

impl<T: Send + Sync + 'static> Iterator for Changes<'_, T> {
    type Item = Change<T>;

    fn next(&mut self) -> Option<Change<T>> {
        if !self.started {
            self.started = true;
            self.next_upsert = self.upserts.next_with(|_, o| o.clone());
            self.next_delete = self.deletes.next_with(|_, o| o.clone());
        }
        let take_delete = match (&self.next_upsert, &self.next_delete) {
            (None, None) => return None,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(u), Some(d)) => d.revision < u.revision,
        };
        if take_delete {
            let d = self.next_delete.take()?;
            self.next_delete = self.deletes.next_with(|_, o| o.clone());
            self.iter.last_delete = d.revision;
            Some(Change {
                object: d.data,
                revision: d.revision,
                deleted: true,
            })
        } else {
            let u = self.next_upsert.take()?;
            self.next_upsert = self.upserts.next_with(|_, o| o.clone());
            self.iter.last_upsert = u.revision;
            Some(Change {
                object: u.data,
                revision: u.revision,
                deleted: false,
            })
        }
    }
}

impl<T: Send + Sync + 'static> Drop for Changes<'_, T> {
    fn drop(&mut self) {
        let seen = self.iter.last_delete;
        if self.iter.tracker.seen.swap(seen, Ordering::AcqRel) != seen {
            self.iter.release_graveyard();
        }
    }
}
