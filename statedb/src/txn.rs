//! Read and write transactions.

use std::sync::Arc;
use std::time::Instant;

use part::sync::OwnedLockGuard;
use part::{Tree, WatchesToClose};

use crate::Revision;
use crate::db::{Db, Root};
use crate::error::{Error, Result};
use crate::state::{AnyTableTxn, Object, TableState, TableTxn};
use crate::table::{ErasedTable, IndexPos, Table};

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A consistent snapshot of every table: one atomic load of the Db root.
/// Lock-free, cheap to clone, `Send + Sync`; never changed by later writes.
#[derive(Clone)]
pub struct ReadTxn {
    pub(crate) db_id: u64,
    pub(crate) root: Arc<Root>,
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("tables", &self.root.len())
            .finish()
    }
}

/// What queries read from: a [`ReadTxn`] or a [`WriteTxn`] (which sees its
/// own writes). Sealed.
pub trait ReadTxnLike: sealed::Sealed {
    #[doc(hidden)]
    fn view<'t, T: Send + Sync + 'static>(&'t self, table: &Table<T>) -> Result<View<'t, T>>;
}

/// A table as seen by one transaction (implementation detail).
#[doc(hidden)]
pub struct View<'t, T>(ViewInner<'t, T>);

enum ViewInner<'t, T> {
    Snapshot(&'t TableState<T>),
    Txn(&'t TableTxn<T>),
}

impl<T: Send + Sync + 'static> View<'_, T> {
    pub(crate) fn tree(&self, pos: IndexPos) -> Tree<Object<T>> {
        match &self.0 {
            ViewInner::Snapshot(s) => match pos {
                IndexPos::Primary => s.primary.clone(),
                IndexPos::Secondary(i, _) => s.secondary[i].clone(),
            },
            ViewInner::Txn(t) => match pos {
                IndexPos::Primary => t.primary.snapshot(),
                IndexPos::Secondary(i, _) => t.secondary[i].snapshot(),
            },
        }
    }

    /// First object under `key` without taking a snapshot.
    pub(crate) fn first(&self, pos: IndexPos, key: &[u8]) -> Option<Object<T>> {
        match (&self.0, pos) {
            (ViewInner::Snapshot(s), IndexPos::Primary) => s.primary.get(key).cloned(),
            (ViewInner::Txn(t), IndexPos::Primary) => t.primary.get(key).cloned(),
            (ViewInner::Snapshot(s), IndexPos::Secondary(i, true)) => {
                s.secondary[i].get(key).cloned()
            }
            (ViewInner::Txn(t), IndexPos::Secondary(i, true)) => t.secondary[i].get(key).cloned(),
            (ViewInner::Snapshot(s), IndexPos::Secondary(i, false)) => s.secondary[i]
                .prefix(&crate::index::non_unique_exact(key))
                .0
                .next()
                .map(|(_, o)| o.clone()),
            (ViewInner::Txn(t), IndexPos::Secondary(i, false)) => t.secondary[i]
                .prefix(&crate::index::non_unique_exact(key))
                .next()
                .map(|(_, o)| o.clone()),
        }
    }

    pub(crate) fn revision_tree(&self) -> Tree<Object<T>> {
        match &self.0 {
            ViewInner::Snapshot(s) => s.revision.clone(),
            ViewInner::Txn(t) => t.revision.snapshot(),
        }
    }

    pub(crate) fn graveyard_revision_tree(&self) -> Tree<Object<T>> {
        match &self.0 {
            ViewInner::Snapshot(s) => s.graveyard_revision.clone(),
            ViewInner::Txn(t) => t.graveyard_revision.snapshot(),
        }
    }

    pub(crate) fn last_revision(&self) -> Revision {
        match &self.0 {
            ViewInner::Snapshot(s) => s.last_revision,
            ViewInner::Txn(t) => t.last_revision,
        }
    }

    pub(crate) fn num_objects(&self) -> usize {
        match &self.0 {
            ViewInner::Snapshot(s) => s.primary.len(),
            ViewInner::Txn(t) => t.primary.len(),
        }
    }

    pub(crate) fn graveyard_len(&self) -> usize {
        match &self.0 {
            ViewInner::Snapshot(s) => s.graveyard.len(),
            ViewInner::Txn(t) => t.graveyard.len(),
        }
    }

    pub(crate) fn pending_initializers(&self) -> &[(u64, String)] {
        match &self.0 {
            ViewInner::Snapshot(s) => &s.pending_initializers,
            ViewInner::Txn(t) => &t.pending_initializers,
        }
    }
}

fn snapshot_view<'t, T: Send + Sync + 'static>(
    db_id: u64,
    root: &'t Root,
    table: &Table<T>,
) -> Result<View<'t, T>> {
    let (db, pos) = table
        .inner
        .registration
        .get()
        .copied()
        .ok_or_else(|| Error::TableNotRegistered(table.inner.name.clone()))?;
    if db != db_id {
        return Err(Error::TableFromOtherDb(table.inner.name.clone()));
    }
    let state = root
        .get(pos)
        .and_then(|s| s.as_any().downcast_ref::<TableState<T>>())
        .ok_or_else(|| Error::TableNotRegistered(table.inner.name.clone()))?;
    Ok(View(ViewInner::Snapshot(state)))
}

