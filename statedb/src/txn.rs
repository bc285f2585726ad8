//! Read and write transactions.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use part::WatchesToClose;
use smallvec::SmallVec;

use crate::db_inner::DbInner;
use crate::erased::ErasedTable;
use crate::error::{Result, TxnError};
use crate::lock::{Acquire, Owner, Waiter};
use crate::root::Root;
use crate::state::{AnyTableTxn, TableState, TableTxn};
use crate::sync::thread_token;
use crate::table_inner::TableInner;
use crate::view::{ReadTxnLike, View};

/// A consistent snapshot of every table: one atomic load of the Db root.
/// Lock-free, cheap to clone, `Send + Sync`; never changed by later writes.
#[derive(Clone)]
pub struct ReadTxn {
    db_id: u64,
    root: Arc<Root>,
}

impl ReadTxn {
    pub(crate) fn new(db_id: u64, root: Arc<Root>) -> Self {
        ReadTxn { db_id, root }
    }

    pub(crate) fn root(&self) -> &Root {
        &self.root
    }
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("tables", &self.root.len())
            .finish()
    }
}

#[inline]
fn snapshot_state<'t, T: Send + Sync + 'static>(
    db_id: u64,
    root: &'t Root,
    table: &TableInner<T>,
) -> Result<&'t TableState<T>, TxnError> {
    let not_registered = || TxnError::TableNotRegistered(table.name().to_string());
    let (db, pos) = table.registration().ok_or_else(not_registered)?;
    if db != db_id {
        return Err(TxnError::TableFromOtherDb(table.name().to_string()));
    }
    root.get(pos)
        .and_then(|s| (&**s as &dyn Any).downcast_ref::<TableState<T>>())
        .ok_or_else(not_registered)
}

impl crate::sealed::Sealed for ReadTxn {}

impl ReadTxnLike for ReadTxn {
    #[inline]
    fn view<'t, T: Send + Sync + 'static>(
        &'t self,
        table: &TableInner<T>,
    ) -> Result<View<'t, T>, TxnError> {
        snapshot_state(self.db_id, &self.root, table).map(View::snapshot)
    }
    fn committed_view<'t, T: Send + Sync + 'static>(
        &'t self,
        table: &TableInner<T>,
    ) -> Result<View<'t, T>, TxnError> {
        self.view(table)
    }
}

/// Per-transaction lists of tables, inline up to a few: most write
/// transactions lock one or two tables, and a heap list each (the tables,
/// their locks, their transactions, what commit finished) was a third of
/// a one-object transaction's allocations.
pub(crate) type PerTable<T> = SmallVec<[T; 2]>;

struct Locked {
    pos: usize,
    table: Arc<dyn ErasedTable>,
    guard: TableGuard,
    txn: Box<dyn AnyTableTxn>,
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
    db: Arc<DbInner>,
    base: Arc<Root>,
    locked: PerTable<Locked>,
    /// Who holds the locks (see `lock.rs`).
    owner: Owner,
    /// The owner's thread as last seen here, 0 when a task owns it: a
    /// write from another thread re-owns the transaction.
    thread: u64,
    started: Option<Instant>,
    /// The named handle it came from ([`crate::Db::handle`]).
    handle: Arc<str>,
    /// When it had every lock (with metrics only), for the hold time.
    locked_at: Option<Instant>,
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.locked.iter().map(|l| l.txn.name()).collect();
        f.debug_struct("WriteTxn")
            .field("handle", &&*self.handle)
            .field("tables", &names)
            .finish()
    }
}

impl crate::sealed::Sealed for WriteTxn {}

impl ReadTxnLike for WriteTxn {
    fn view<'t, T: Send + Sync + 'static>(
        &'t self,
        table: &TableInner<T>,
    ) -> Result<View<'t, T>, TxnError> {
        let base = snapshot_state(self.db.id(), &self.base, table)?;
        if let Some((_, pos)) = table.registration()
            && let Some(l) = self.locked.iter().find(|l| l.pos == pos)
            && let Some(t) = (&*l.txn as &dyn Any).downcast_ref::<TableTxn<T>>()
            && std::ptr::eq(&**t.table(), table)
        {
            return Ok(View::txn(t, base));
        }
        Ok(View::snapshot(base))
    }
    fn committed_view<'t, T: Send + Sync + 'static>(
        &'t self,
        table: &TableInner<T>,
    ) -> Result<View<'t, T>, TxnError> {
        snapshot_state(self.db.id(), &self.base, table).map(View::snapshot)
    }
}

