//! Tables: declaration, registration data, and queries.

use std::any::Any;
use std::sync::{Arc, Weak};

use part::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, OwnedLock};
use part::{Tree, Watch, WatchCloser};

use crate::Revision;
use crate::error::{Error, Result};
use crate::index::{IndexInner, Query, non_unique_exact, non_unique_prefix};
pub use crate::objects::Found;
use crate::objects::Objects;
use crate::state::{AnyTableState, AnyTableTxn, Object, TableState, TableTxn};
use crate::txn::{ReadTxnLike, View, WriteTxn};

mod initializer;
mod schema;

pub use initializer::Initializer;
pub use schema::TableBuilder;

/// A typed table of objects `T`, with a unique primary index and any
/// number of secondary indexes. Cheap to clone (one `Arc`).
///
/// Objects are stored as `Arc<T>` and handed out immutable; to change one,
/// insert a new version (clone and modify).
///
/// ```
/// use statedb::{Db, Index, Table};
/// #[derive(Clone, Debug)]
/// struct Route { id: u32, dev: String }
/// let by_id: Index<Route, u32> = Index::unique("id", |r: &Route, k| k.push(&r.id));
/// let by_dev: Index<Route, str> = Index::non_unique("dev", |r: &Route, k| k.push(r.dev.as_str()));
/// let routes = Table::builder("routes", &by_id).index(&by_dev).build()?;
/// let db = Db::new();
/// db.register_table(&routes)?;
///
/// let mut wtxn = db.write_txn(&[&routes])?;
/// routes.insert(&mut wtxn, Route { id: 1, dev: "eth0".into() })?;
/// routes.insert(&mut wtxn, Route { id: 2, dev: "eth0".into() })?;
/// let rtxn = wtxn.commit();
///
/// let (r, _rev) = routes.get(&rtxn, by_id.query(&2))?.unwrap();
/// assert_eq!(r.dev, "eth0");
/// assert_eq!(routes.list(&rtxn, by_dev.query("eth0"))?.count(), 2);
/// # Ok::<(), statedb::Error>(())
/// ```
pub struct Table<T> {
    pub(crate) inner: Arc<TableInner<T>>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Table<T> {
    /// The table name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.inner.name)
            .finish()
    }
}

pub(crate) struct TableInner<T> {
    pub name: String,
    pub primary: Arc<IndexInner<T>>,
    pub secondary: Vec<Arc<IndexInner<T>>>,
    pub lock: OwnedLock,
    /// (Db id, position in the root) packed as `id << 24 | position`; 0
    /// while unregistered. One atomic load on every query.
    registration: AtomicU64,
    /// The Db registered with, to tell a live one from a dropped one.
    registered_db: Mutex<Option<Weak<dyn Any + Send + Sync>>>,
    /// Thread token of the write transaction holding the lock (0: none),
    /// to refuse a same-thread re-lock instead of hanging.
    owner: AtomicU64,
    /// Delete watermarks of live change iterators.
    trackers: Mutex<Vec<part::sync::Arc<AtomicU64>>>,
    tracker_count: AtomicUsize,
    /// Set when the graveyard could be collected but the table was locked:
    /// the lock holder collects when it finishes, commit or abort.
    pub gc_requested: AtomicBool,
    /// The "initialized" watch and its closer.
    init: Mutex<(Watch, WatchCloser)>,
    next_initializer: AtomicU64,
}

/// Bits of the packed registration that hold the position.
pub(crate) const POS_BITS: u32 = 24;

impl<T> TableInner<T> {
    /// (Db id, position in the root), if registered.
    #[inline]
    pub fn registration(&self) -> Option<(u64, usize)> {
        match self.registration.load(Ordering::Acquire) {
            0 => None,
            packed => Some((
                packed >> POS_BITS,
                (packed & ((1 << POS_BITS) - 1)) as usize,
            )),
        }
    }

    pub fn has_delete_trackers(&self) -> bool {
        self.tracker_count.load(Ordering::Acquire) > 0
    }

    /// Graveyard entries at or below this revision can be collected.
    pub fn graveyard_low_watermark(&self) -> Revision {
        let trackers = self.trackers.lock();
        trackers
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .min()
            .unwrap_or(Revision::MAX)
    }

    pub fn add_tracker(&self, seen: Revision) -> part::sync::Arc<AtomicU64> {
        let t = part::sync::Arc::new(AtomicU64::new(seen));
        let mut trackers = self.trackers.lock();
        trackers.push(t.clone());
        self.tracker_count.store(trackers.len(), Ordering::Release);
        t
    }

