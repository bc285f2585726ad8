//! Tables: declaration, registration data, and queries.

use std::sync::Arc;

use part::{Tree, Watch};

use crate::Revision;
use crate::erased::{ErasedRef, TableHandle};
use crate::error::{Result, TxnError};
use crate::index::{IndexPos, Query, exact_search_key, range_search_key};
use crate::object::Object;
pub use crate::objects::Found;
use crate::objects::Objects;
use crate::state::Guard;
use crate::table_inner::TableInner;
use crate::txn::WriteTxn;
use crate::view::{ReadTxnLike, View};

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
    inner: Arc<TableInner<T>>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Table<T> {
    pub(crate) fn from_inner(inner: TableInner<T>) -> Self {
        Table {
            inner: Arc::new(inner),
        }
    }

    /// A handle on an existing shared part.
    pub(crate) fn from_arc(inner: Arc<TableInner<T>>) -> Self {
        Table { inner }
    }

    /// The shared part every handle of this table holds.
    pub(crate) fn inner(&self) -> &Arc<TableInner<T>> {
        &self.inner
    }

    /// The table name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.inner.name())
            .finish()
    }
}

impl<T> crate::sealed::Sealed for Table<T> {}

impl<T: Send + Sync + 'static> TableHandle for Table<T> {
    fn table_name(&self) -> &str {
        self.inner.name()
    }
    fn erased(&self) -> ErasedRef {
        ErasedRef(self.inner.clone())
    }
}