impl Drop for WriteTxn {
    /// Abort: discard the changes and release the locks. A graveyard
    /// collection requested while we held a lock runs now.
    fn drop(&mut self) {
        let locked = std::mem::take(&mut self.locked);
        // A clean-up commit (no start time) is not the user's abort.
        if let (Some(m), Some(_), false) = (self.db.metrics(), self.started, locked.is_empty()) {
            let names: Vec<&str> = locked.iter().map(|l| l.txn.name()).collect();
            m.write_txn_aborted(&names);
            if let Some(at) = self.locked_at {
                m.handle_lock_hold(&self.handle, &names, at.elapsed());
            }
        }
        let mut tables: PerTable<_> = SmallVec::with_capacity(locked.len());
        for l in locked {
            l.txn.abort();
            drop(l.guard);
            tables.push(l.table);
        }
        for t in tables {
            if t.wants_collection(None) {
                collect_if_idle(&self.db, &t);
            }
        }
    }
}

impl WriteTxn {
    pub(crate) fn table_txn_mut<T: Send + Sync + 'static>(
        &mut self,
        table: &TableInner<T>,
    ) -> Result<&mut TableTxn<T>, TxnError> {
        if self.thread != 0 {
            let me = thread_token();
            if me != self.thread {
                // Moved to this thread: its locks are this thread's now.
                self.thread = me;
                self.owner = Owner::thread_owner(me);
                for l in &self.locked {
                    l.table.lock().reown(self.owner);
                }
            }
        }
        let not_locked = || TxnError::TableNotLocked(table.name().to_string());
        let (db, pos) = table.registration().ok_or_else(not_locked)?;
        if db != self.db.id() {
            return Err(TxnError::TableFromOtherDb(table.name().to_string()));
        }
        let l = self
            .locked
            .iter_mut()
            .find(|l| l.pos == pos)
            .ok_or_else(not_locked)?;
        (&mut *l.txn as &mut dyn Any)
            .downcast_mut::<TableTxn<T>>()
            .ok_or_else(not_locked)
    }

    /// The Db this transaction writes to.
    pub(crate) fn db(&self) -> &Arc<DbInner> {
        &self.db
    }

    /// The name of the handle the transaction came from
    /// ([`crate::Db::handle`]; `"db"` by default).
    pub fn handle(&self) -> &str {
        &self.handle
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
        let mut finished: PerTable<_> = SmallVec::with_capacity(locked.len());
        let timed = self.db.metrics().is_some();
        for l in locked {
            let (state, w, stats) = l.txn.finish(timed);
            watches.append(w);
            finished.push((l.pos, state, stats, l.table, l.guard));
        }
        let Ok((root, ())) = self.db.publish(|next| {
            for (pos, state, ..) in &finished {
                next.set(*pos, state.clone());
            }
            Ok::<(), Infallible>(())
        });
        let metrics = self.db.metrics();
        let mut released: PerTable<_> = SmallVec::with_capacity(finished.len());
        for (_, _, stats, table, guard) in finished {
            drop(guard);
            if let Some(period) = &stats.ended_init_period {
                period.close();
            }
            if let Some(m) = metrics {
                m.table_contents(table.name(), stats.objects, stats.graveyard, stats.revision);
                m.change_iterators(table.name(), stats.change_iterators);
                if let Some(c) = &stats.collection {
                    m.graveyard_collected(table.name(), c.collected, c.low_watermark, c.duration);
                }
            }
            released.push((table, stats.graveyard_oldest));
        }
        watches.close();
        if let (Some(m), Some(started)) = (metrics, self.started) {
            let names: Vec<&str> = released.iter().map(|(t, _)| t.name()).collect();
            m.write_txn_duration(&names, started.elapsed());
            if let Some(at) = self.locked_at {
                m.handle_lock_hold(&self.handle, &names, at.elapsed());
            }
        }
        // A change iterator may have asked for collection while we held
        // the lock, after our own collection ran, or been dropped before
        // our graveyard was visible to it.
        for (t, oldest) in released {
            if t.wants_collection(oldest) {
                collect_if_idle(&self.db, &t);
            }
        }
        ReadTxn::new(self.db.id(), root)
    }
}

/// Collects a table's graveyard now, in a commit of its own, if nobody
/// holds its lock; otherwise the holder collects it when it finishes
/// (commit or abort). Every commit, this clean-up one included, starts
/// here in `txn.rs`.
pub(crate) fn collect_if_idle(db: &Arc<DbInner>, table: &Arc<dyn ErasedTable>) {
    let Some((_, pos)) = table.registration() else {
        return;
    };
    let root = db.root();
    if root.get(pos).is_none_or(|s| s.graveyard_len() == 0) {
        return;
    }
    drop(root);
    table.request_collection();
    let owner = Owner::current();
    let handle: Arc<str> = Arc::from(GRAVEYARD_HANDLE);
    if let Some(guard) = TableGuard::try_new(table, owner, &handle) {
        // Committing runs the graveyard collection.
        begin_locked(db, &handle, smallvec::smallvec![(pos, guard)], owner, None).commit();
    }
}