    pub fn remove_tracker(&self, t: &part::sync::Arc<AtomicU64>) {
        let mut trackers = self.trackers.lock();
        trackers.retain(|x| !part::sync::Arc::ptr_eq(x, t));
        self.tracker_count.store(trackers.len(), Ordering::Release);
    }

    #[inline]
    pub fn index_pos(&self, name: &str) -> Result<IndexPos> {
        // Queries carry the index's own `&'static str`: pointer equality
        // settles the common case without comparing bytes.
        if std::ptr::eq(name, self.primary.name) || name == self.primary.name {
            return Ok(IndexPos::Primary);
        }
        self.secondary
            .iter()
            .position(|i| i.name == name)
            .map(|i| IndexPos::Secondary(i, self.secondary[i].unique))
            .ok_or_else(|| Error::UnknownIndex {
                table: self.name.clone(),
                index: name.to_string(),
            })
    }
}

/// Which tree of a table an index query searches.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IndexPos {
    Primary,
    Secondary(usize, bool),
}

impl IndexPos {
    pub(crate) fn unique(self) -> bool {
        match self {
            IndexPos::Primary => true,
            IndexPos::Secondary(_, u) => u,
        }
    }
}

/// Type-erased table operations the Db needs.
pub(crate) trait ErasedTable: Send + Sync {
    fn name(&self) -> &str;
    fn registration(&self) -> Option<(u64, usize)>;
    /// Registers with `db` at `pos` unless registered with another live
    /// Db; runs `publish` (which adds the table to the root) in between.
    fn register(
        &self,
        db_id: u64,
        db: Weak<dyn Any + Send + Sync>,
        publish: &mut dyn FnMut() -> Result<usize>,
    ) -> Result<()>;
    fn lock(&self) -> &OwnedLock;
    /// Thread token of the lock holder (0: none).
    fn owner(&self) -> &AtomicU64;
    fn new_state(&self) -> Arc<dyn AnyTableState>;
    fn begin(self: Arc<Self>, state: &dyn AnyTableState) -> Box<dyn AnyTableTxn>;
    fn mark_initialized(&self);
    /// Whether the graveyard should be collected now: a collection was
    /// requested while the table was locked, or some of it (from `oldest`
    /// on) is seen by every iterator. Clears the request.
    fn wants_collection(&self, oldest: Option<Revision>) -> bool;
    /// Asks the holder of the table's lock to collect when it finishes.
    fn request_collection(&self);
}

impl<T: Send + Sync + 'static> ErasedTable for TableInner<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn registration(&self) -> Option<(u64, usize)> {
        TableInner::registration(self)
    }
    fn register(
        &self,
        db_id: u64,
        db: Weak<dyn Any + Send + Sync>,
        publish: &mut dyn FnMut() -> Result<usize>,
    ) -> Result<()> {
        let mut registered = self.registered_db.lock();
        if let Some((old, _)) = self.registration() {
            if old == db_id {
                return Err(Error::DuplicateTable(self.name.clone()));
            }
            if registered.as_ref().is_some_and(|w| w.strong_count() > 0) {
                return Err(Error::TableFromOtherDb(self.name.clone()));
            }
        }
        if db_id >= 1 << (64 - POS_BITS) {
            return Err(Error::TooManyTables);
        }
        let pos = publish()?;
        // A table of a dropped Db starts afresh: no iterator of that Db
        // can be alive (each holds its Db).
        self.gc_requested.store(false, Ordering::Release);
        self.registration
            .store(db_id << POS_BITS | pos as u64, Ordering::Release);
        *registered = Some(db);
        Ok(())
    }
    fn lock(&self) -> &OwnedLock {
        &self.lock
    }
    fn owner(&self) -> &AtomicU64 {
        &self.owner
    }
    fn new_state(&self) -> Arc<dyn AnyTableState> {
        Arc::new(TableState::<T>::new(self.secondary.len()))
    }
    fn begin(self: Arc<Self>, state: &dyn AnyTableState) -> Box<dyn AnyTableTxn> {
        // The root only holds this table's own state type at its position.
        let state = state
            .as_any()
            .downcast_ref::<TableState<T>>()
            .expect("root entry has the table's type");
        Box::new(TableTxn::new(self.clone(), state))
    }
    fn mark_initialized(&self) {
        self.init.lock().1.close();
    }
    fn wants_collection(&self, oldest: Option<Revision>) -> bool {
        // The trackers' mutex orders this check against a change iterator
        // that is dropped concurrently: either we see it gone, or it sees
        // our published graveyard and collects it itself. (Its own check
        // can run before we publish, when our deletes are not visible.)
        let collectable = oldest.is_some_and(|r| self.graveyard_low_watermark() >= r);
        self.gc_requested.swap(false, Ordering::AcqRel) || collectable
    }
    fn request_collection(&self) {
        self.gc_requested.store(true, Ordering::Release);
    }
}