impl<T: Send + Sync + 'static> Table<T> {
    /// Names of the table's indexes, primary first.
    pub fn index_names(&self) -> Vec<&'static str> {
        std::iter::once(self.inner.primary().name())
            .chain(self.inner.secondary().iter().map(|i| i.name()))
            .collect()
    }

    /// The index called `name` (the primary for `None`).
    #[cfg(feature = "json")]
    pub(crate) fn index_named(&self, name: Option<&str>) -> Option<&crate::index::IndexInner<T>> {
        let Some(name) = name else {
            return Some(self.inner.primary());
        };
        std::iter::once(self.inner.primary())
            .chain(self.inner.secondary().iter().map(|i| &**i))
            .find(|i| i.name() == name)
    }

    /// The revision the next insert or delete of this table in `txn` will
    /// carry: one more than the table's revision in `txn` (each write of a
    /// row takes the next revision, in order). A writer can record it in
    /// the object it writes, to recognise its own version later.
    ///
    /// ```
    /// # use statedb::{Db, Index, Table};
    /// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// let t = Table::new("ids", &by_id)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// let next = t.next_revision(&w)?;
    /// t.insert(&mut w, 1)?;
    /// assert_eq!(t.next_revision(&w)?, next + 1);
    /// let txn = w.commit();
    /// assert_eq!(t.get(&txn, by_id.query(&1))?.unwrap().1, next);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Table::revision`].
    pub fn next_revision(&self, txn: &WriteTxn) -> Result<Revision, TxnError> {
        Ok(self.revision(txn)?.saturating_add(1))
    }

    /// An encoded primary key (as [`Changes`](crate::Changes) and errors
    /// carry it) written as text the way its key type prints it
    /// ([`KeyEncoding::format_key`](part::KeyEncoding::format_key)):
    /// `10.0.0.0/24` for an `IpNet`, `2` for a `u64`. Bytes the key type
    /// cannot print come out as text when printable, else `0x` and hex.
    ///
    /// ```
    /// # use statedb::{Index, Table};
    /// struct Route { dst: ipnet::IpNet }
    /// let by_dst: Index<Route, ipnet::IpNet> = Index::unique("dst", |r: &Route, k| k.push(&r.dst));
    /// let routes = Table::new("routes", &by_dst).unwrap();
    /// let net: ipnet::IpNet = "10.0.0.0/24".parse().unwrap();
    /// let key = by_dst.query(&net).key().to_vec();
    /// assert_eq!(routes.primary_key_text(&key), "10.0.0.0/24");
    /// ```
    pub fn primary_key_text(&self, key: &[u8]) -> String {
        self.inner.primary().format_key(key)
    }

    /// A query on the primary index for `obj`'s own primary key.
    pub fn primary_query(&self, obj: &T) -> Option<Query<T>> {
        let keys = self.inner.primary().keys_of(obj);
        keys.into_first()
            .map(|key| Query::new(self.inner.primary().name(), key))
    }

    // ---- writes -------------------------------------------------------

    /// Inserts `obj`, replacing the object with the same primary key.
    /// Returns the replaced object.
    ///
    /// # Errors
    ///
    /// [`TxnError::TableNotLocked`](crate::TxnError::TableNotLocked) if `txn` does not lock the table;
    /// [`WriteError::PrimaryKeyCount`](crate::WriteError::PrimaryKeyCount) if the primary index does not yield
    /// exactly one key; [`WriteError::UniqueConflict`](crate::WriteError::UniqueConflict) if a key of a unique
    /// secondary index belongs to another object. On error nothing is
    /// changed and the transaction stays usable.
    pub fn insert(&self, txn: &mut WriteTxn, obj: impl Into<Arc<T>>) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(&self.inner)?;
        let old = tt.upsert(obj.into(), Guard::None, None::<fn(&T, &T) -> T>)?;
        Ok(old.map(|o| o.data))
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
    /// As [`Table::insert`], and [`WriteError::PrimaryKeyChanged`](crate::WriteError::PrimaryKeyChanged) if `merge`
    /// returns an object with another primary key (nothing is changed).
    pub fn modify(
        &self,
        txn: &mut WriteTxn,
        obj: impl Into<Arc<T>>,
        merge: impl FnOnce(&T, &T) -> T,
    ) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(&self.inner)?;
        let old = tt.upsert(obj.into(), Guard::None, Some(merge))?;
        Ok(old.map(|o| o.data))
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
        let tt = txn.table_txn_mut(&self.inner)?;
        let pk = tt.primary_key(&obj)?;
        let old = tt.upsert_with_key(pk.clone(), obj, Guard::None, None::<fn(&T, &T) -> T>)?;
        Ok((old.map(|o| o.data), tt.watch_key(&pk)))
    }

    /// Inserts `obj` only if the stored object with its primary key has
    /// revision `revision`. Errors: [`WriteError::ObjectNotFound`](crate::WriteError::ObjectNotFound),
    /// [`WriteError::RevisionNotEqual`](crate::WriteError::RevisionNotEqual).
    pub fn compare_and_swap(
        &self,
        txn: &mut WriteTxn,
        revision: Revision,
        obj: impl Into<Arc<T>>,
    ) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(&self.inner)?;
        let guard = Guard::Revision(revision);
        let old = tt.upsert(obj.into(), guard, None::<fn(&T, &T) -> T>)?;
        Ok(old.map(|o| o.data))
    }

    /// Deletes the object with `obj`'s primary key. Returns the deleted
    /// object, or `None` if there was none.
    pub fn delete(&self, txn: &mut WriteTxn, obj: &T) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(&self.inner)?;
        Ok(tt.delete(obj, Guard::None)?.map(|o| o.data))
    }

    /// Deletes the object `q` finds (on the primary index: the one with
    /// that key), without the caller fetching it first. Returns the
    /// deleted object, or `None` if `q` finds none.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<(u32, &str), u32> =
    ///     Index::unique("id", |o: &(u32, &str), k| k.push(&o.0));
    /// let t = Table::new("t", &by_id)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// t.insert(&mut w, (1, "one"))?;
    /// assert_eq!(t.delete_key(&mut w, by_id.query(&1))?.unwrap().1, "one");
    /// assert!(t.delete_key(&mut w, by_id.query(&1))?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TxnError::TableNotLocked`](crate::TxnError::TableNotLocked) if
    /// the transaction does not hold the table; as [`Table::get`] for a
    /// query of another table's index.
    pub fn delete_key(&self, txn: &mut WriteTxn, q: Query<T>) -> Result<Option<Arc<T>>> {
        match self.get(&*txn, q)? {
            Some((obj, _)) => self.delete(txn, &obj),
            None => Ok(None),
        }
    }

    /// Deletes the object with `obj`'s primary key only if its revision is
    /// `revision`. Returns the deleted object, or `None` if there was no
    /// object with that key (nothing to delete is not an error, as in the
    /// reference's `CompareAndDelete`).
    ///
    /// # Errors
    ///
    /// [`WriteError::RevisionNotEqual`](crate::WriteError::RevisionNotEqual) if the object exists with another
    /// revision (nothing is deleted); [`TxnError::TableNotLocked`](crate::TxnError::TableNotLocked);
    /// [`WriteError::PrimaryKeyCount`](crate::WriteError::PrimaryKeyCount).
    pub fn compare_and_delete(
        &self,
        txn: &mut WriteTxn,
        revision: Revision,
        obj: &T,
    ) -> Result<Option<Arc<T>>> {
        let tt = txn.table_txn_mut(&self.inner)?;
        Ok(tt.delete(obj, Guard::Revision(revision))?.map(|o| o.data))
    }

    /// Deletes every object; returns how many.
    pub fn delete_all(&self, txn: &mut WriteTxn) -> Result<usize, TxnError> {
        Ok(txn.table_txn_mut(&self.inner)?.delete_all())
    }

    // ---- reads --------------------------------------------------------

    #[inline]
    pub(crate) fn view<'t, X: ReadTxnLike>(&self, txn: &'t X) -> Result<View<'t, T>, TxnError> {
        txn.view(&self.inner)
    }

    /// The first object matching `q`.
    pub fn get(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Found<T>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index_name())?;
        let Some(key) = view.exact_key(pos, q.key()) else {
            return Ok(None);
        };
        Ok(view.first(pos, &key).map(|o| (o.data, o.revision)))
    }

    /// The first object matching `q`, and a watch that closes when the
    /// result may have changed.
    pub fn get_watch(
        &self,
        txn: &impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<(Found<T>, Watch), TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index_name())?;
        if pos.unique() && !pos.lpm() && view.is_snapshot() {
            // One search finds both.
            let (o, w) = view.watch_tree(pos).get_watch(q.key());
            return Ok((o.map(|o| (o.data.clone(), o.revision)), w));
        }
        let (key, watch) = view.exact_key_watch(pos, q.key());
        let found = key
            .and_then(|key| view.first(pos, &key))
            .map(|o| (o.data, o.revision));
        Ok((found, watch))
    }

    /// All objects matching `q` exactly.
    pub fn list(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError> {
        Ok(self.list_watch(txn, q)?.0)
    }

    /// All objects matching `q` exactly, and a watch that closes when the
    /// result may have changed.
    pub fn list_watch(
        &self,
        txn: &impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<(Objects<T>, Watch), TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index_name())?;
        let (key, watch) = view.exact_key_watch(pos, q.key());
        let Some(key) = key else {
            return Ok((Objects::one(None), watch));
        };
        let objects = if pos.unique() {
            Objects::one(view.first(pos, &key))
        } else {
            let key = exact_search_key(false, &key);
            Objects::iter(view.tree(pos).prefix_owned(&key).0)
        };
        Ok((objects, watch))
    }

    /// Objects whose key in `q`'s index starts with `q`'s key, in key
    /// order, with a watch. On a non-unique index an object appears once
    /// per matching key.
    pub fn prefix(
        &self,
        txn: &impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<(Objects<T>, Watch), TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index_name())?;
        let key = range_search_key(pos.unique(), q.into_key());
        let (it, watch) = view.tree(pos).prefix_owned(&key);
        // A write transaction's own tree gives watches that would never
        // close if it aborts: take them from its base snapshot (one more
        // search); a snapshot's own search already gave the right one.
        let watch = if view.is_snapshot() {
            watch
        } else {
            view.watch_tree(pos).prefix(&key).1
        };
        Ok((dedup_lpm(pos, Objects::iter(it)), watch))
    }

    /// Objects whose key in `q`'s index is greater than or equal to `q`'s
    /// key, in key order, with the index's root watch.
    pub fn lower_bound(
        &self,
        txn: &impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<(Objects<T>, Watch), TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner.index_pos(q.index_name())?;
        let key = range_search_key(pos.unique(), q.into_key());
        Ok((
            dedup_lpm(pos, Objects::iter(view.tree(pos).lower_bound_owned(&key))),
            view.watch_tree(pos).root_watch(),
        ))
    }

    /// Every object in primary key order.
    pub fn all(&self, txn: &impl ReadTxnLike) -> Result<Objects<T>, TxnError> {
        Ok(self.all_watch(txn)?.0)
    }

    /// Every object in primary key order, and a watch that closes on any
    /// change of the table.
    pub fn all_watch(&self, txn: &impl ReadTxnLike) -> Result<(Objects<T>, Watch), TxnError> {
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
    ) -> Result<(Objects<T>, Watch), TxnError> {
        let view = self.view(txn)?;
        let tree: Tree<Object<T>> = view.revision_tree();
        Ok((
            Objects::iter(tree.lower_bound_owned(&revision.to_be_bytes())),
            view.table_watch(),
        ))
    }

    /// A watch that closes on any insert or delete in the table.
    pub fn watch(&self, txn: &impl ReadTxnLike) -> Result<Watch, TxnError> {
        Ok(self.view(txn)?.table_watch())
    }

    /// The table's revision: that of its last insert or delete.
    pub fn revision(&self, txn: &impl ReadTxnLike) -> Result<Revision, TxnError> {
        Ok(self.view(txn)?.last_revision())
    }

    /// The revision of the table's last delete (0 if it never had one).
    /// A reader that saw the table at revision `r` has missed no delete
    /// when this is at or below `r`.
    ///
    /// # Errors
    ///
    /// [`TxnError`] if the table is not registered with `txn`'s Db.
    pub fn last_delete_revision(&self, txn: &impl ReadTxnLike) -> Result<Revision, TxnError> {
        Ok(self.view(txn)?.last_delete())
    }

    /// Number of objects.
    pub fn num_objects(&self, txn: &impl ReadTxnLike) -> Result<usize, TxnError> {
        Ok(self.view(txn)?.num_objects())
    }

    /// Number of deleted objects kept for change iterators that have not
    /// seen them yet.
    pub fn graveyard_len(&self, txn: &impl ReadTxnLike) -> Result<usize, TxnError> {
        Ok(self.view(txn)?.graveyard_len())
    }
}

/// Range results of an LPM index come back once per object (the
/// reference's behaviour): an object may hold several nested prefixes.
#[inline]
pub(crate) fn dedup_lpm<T>(pos: IndexPos, objects: Objects<T>) -> Objects<T> {
    if pos.lpm() { objects.dedup() } else { objects }
}