/// The handle name of a graveyard clean-up commit, as inspection shows it.
pub(crate) const GRAVEYARD_HANDLE: &str = "statedb-graveyard";

/// How [`lock_tables`] waits for a table held by another transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LockWait {
    Block,
    Try,
    Timeout(Duration),
}

/// A held table lock, released (handed to the next waiter) when dropped.
pub(crate) struct TableGuard {
    table: Arc<dyn ErasedTable>,
}

impl TableGuard {
    /// Takes a table's lock when it is free (the clean-up commit of a
    /// graveyard collection).
    pub(crate) fn try_new(
        table: &Arc<dyn ErasedTable>,
        owner: Owner,
        handle: &Arc<str>,
    ) -> Option<Self> {
        match table.lock().acquire(owner, handle, false) {
            Acquire::Held => Some(TableGuard {
                table: table.clone(),
            }),
            Acquire::Conflict | Acquire::Busy | Acquire::Queued(_) => None,
        }
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        self.table.lock().release();
    }
}

/// A table with its position in the root.
type Positioned = (usize, Arc<dyn ErasedTable>);

/// The tables of a new write transaction, checked (registered with `db`)
/// and in the global lock order (their position in the root), so that
/// writers never deadlock.
fn lock_order(
    db: &Arc<DbInner>,
    tables: PerTable<Arc<dyn ErasedTable>>,
    owner: Owner,
) -> Result<PerTable<Positioned>, TxnError> {
    let mut regs: PerTable<_> = SmallVec::with_capacity(tables.len());
    for t in tables {
        let (db_id, pos) = t
            .registration()
            .ok_or_else(|| TxnError::TableNotRegistered(t.name().to_string()))?;
        if db_id != db.id() {
            return Err(TxnError::TableFromOtherDb(t.name().to_string()));
        }
        regs.push((pos, t));
    }
    regs.sort_by_key(|(pos, _)| *pos);
    regs.dedup_by_key(|(pos, _)| *pos);
    // Name every table the caller holds already, before taking any.
    let held: Vec<String> = regs
        .iter()
        .filter(|(_, t)| t.lock().held_by(owner))
        .map(|(_, t)| t.name().to_string())
        .collect();
    if !held.is_empty() {
        return Err(TxnError::WouldDeadlock { tables: held });
    }
    Ok(regs)
}

/// Locks tables for a new write transaction, blocking the thread as
/// `wait` says.
pub(crate) fn lock_tables(
    db: &Arc<DbInner>,
    handle: &Arc<str>,
    tables: PerTable<Arc<dyn ErasedTable>>,
    wait: LockWait,
) -> Result<WriteTxn, TxnError> {
    let owner = Owner::current();
    let regs = lock_order(db, tables, owner)?;
    let metrics = db.metrics();
    let started = metrics.map(|_| Instant::now());
    let deadline = match wait {
        LockWait::Timeout(d) => Instant::now().checked_add(d),
        _ => None,
    };
    let mut guards: PerTable<_> = SmallVec::with_capacity(regs.len());
    for (pos, t) in regs {
        let t0 = metrics.map(|_| Instant::now());
        let name = || vec![t.name().to_string()];
        // On an error `guards` drops, releasing what we took.
        match t
            .lock()
            .acquire(owner, handle, !matches!(wait, LockWait::Try))
        {
            Acquire::Held => {}
            Acquire::Conflict => return Err(TxnError::WouldDeadlock { tables: name() }),
            Acquire::Busy => return Err(TxnError::TablesBusy { tables: name() }),
            Acquire::Queued(waiter) => {
                if !waiter.wait(deadline) && !t.lock().leave(&waiter) {
                    let LockWait::Timeout(timeout) = wait else {
                        unreachable!("only a timed wait gives up")
                    };
                    return Err(TxnError::LockTimeout {
                        tables: name(),
                        timeout,
                    });
                }
            }
        }
        if let (Some(m), Some(t0)) = (metrics, t0) {
            m.handle_lock_wait(handle, t.name(), t0.elapsed());
        }
        guards.push((pos, TableGuard { table: t }));
    }
    Ok(begin_locked(db, handle, guards, owner, started))
}

/// The future of [`crate::Db::write_txn_async`]: takes the tables' locks
/// in the global order, waiting in each lock's queue without blocking a
/// thread. Dropping it before it completes gives up its places in the
/// queues and releases what it took.
#[must_use = "a future does nothing unless polled"]
pub struct WriteTxnFuture {
    step: Option<Result<Acquiring, TxnError>>,
}

struct Acquiring {
    db: Arc<DbInner>,
    handle: Arc<str>,
    owner: Owner,
    tables: PerTable<Positioned>,
    guards: PerTable<(usize, TableGuard)>,
    /// Our place in the queue of `tables[guards.len()]`.
    waiting: Option<Arc<Waiter>>,
    started: Option<Instant>,
    lock_wait_from: Option<Instant>,
}