/// A handle to any table, for naming tables in [`crate::Db::write_txn`].
/// Implemented by [`Table`]; sealed.
pub trait TableHandle: crate::sealed::Sealed {
    /// The table name.
    fn table_name(&self) -> &str;
    #[doc(hidden)]
    fn erased(&self) -> ErasedRef;
}

/// Opaque type-erased table reference (implementation detail).
#[doc(hidden)]
#[derive(Clone)]
pub struct ErasedRef(pub(crate) Arc<dyn ErasedTable>);

impl<T> crate::sealed::Sealed for Table<T> {}

impl<T: Send + Sync + 'static> TableHandle for Table<T> {
    fn table_name(&self) -> &str {
        &self.inner.name
    }
    fn erased(&self) -> ErasedRef {
        ErasedRef(self.inner.clone())
    }
}

/// The watch of a get or list query: the key's own watch (unique index) or
/// that of the node under which all its entries lie (non-unique).
fn query_watch<T: Send + Sync + 'static>(view: &View<'_, T>, pos: IndexPos, key: &[u8]) -> Watch {
    let tree = view.watch_tree(pos);
    if pos.unique() {
        tree.get_watch(key).1
    } else {
        tree.prefix(&non_unique_exact(key)).1
    }
}

/// The key to search an index with for prefix and lower-bound queries:
/// non-unique keys without their terminator.
fn range_key(pos: IndexPos, key: part::Key) -> part::Key {
    if pos.unique() {
        key
    } else {
        non_unique_prefix(&key)
    }
}

