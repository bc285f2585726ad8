//! The database: the root of all tables, registration, transactions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::db_inner::DbInner;
use crate::erased::{ErasedTable, TableHandle};
use crate::error::{Error, Result, TxnError};
use crate::index::Index;
use crate::info::{LockHolder, TableInfo};
use crate::metrics::DbMetrics;
use crate::table::{Table, TableBuilder};
use crate::table_inner::POS_BITS;
use crate::txn::{LockWait, ReadTxn, WriteTxn, WriteTxnFuture, lock_tables};

// A plain std atomic even under loom: ids only need to be unique.
static NEXT_DB_ID: AtomicU64 = AtomicU64::new(1);

/// An in-memory MVCC database of typed tables.
///
/// Readers take [`Db::read_txn`]: one atomic load, never blocked by
/// writers. Writers take [`Db::write_txn`] naming the tables they change;
/// writers of disjoint tables run in parallel. Cloning a `Db` is cheap and
/// yields a handle to the same database; [`Db::handle`] yields one with a
/// name, which attributes its write transactions in inspection and
/// metrics.
///
/// ```
/// use statedb::{Db, Index, Table};
/// let by_id: Index<(u64, String), u64> = Index::unique("id", |o: &(u64, String), k| k.push(&o.0));
/// let table = Table::new("names", &by_id)?;
/// let db = Db::new();
/// db.register_table(&table)?;
/// let before = db.read_txn();
/// let mut w = db.write_txn(&[&table])?;
/// table.insert(&mut w, (1, "one".to_string()))?;
/// let after = w.commit();
/// assert_eq!(table.num_objects(&before)?, 0);
/// assert_eq!(table.num_objects(&after)?, 1);
/// # Ok::<(), statedb::Error>(())
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
    /// The name its write transactions carry ([`Db::handle`]).
    handle: Arc<str>,
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("handle", &&*self.handle)
            .field("tables", &self.table_names())
            .finish()
    }
}

impl Db {
    /// The handle name of a Db not made with [`Db::handle`].
    pub const DEFAULT_HANDLE: &'static str = "db";

    /// An empty database without metrics.
    pub fn new() -> Db {
        Self::build(None)
    }

    /// An empty database reporting to `metrics`.
    pub fn with_metrics(metrics: Arc<dyn DbMetrics>) -> Db {
        Self::build(Some(metrics))
    }

    fn build(metrics: Option<Arc<dyn DbMetrics>>) -> Db {
        let id = NEXT_DB_ID.fetch_add(1, Ordering::Relaxed);
        Db {
            inner: Arc::new(DbInner::new(id, metrics)),
            handle: Arc::from(Self::DEFAULT_HANDLE),
        }
    }

    /// A handle to the same database whose write transactions carry the
    /// name `name`: [`Db::tables`] shows it as the holder of the tables it
    /// locks ([`TableInfo::locked_by`]), [`WriteTxn::handle`] returns it,
    /// and the metrics attribute its lock waits and holds to it
    /// ([`DbMetrics::handle_lock_wait`], [`DbMetrics::handle_lock_hold`]).
    /// Give each module its own, so that a table that stays locked, or a
    /// module that waits long, can be named. A plain `Db` is `"db"`.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let t = Table::new("t", &Index::<u32, u32>::unique("id", |o: &u32, k| k.push(o)))?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let routes = db.handle("routes");
    /// let txn = routes.write_txn(&[&t])?;
    /// assert_eq!(txn.handle(), "routes");
    /// let info = db.tables(&db.read_txn());
    /// assert_eq!(info[0].locked_by.as_ref().map(|h| h.handle.as_str()), Some("routes"));
    /// drop(txn);
    /// assert!(db.tables(&db.read_txn())[0].locked_by.is_none());
    /// # Ok::<(), statedb::Error>(())
    /// ```
    #[must_use]
    pub fn handle(&self, name: &str) -> Db {
        Db {
            inner: self.inner.clone(),
            handle: Arc::from(name),
        }
    }

    /// The name of this handle ([`Db::handle`]; `"db"` by default).
    pub fn handle_name(&self) -> &str {
        &self.handle
    }