impl sealed::Sealed for ReadTxn {}

impl ReadTxnLike for ReadTxn {
    fn view<'t, T: Send + Sync + 'static>(&'t self, table: &Table<T>) -> Result<View<'t, T>> {
        snapshot_view(self.db_id, &self.root, table)
    }
}

/// A table's position, its erased handle and its held lock.
pub(crate) type LockedTable = (usize, Arc<dyn ErasedTable>, OwnedLockGuard);

pub(crate) struct Locked {
    pub pos: usize,
    pub table: Arc<dyn ErasedTable>,
    pub guard: OwnedLockGuard,
    pub txn: Box<dyn AnyTableTxn>,
}

/// A write transaction over the tables it locked.
///
/// Reads see its own writes. [`WriteTxn::commit`] publishes all changes
/// across its tables atomically and only then closes the watches of what
/// changed; [`WriteTxn::abort`] or dropping it discards everything. A
/// finished transaction cannot be used again, by construction:
///
/// ```compile_fail
/// # use statedb::{Db, Index, Table};
/// # let idx: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
/// # let t = Table::new("t", &idx).unwrap();
/// # let db = Db::new();
/// # db.register_table(&t).unwrap();
/// let mut wtxn = db.write_txn(&[&t]).unwrap();
/// wtxn.commit();
/// t.insert(&mut wtxn, 1u32).unwrap(); // error: use of moved value
/// ```
pub struct WriteTxn {
    pub(crate) db: Db,
    pub(crate) base: Arc<Root>,
    pub(crate) locked: Vec<Locked>,
    pub(crate) started: Option<Instant>,
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.locked.iter().map(|l| l.txn.name()).collect();
        f.debug_struct("WriteTxn").field("tables", &names).finish()
    }
}

impl sealed::Sealed for WriteTxn {}

impl ReadTxnLike for WriteTxn {
    fn view<'t, T: Send + Sync + 'static>(&'t self, table: &Table<T>) -> Result<View<'t, T>> {
        if let Some((_, pos)) = table.inner.registration.get().copied() {
            if let Some(l) = self.locked.iter().find(|l| l.pos == pos) {
                if let Some(t) = l.txn.as_any().downcast_ref::<TableTxn<T>>() {
                    if Arc::ptr_eq(&t.table, &table.inner) {
                        return Ok(View(ViewInner::Txn(t)));
                    }
                }
            }
        }
        snapshot_view(self.db.inner.id, &self.base, table)
    }
}

impl Drop for WriteTxn {
    /// Abort: discard the changes and release the locks. A graveyard
    /// collection requested while we held a lock runs now.
    fn drop(&mut self) {
        let locked = std::mem::take(&mut self.locked);
        let mut tables = Vec::with_capacity(locked.len());
        for l in locked {
            drop(l.guard);
            tables.push(l.table);
        }
        for t in tables {
            t.collect_if_requested(&self.db, None);
        }
    }
}

impl WriteTxn {
    pub(crate) fn table_txn_mut<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
    ) -> Result<&mut TableTxn<T>> {
        let not_locked = || Error::TableNotLocked(table.inner.name.clone());
        let (db, pos) = table
            .inner
            .registration
            .get()
            .copied()
            .ok_or_else(not_locked)?;
        if db != self.db.inner.id {
            return Err(Error::TableFromOtherDb(table.inner.name.clone()));
        }
        let l = self
            .locked
            .iter_mut()
            .find(|l| l.pos == pos)
            .ok_or_else(not_locked)?;
        l.txn
            .as_any_mut()
            .downcast_mut::<TableTxn<T>>()
            .ok_or_else(not_locked)
    }