impl<T: Send + Sync + 'static> Table<T> {
    /// Names of the table's indexes, primary first.
    pub fn index_names(&self) -> Vec<&'static str> {
        std::iter::once(self.inner.primary.name)
            .chain(self.inner.secondary.iter().map(|i| i.name))
            .collect()
    }

    /// A query on the primary index for `obj`'s own primary key.
    pub fn primary_query(&self, obj: &T) -> Option<Query<T>> {
        let keys = self.inner.primary.keys_of(obj);
        keys.into_first()
            .map(|key| Query::new(self.inner.primary.name, key))
    }

    // ---- writes -------------------------------------------------------

    /// Inserts `obj`, replacing the object with the same primary key.
    /// Returns the replaced object.
    ///
    /// # Errors
    ///
    /// [`Error::TableNotLocked`] if `txn` does not lock the table;
    /// [`Error::PrimaryKeyCount`] if the primary index does not yield
    /// exactly one key; [`Error::UniqueConflict`] if a key of a unique
    /// secondary index belongs to another object. On error nothing is
    /// changed and the transaction stays usable.
    pub fn insert(&self, txn: &mut WriteTxn, obj: impl Into<Arc<T>>) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(self)?;
        Ok(tt.insert(obj.into())?.map(|o| o.data))
    }

    /// Inserts `obj`, or, when an object with the same primary key exists,
    /// stores `merge(&old, &obj)` instead: the way to mirror external state
    /// into a table without a read-modify-write race (the reference's
    /// `Modify`). Returns the replaced object.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// #[derive(Clone, Debug)]
    /// struct Seen { host: String, count: u32 }
    /// let by_host: Index<Seen, str> = Index::unique("host", |s: &Seen, k| k.push(s.host.as_str()));
    /// let t = Table::new("seen", &by_host)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// let add = |old: &Seen, new: &Seen| Seen { host: old.host.clone(), count: old.count + new.count };
    /// t.modify(&mut w, Seen { host: "a".into(), count: 1 }, add)?;
    /// t.modify(&mut w, Seen { host: "a".into(), count: 2 }, add)?;
    /// assert_eq!(t.get(&w, by_host.query("a"))?.unwrap().0.count, 3);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Table::insert`], and [`Error::PrimaryKeyChanged`] if `merge`
    /// returns an object with another primary key (nothing is changed).
    pub fn modify(
        &self,
        txn: &mut WriteTxn,
        obj: impl Into<Arc<T>>,
        merge: impl FnOnce(&T, &T) -> T,
    ) -> Result<Option<Arc<T>>> {
        let obj = obj.into();
        let tt = txn.table_txn_mut(self)?;
        let pk = tt.primary_key(&obj)?;
        let new = match tt.primary.get(&pk) {
            None => obj,
            Some(old) => {
                let merged = Arc::new(merge(&old.data, &obj));
                if tt.primary_key(&merged)? != pk {
                    return Err(Error::PrimaryKeyChanged(self.name().to_string()));
                }
                merged
            }
        };
        Ok(tt.insert_with_key(pk, new)?.map(|o| o.data))
    }

    /// Inserts `obj` and returns, besides the replaced object, a watch that
    /// closes when this object is next replaced or deleted (by a later
    /// committed write), or at once if `txn` is aborted.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// let t = Table::new("ids", &by_id)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// let (_, watch) = t.insert_watch(&mut w, 1)?;
    /// w.commit();
    /// assert!(!watch.is_closed());
    /// let mut w = db.write_txn(&[&t])?;
    /// t.delete(&mut w, &1)?;
    /// w.commit();
    /// assert!(watch.is_closed());
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Table::insert`].
    pub fn insert_watch(
        &self,
        txn: &mut WriteTxn,
        obj: impl Into<Arc<T>>,
    ) -> Result<(Option<Arc<T>>, Watch)> {
        let obj = obj.into();
        let tt = txn.table_txn_mut(self)?;
        let pk = tt.primary_key(&obj)?;
        let old = tt.insert_with_key(pk.clone(), obj)?;
        let watch = tt
            .primary
            .get_watch(&pk)
            .unwrap_or_else(Watch::closed_watch);
        Ok((old.map(|o| o.data), watch))
    }

    /// Inserts `obj` only if the stored object with its primary key has
    /// revision `revision`. Errors: [`Error::ObjectNotFound`],
    /// [`Error::RevisionNotEqual`].
    pub fn compare_and_swap(
        &self,
        txn: &mut WriteTxn,
        revision: Revision,
        obj: impl Into<Arc<T>>,
    ) -> Result<Option<Arc<T>>> {
        let obj = obj.into();
        let tt = txn.table_txn_mut(self)?;
        let pk = tt.primary_key(&obj)?;
        match tt.primary.get(&pk) {
            None => Err(Error::ObjectNotFound),
            Some(cur) if cur.revision != revision => Err(Error::RevisionNotEqual {
                expected: revision,
                found: cur.revision,
            }),
            Some(_) => Ok(tt.insert_with_key(pk, obj)?.map(|o| o.data)),
        }
    }

    /// Deletes the object with `obj`'s primary key. Returns the deleted
    /// object, or `None` if there was none.
    pub fn delete(&self, txn: &mut WriteTxn, obj: &T) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(self)?;
        let pk = tt.primary_key(obj)?;
        Ok(tt.delete_key(&pk).map(|o| o.data))
    }

    /// Deletes the object with `obj`'s primary key only if its revision is
    /// `revision`. Returns the deleted object, or `None` if there was no
    /// object with that key (nothing to delete is not an error, as in the
    /// reference's `CompareAndDelete`).
    ///
    /// # Errors
    ///
    /// [`Error::RevisionNotEqual`] if the object exists with another
    /// revision (nothing is deleted); [`Error::TableNotLocked`];
    /// [`Error::PrimaryKeyCount`].
    pub fn compare_and_delete(
        &self,
        txn: &mut WriteTxn,
        revision: Revision,
        obj: &T,
    ) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(self)?;
        let pk = tt.primary_key(obj)?;
        match tt.primary.get(&pk) {
            None => Ok(None),
            Some(cur) if cur.revision != revision => Err(Error::RevisionNotEqual {
                expected: revision,
                found: cur.revision,
            }),
            Some(_) => Ok(tt.delete_key(&pk).map(|o| o.data)),
        }
    }

    /// Deletes every object; returns how many.
    pub fn delete_all(&self, txn: &mut WriteTxn) -> Result<usize> {
        let tt = txn.table_txn_mut(self)?;
        let keys: Vec<part::Key> = tt
            .primary
            .iter()
            .map(|(k, _)| part::Key::from_slice(k))
            .collect();
        for k in &keys {
            tt.delete_key(k);
        }
        Ok(keys.len())
    }

    // ---- reads --------------------------------------------------------

    #[inline]
    fn view<'t, X: ReadTxnLike>(&self, txn: &'t X) -> Result<View<'t, T>> {
        txn.view(self)
    }

    /// The first object matching `q`.
    pub fn get(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Found<T>> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index)?;
        Ok(view.first(pos, &q.key).map(|o| (o.data, o.revision)))
    }

    /// The first object matching `q`, and a watch that closes when the
    /// result may have changed.
    pub fn get_watch(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Found<T>, Watch)> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index)?;
        if pos.unique() && view.is_snapshot() {
            // One search finds both.
            let tree = view.tree(pos);
            let (o, w) = tree.get_watch(&q.key);
            return Ok((o.map(|o| (o.data.clone(), o.revision)), w));
        }
        let found = view.first(pos, &q.key).map(|o| (o.data, o.revision));
        Ok((found, query_watch(&view, pos, &q.key)))
    }

    /// All objects matching `q` exactly.
    pub fn list(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>> {
        Ok(self.list_watch(txn, q)?.0)
    }

    /// All objects matching `q` exactly, and a watch that closes when the
    /// result may have changed.
    pub fn list_watch(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Objects<T>, Watch)> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index)?;
        let watch = query_watch(&view, pos, &q.key);
        let objects = if pos.unique() {
            Objects::one(view.first(pos, &q.key))
        } else {
            Objects::iter(view.tree(pos).prefix_owned(&non_unique_exact(&q.key)).0)
        };
        Ok((objects, watch))
    }

    /// Objects whose key in `q`'s index starts with `q`'s key, in key
    /// order, with a watch. On a non-unique index an object appears once
    /// per matching key.
    pub fn prefix(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Objects<T>, Watch)> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index)?;
        let key = range_key(pos, q.key);
        let (it, _) = view.tree(pos).prefix_owned(&key);
        let watch = view.watch_tree(pos).prefix(&key).1;
        Ok((Objects::iter(it), watch))
    }

    /// Objects whose key in `q`'s index is greater than or equal to `q`'s
    /// key, in key order, with the index's root watch.
    pub fn lower_bound(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Objects<T>, Watch)> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index)?;
        let key = range_key(pos, q.key);
        Ok((
            Objects::iter(view.tree(pos).lower_bound_owned(&key)),
            view.watch_tree(pos).root_watch(),
        ))
    }

    /// Every object in primary key order.
    pub fn all(&self, txn: &impl ReadTxnLike) -> Result<Objects<T>> {
        Ok(self.all_watch(txn)?.0)
    }

    /// Every object in primary key order, and a watch that closes on any
    /// change of the table.
    pub fn all_watch(&self, txn: &impl ReadTxnLike) -> Result<(Objects<T>, Watch)> {
        let view = self.view(txn)?;
        let w = view.watch_tree(IndexPos::Primary).root_watch();
        Ok((
            Objects::iter(view.tree(IndexPos::Primary).into_owned_iter()),
            w,
        ))
    }

    /// Objects changed at or after `revision`, in the order they changed
    /// (deleted objects are not included; see [`Table::changes`]), and the
    /// table watch.
    pub fn lower_bound_by_revision(
        &self,
        txn: &impl ReadTxnLike,
        revision: Revision,
    ) -> Result<(Objects<T>, Watch)> {
        let view = self.view(txn)?;
        let tree: Tree<Object<T>> = view.revision_tree();
        Ok((
            Objects::iter(tree.lower_bound_owned(&revision.to_be_bytes())),
            view.table_watch(),
        ))
    }

    /// A watch that closes on any insert or delete in the table.
    pub fn watch(&self, txn: &impl ReadTxnLike) -> Result<Watch> {
        Ok(self.view(txn)?.table_watch())
    }

    /// The table's revision: that of its last insert or delete.
    pub fn revision(&self, txn: &impl ReadTxnLike) -> Result<Revision> {
        Ok(self.view(txn)?.last_revision())
    }

    /// Number of objects.
    pub fn num_objects(&self, txn: &impl ReadTxnLike) -> Result<usize> {
        Ok(self.view(txn)?.num_objects())
    }

    /// Number of deleted objects kept for change iterators that have not
    /// seen them yet.
    pub fn graveyard_len(&self, txn: &impl ReadTxnLike) -> Result<usize> {
        Ok(self.view(txn)?.graveyard_len())
    }
}