    /// Registers a table, empty and initialized (until an initializer is
    /// registered).
    ///
    /// # Errors
    ///
    /// [`TxnError::DuplicateTable`] if this Db has the table or another of
    /// that name; [`TxnError::TableFromOtherDb`] if another Db that is still
    /// alive has it (once that Db is dropped, the table can be registered
    /// again); [`TxnError::TooManyTables`] past 2^24 tables.
    pub fn register_table<T: Send + Sync + 'static>(
        &self,
        table: &Table<T>,
    ) -> Result<(), TxnError> {
        let erased: Arc<dyn ErasedTable> = table.inner().clone();
        let mut tables = self.inner.tables();
        if tables.iter().any(|t| t.name() == table.name()) {
            return Err(TxnError::DuplicateTable(table.name().to_string()));
        }
        let weak: std::sync::Weak<DbInner> = Arc::downgrade(&self.inner);
        let mut publish = || {
            let (_, pos) = self.inner.publish(|next| {
                if next.len() >= 1 << POS_BITS {
                    return Err(TxnError::TooManyTables);
                }
                Ok(next.push(erased.new_state()))
            })?;
            Ok(pos)
        };
        erased.register(self.inner.id(), weak, &mut publish)?;
        tables.push(erased);
        Ok(())
    }

    /// Declares a table with only its primary index and registers it, in
    /// one call ([`Table::new`] and [`Db::register_table`]); with more
    /// indexes, [`TableBuilder::register`].
    ///
    /// ```
    /// use statedb::{Db, Index};
    /// let by_id: Index<(u32, &str), u32> = Index::unique("id", |o: &(u32, &str), k| k.push(&o.0));
    /// let db = Db::new();
    /// let t = db.create_table("t", &by_id)?;
    /// assert!(db.create_table("t", &by_id).is_err(), "one table per name");
    /// # let _ = t;
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Declare`](crate::Error::Declare) for a bad name;
    /// [`Error::Txn`](crate::Error::Txn) as [`Db::register_table`].
    pub fn create_table<T: Send + Sync + 'static, K: ?Sized>(
        &self,
        name: &str,
        primary: &Index<T, K>,
    ) -> std::result::Result<Table<T>, Error> {
        Table::builder(name, primary).register(self)
    }

    /// The shared state (for modules above this one).
    #[cfg(feature = "json")]
    pub(crate) fn inner(&self) -> &Arc<DbInner> {
        &self.inner
    }

    /// The registered table called `name`, if its objects are `T`: how
    /// two parts of a program that share a Db (two libraries, say) find
    /// one table without passing its handle around.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// let db = Db::new();
    /// db.register_table(&Table::new("ids", &by_id)?)?;
    /// let ids: Table<u32> = db.table("ids").expect("registered");
    /// let mut w = db.write_txn(&[&ids])?;
    /// ids.insert(&mut w, 7)?;
    /// w.commit();
    /// assert!(db.table::<String>("ids").is_none(), "not a table of String");
    /// assert!(db.table::<u32>("other").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table<T: Send + Sync + 'static>(&self, name: &str) -> Option<Table<T>> {
        let erased = self
            .inner
            .tables()
            .iter()
            .find(|t| t.name() == name)?
            .clone();
        let inner = erased
            .as_any()
            .downcast::<crate::table_inner::TableInner<T>>()
            .ok()?;
        Some(Table::from_arc(inner))
    }

    /// The value shared under `key` by every part of the program that
    /// uses this Db, made with `T::default()` on first use: how libraries
    /// on top of one Db (several reconcilers of a table, say) share state
    /// without a global. Pick keys that name their owner
    /// (`"mylib/thing"`).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let db = statedb::Db::new();
    /// db.shared::<AtomicU64>("demo/counter").unwrap().fetch_add(1, Ordering::Relaxed);
    /// let again = db.shared::<AtomicU64>("demo/counter").unwrap();
    /// assert_eq!(again.load(Ordering::Relaxed), 1);
    /// assert!(db.shared::<String>("demo/counter").is_none(), "another type");
    /// assert_eq!(statedb::Db::new().shared::<AtomicU64>("demo/counter").unwrap().load(Ordering::Relaxed), 0);
    /// ```
    pub fn shared<T: Default + Send + Sync + 'static>(&self, key: &str) -> Option<Arc<T>> {
        self.inner.shared(key)
    }

    /// Names of the registered tables, in registration order.
    pub fn table_names(&self) -> Vec<String> {
        self.inner
            .tables()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// Every registered table as of `txn`, in registration order: its
    /// indexes, object count, revision, whether it is initialized, its
    /// graveyard size and live change iterators, and (now, not as of
    /// `txn`) which handle holds its lock and for how long. For
    /// inspection tools.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// let t = Table::new("ids", &by_id)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// t.insert(&mut w, 7)?;
    /// let info = db.tables(&w.commit());
    /// assert_eq!((info[0].name.as_str(), info[0].objects, info[0].revision), ("ids", 1, 1));
    /// assert_eq!(info[0].indexes[0].name, "id");
    /// # Ok::<(), statedb::Error>(())
    /// ```
    pub fn tables(&self, txn: &ReadTxn) -> Vec<TableInfo> {
        let tables = self.inner.tables();
        tables
            .iter()
            .filter_map(|t| {
                let (_, pos) = t.registration()?;
                let state = txn.root().get(pos)?;
                let (objects, revision, initialized) = state.summary();
                Some(TableInfo {
                    name: t.name().to_string(),
                    indexes: t.indexes(),
                    objects,
                    revision,
                    initialized,
                    graveyard: state.graveyard_len(),
                    change_iterators: t.change_iterators(),
                    locked_by: t.lock().holder().map(|(handle, since)| LockHolder {
                        handle: handle.to_string(),
                        held_for: since.elapsed(),
                    }),
                })
            })
            .collect()
    }

    /// A snapshot of every table: one atomic load, lock-free.
    pub fn read_txn(&self) -> ReadTxn {
        ReadTxn::new(self.inner.id(), self.inner.root())
    }

    /// A write transaction locking `tables`. Blocks the thread while
    /// another write transaction holds one of them.
    ///
    /// Lock every table a transaction needs in one call: tables named in
    /// one call are locked in a global order, so writers naming
    /// overlapping tables in any order never deadlock; but a caller that
    /// holds one write transaction and asks for another that needs a
    /// table held elsewhere can deadlock with a caller doing the reverse.
    /// [`Db::write_txn_timeout`] and [`Db::try_write_txn`] bound the wait.
    ///
    /// Waiters are served in arrival order, blocking and
    /// [async](Db::write_txn_async) alike: a released lock goes straight to
    /// the first in line.
    ///
    /// ## Warning
    ///
    /// In async code use [`Db::write_txn_async`]: this call blocks the
    /// runtime's worker thread, and if the holder is a task that needs
    /// that thread to finish (always so on a current-thread runtime), it
    /// never will.
    ///
    /// # Errors
    ///
    /// [`TxnError::TableNotRegistered`] / [`TxnError::TableFromOtherDb`] for a
    /// table of no or another Db; [`TxnError::WouldDeadlock`] if the caller
    /// holds one of the tables in a write transaction already, so waiting
    /// would never end. The caller is the tokio task it runs in, or, outside
    /// a task, its thread; a transaction belongs to the task that opened
    /// it, or, opened outside a task, to the thread that last wrote
    /// through it (a transaction moved to another thread is that thread's
    /// once it writes there). Another task on the same thread is not the
    /// caller: it waits.
    pub fn write_txn(&self, tables: &[&dyn TableHandle]) -> Result<WriteTxn, TxnError> {
        self.lock(tables, LockWait::Block)
    }

    /// A write transaction locking `tables`, for async code: the future
    /// waits for the locks without blocking a thread, in the same queue
    /// as the blocking callers (first come, first served).
    ///
    /// It is cancel-safe: dropping the future before it completes (for
    /// example under `tokio::time::timeout` or in a `select!`) leaves the
    /// queues and releases any lock it took, so a timeout is simply
    /// `tokio::time::timeout(d, db.write_txn_async(&[&t])).await`.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), statedb::Error> {
    /// let idx = Index::<u32, u32>::unique("id", |o: &u32, k| k.push(o));
    /// let t = Table::new("t", &idx)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let held = db.write_txn_async(&[&t]).await?;
    /// // Another task waits without blocking this (only) thread.
    /// let waiter = tokio::spawn({
    ///     let (db, t) = (db.clone(), t.clone());
    ///     async move {
    ///         let mut txn = db.write_txn_async(&[&t]).await?;
    ///         t.insert(&mut txn, 7)?;
    ///         txn.commit();
    ///         Ok::<_, statedb::Error>(())
    ///     }
    /// });
    /// tokio::task::yield_now().await;
    /// held.commit();
    /// waiter.await.unwrap()?;
    /// assert!(t.get(&db.read_txn(), idx.query(&7))?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::write_txn`], when awaited: [`TxnError::WouldDeadlock`] if the
    /// tokio task awaiting it holds one of the tables already. Outside a
    /// tokio task it is never refused, as waiting does not block the
    /// thread (an executor that blocks its thread on it while that thread
    /// holds the table hangs, as with any async lock).
    pub fn write_txn_async(&self, tables: &[&dyn TableHandle]) -> WriteTxnFuture {
        let erased = tables.iter().map(|t| t.erased().0).collect();
        WriteTxnFuture::new(&self.inner, &self.handle, erased)
    }

    /// Like [`Db::write_txn`], but never waits.
    ///
    /// # Errors
    ///
    /// As [`Db::write_txn`], and [`TxnError::TablesBusy`] naming the table
    /// that another write transaction holds.
    pub fn try_write_txn(&self, tables: &[&dyn TableHandle]) -> Result<WriteTxn, TxnError> {
        self.lock(tables, LockWait::Try)
    }

    /// Like [`Db::write_txn`], but waits at most `timeout` in all.
    ///
    /// ```
    /// use std::time::Duration;
    /// use statedb::{Db, Index, Table, TxnError};
    /// let t = Table::new("t", &Index::<u32, u32>::unique("id", |o: &u32, k| k.push(o)))?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let held = db.write_txn(&[&t])?;
    /// let db2 = db.clone();
    /// let t2 = t.clone();
    /// let err = std::thread::spawn(move || {
    ///     db2.write_txn_timeout(&[&t2], Duration::from_millis(10)).unwrap_err()
    /// }).join().unwrap();
    /// assert!(matches!(err, TxnError::LockTimeout { .. }));
    /// drop(held);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::write_txn`], and [`TxnError::LockTimeout`] naming the table
    /// still held by another write transaction when the time ran out.
    pub fn write_txn_timeout(
        &self,
        tables: &[&dyn TableHandle],
        timeout: Duration,
    ) -> Result<WriteTxn, TxnError> {
        self.lock(tables, LockWait::Timeout(timeout))
    }

    fn lock(&self, tables: &[&dyn TableHandle], wait: LockWait) -> Result<WriteTxn, TxnError> {
        let erased = tables.iter().map(|t| t.erased().0).collect();
        lock_tables(&self.inner, &self.handle, erased, wait)
    }
}

impl<T: Send + Sync + 'static> TableBuilder<T> {
    /// Builds the table and registers it with `db`, in one call.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<(u32, String), u32> = Index::unique("id", |o: &(u32, String), k| k.push(&o.0));
    /// let by_name: Index<(u32, String), str> = Index::non_unique("name", |o: &(u32, String), k| k.push(o.1.as_str()));
    /// let db = Db::new();
    /// let t = Table::builder("people", &by_id).index(&by_name).register(&db)?;
    /// assert_eq!(t.num_objects(&db.read_txn())?, 0);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`TableBuilder::build`] and [`Db::register_table`].
    pub fn register(self, db: &Db) -> std::result::Result<Table<T>, Error> {
        let table = self.build()?;
        db.register_table(&table)?;
        Ok(table)
    }
}