    /// Names of the locked tables.
    pub fn table_names(&self) -> Vec<&str> {
        self.locked.iter().map(|l| l.txn.name()).collect()
    }

    /// Discards every change and releases the table locks.
    pub fn abort(self) {
        drop(self);
    }

    /// Publishes every change atomically, releases the table locks, then
    /// closes the watches of what changed. Returns a read transaction of
    /// the new state.
    pub fn commit(mut self) -> ReadTxn {
        let locked = std::mem::take(&mut self.locked);
        let mut watches = WatchesToClose::new();
        let mut finished = Vec::with_capacity(locked.len());
        for l in locked {
            let (state, w, stats) = l.txn.finish();
            watches.append(w);
            finished.push((l.pos, state, stats, l.table, l.guard));
        }
        let inner = &self.db.inner;
        let root = {
            let _commit = inner.commit_lock.lock();
            let current = inner.root.load_full();
            let mut next: Root = Vec::with_capacity(current.len());
            next.extend(current.iter().cloned());
            for (pos, state, ..) in &finished {
                next[*pos] = state.clone();
            }
            let next = Arc::new(next);
            inner.root.store(next.clone());
            next
        };
        let metrics = inner.metrics.as_deref();
        let mut released = Vec::with_capacity(finished.len());
        for (_, _, stats, table, guard) in finished {
            drop(guard);
            if stats.initialized {
                table.mark_initialized();
            }
            if let Some(m) = metrics {
                m.table_contents(table.name(), stats.objects, stats.graveyard, stats.revision);
            }
            released.push((table, stats.graveyard_oldest));
        }
        watches.close();
        if let (Some(m), Some(started)) = (metrics, self.started) {
            let names: Vec<&str> = released.iter().map(|(t, _)| t.name()).collect();
            m.write_txn_duration(&names, started.elapsed());
        }
        // A change iterator may have asked for collection while we held
        // the lock, after our own collection ran, or been dropped before
        // our graveyard was visible to it.
        for (t, oldest) in released {
            t.collect_if_requested(&self.db, oldest);
        }
        ReadTxn {
            db_id: inner.id,
            root,
        }
    }
}

/// Locks tables for a new write transaction, in the global order (their
/// position in the root), so that writers never deadlock.
pub(crate) fn lock_tables(db: &Db, tables: Vec<Arc<dyn ErasedTable>>) -> Result<WriteTxn> {
    let mut regs = Vec::with_capacity(tables.len());
    for t in tables {
        let (db_id, pos) = t
            .registration()
            .ok_or_else(|| Error::TableNotRegistered(t.name().to_string()))?;
        if db_id != db.inner.id {
            return Err(Error::TableFromOtherDb(t.name().to_string()));
        }
        regs.push((pos, t));
    }
    regs.sort_by_key(|(pos, _)| *pos);
    regs.dedup_by_key(|(pos, _)| *pos);
    let metrics = db.inner.metrics.as_deref();
    let started = metrics.map(|_| Instant::now());
    let mut guards = Vec::with_capacity(regs.len());
    for (pos, t) in regs {
        let guard = match metrics {
            Some(m) => {
                let t0 = Instant::now();
                let g = t.lock().lock_owned();
                m.table_lock_wait(t.name(), t0.elapsed());
                g
            }
            None => t.lock().lock_owned(),
        };
        guards.push((pos, t, guard));
    }
    Ok(begin_locked(db, guards, started))
}

/// Starts a write transaction over tables whose locks are held.
pub(crate) fn begin_locked(
    db: &Db,
    guards: Vec<LockedTable>,
    started: Option<Instant>,
) -> WriteTxn {
    // Loaded after locking: the state of our tables cannot change now.
    let base = db.inner.root.load_full();
    let locked = guards
        .into_iter()
        .map(|(pos, table, guard)| {
            let txn = table.clone().begin(&*base[pos]);
            Locked {
                pos,
                table,
                guard,
                txn,
            }
        })
        .collect();
    WriteTxn {
        db: db.clone(),
        base,
        locked,
        started,
    }
}