impl std::fmt::Debug for WriteTxnFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("WriteTxnFuture");
        if let Some(Ok(a)) = &self.step {
            let names: Vec<&str> = a.tables.iter().map(|(_, t)| t.name()).collect();
            d.field("tables", &names).field("locked", &a.guards.len());
        }
        d.finish_non_exhaustive()
    }
}

impl WriteTxnFuture {
    pub(crate) fn new(
        db: &Arc<DbInner>,
        handle: &Arc<str>,
        tables: PerTable<Arc<dyn ErasedTable>>,
    ) -> Self {
        let owner = Owner::current_async();
        let step = lock_order(db, tables, owner).map(|tables| {
            let metrics = db.metrics();
            Acquiring {
                db: db.clone(),
                handle: handle.clone(),
                owner,
                guards: SmallVec::with_capacity(tables.len()),
                tables,
                waiting: None,
                started: metrics.map(|_| Instant::now()),
                lock_wait_from: metrics.map(|_| Instant::now()),
            }
        });
        WriteTxnFuture { step: Some(step) }
    }
}

impl std::future::Future for WriteTxnFuture {
    type Output = Result<WriteTxn, TxnError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let done = match self.step.as_mut() {
            Some(Ok(a)) => a.advance(cx),
            Some(Err(_)) => Poll::Ready(Err(())),
            None => panic!("WriteTxnFuture polled after completion"),
        };
        match (done, self.step.take()) {
            (Poll::Pending, step) => {
                self.step = step;
                Poll::Pending
            }
            (Poll::Ready(Ok(())), Some(Ok(mut a))) => {
                let guards = std::mem::take(&mut a.guards);
                Poll::Ready(Ok(begin_locked(
                    &a.db, &a.handle, guards, a.owner, a.started,
                )))
            }
            (Poll::Ready(_), Some(Err(e))) => Poll::Ready(Err(e)),
            (Poll::Ready(_), Some(Ok(a))) => {
                // Conflict: the task awaiting us holds the table.
                let t = &a.tables[a.guards.len()].1;
                let tables = vec![t.name().to_string()];
                Poll::Ready(Err(TxnError::WouldDeadlock { tables }))
            }
            (Poll::Ready(_), None) => unreachable!("the step was there"),
        }
    }
}

impl Acquiring {
    /// Takes locks until all are ours (`Ok`), one has us queued
    /// (`Pending`), or the awaiting task holds one already (`Err`).
    fn advance(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ()>> {
        use std::task::Poll;
        while let Some((pos, t)) = self.tables.get(self.guards.len()).cloned() {
            match &self.waiting {
                Some(w) => {
                    if !w.poll_granted(cx.waker()) {
                        return Poll::Pending;
                    }
                    self.waiting = None;
                }
                None => match t.lock().acquire(self.owner, &self.handle, true) {
                    Acquire::Held => {}
                    Acquire::Queued(w) => {
                        self.waiting = Some(w);
                        continue;
                    }
                    Acquire::Conflict | Acquire::Busy => return Poll::Ready(Err(())),
                },
            }
            if let (Some(m), Some(t0)) = (self.db.metrics(), self.lock_wait_from) {
                m.handle_lock_wait(&self.handle, t.name(), t0.elapsed());
                self.lock_wait_from = Some(Instant::now());
            }
            self.guards.push((pos, TableGuard { table: t }));
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Acquiring {
    fn drop(&mut self) {
        // Cancelled while queued: leave the queue, or pass on a lock handed
        // to us meanwhile. (`guards` release themselves.)
        if let Some(w) = self.waiting.take()
            && let Some((_, t)) = self.tables.get(self.guards.len())
            && t.lock().leave(&w)
        {
            t.lock().release();
        }
    }
}

/// Starts a write transaction over tables whose locks are held.
pub(crate) fn begin_locked(
    db: &Arc<DbInner>,
    handle: &Arc<str>,
    guards: PerTable<(usize, TableGuard)>,
    owner: Owner,
    started: Option<Instant>,
) -> WriteTxn {
    // Loaded after locking: the state of our tables cannot change now.
    let base = db.root();
    let locked = guards
        .into_iter()
        .filter_map(|(pos, guard)| {
            let table = guard.table.clone();
            let txn = table.clone().begin(&**base.get(pos)?)?;
            Some(Locked {
                pos,
                table,
                guard,
                txn,
            })
        })
        .collect();
    WriteTxn {
        db: db.clone(),
        base,
        locked,
        thread: owner.thread(),
        owner,
        handle: handle.clone(),
        locked_at: started.map(|_| Instant::now()),
        started,
    }
}
