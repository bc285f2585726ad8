//! Queries that lend objects: `(&T, revision)` borrowed from the
//! transaction, where the owning queries hand out an `Arc<T>` per object.
//! Reading a snapshot's object needs no reference count (the snapshot
//! keeps it alive), and counting is an atomic read-modify-write per
//! object, which stalls the CPU on every cache miss of a scan.

use crate::Revision;
use crate::error::TxnError;
use crate::index::{IndexPos, Query, exact_search_key, range_search_key};
use crate::objects::Refs;
use crate::table::Table;
use crate::view::ReadTxnLike;

impl<T: Send + Sync + 'static> Table<T> {
    /// The first object matching `q`, borrowed from `txn`: like
    /// [`Table::get`] without counting a reference.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<(u32, &'static str), u32> = Index::unique("id", |o: &(u32, &str), k| k.push(&o.0));
    /// let t = Table::new("names", &by_id)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// t.insert(&mut w, (1, "one"))?;
    /// let txn = w.commit();
    /// let (obj, _revision) = t.get_ref(&txn, by_id.query(&1))?.unwrap();
    /// assert_eq!(obj.1, "one");
    /// let names: Vec<&str> = t.all_ref(&txn)?.map(|(o, _)| o.1).collect();
    /// assert_eq!(names, ["one"]);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// The object cannot outlive the transaction it was read from:
    ///
    /// ```compile_fail
    /// # use statedb::{Db, Index, Table};
    /// # let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// # let t = Table::new("nums", &by_id).unwrap();
    /// # let db = Db::new();
    /// # db.register_table(&t).unwrap();
    /// let kept: &u32 = {
    ///     let txn = db.read_txn();
    ///     t.get_ref(&txn, by_id.query(&1)).unwrap().unwrap().0
    /// };
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Table::get`].
    pub fn get_ref<'t>(
        &self,
        txn: &'t impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<Option<(&'t T, Revision)>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner().index_pos(q.index_name())?;
        let Some(key) = view.exact_key(pos, q.key()) else {
            return Ok(None);
        };
        Ok(view.first_ref(pos, &key).map(|o| (&*o.data, o.revision)))
    }

    /// Every object matching `q` exactly, borrowed from `txn` (see
    /// [`Table::list`]).
    ///
    /// # Errors
    ///
    /// As [`Table::get`].
    pub fn list_ref<'t>(
        &self,
        txn: &'t impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<Refs<'t, T>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner().index_pos(q.index_name())?;
        let Some(key) = view.exact_key(pos, q.key()) else {
            return Ok(Refs::one(None));
        };
        Ok(if pos.unique() {
            Refs::one(view.first_ref(pos, &key))
        } else {
            Refs::iter(view.iter_ref(pos, &exact_search_key(false, &key), true))
        })
    }

    /// Objects whose key starts with `q`'s key, in key order, borrowed
    /// from `txn` (see [`Table::prefix`]).
    ///
    /// # Errors
    ///
    /// As [`Table::get`].
    pub fn prefix_ref<'t>(
        &self,
        txn: &'t impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<Refs<'t, T>, TxnError> {
        self.range_ref(txn, q, true)
    }

    /// Objects whose key is at or above `q`'s key, in key order, borrowed
    /// from `txn` (see [`Table::lower_bound`]).
    ///
    /// # Errors
    ///
    /// As [`Table::get`].
    pub fn lower_bound_ref<'t>(
        &self,
        txn: &'t impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<Refs<'t, T>, TxnError> {
        self.range_ref(txn, q, false)
    }

    /// Every object in primary key order, borrowed from `txn` (see
    /// [`Table::all`]): a full scan without a reference count per object.
    ///
    /// # Errors
    ///
    /// As [`Table::get`].
    pub fn all_ref<'t>(&self, txn: &'t impl ReadTxnLike) -> Result<Refs<'t, T>, TxnError> {
        let view = self.view(txn)?;
        Ok(Refs::iter(view.iter_ref(IndexPos::Primary, &[], true)))
    }

    fn range_ref<'t>(
        &self,
        txn: &'t impl ReadTxnLike,
        q: Query<T>,
        prefix: bool,
    ) -> Result<Refs<'t, T>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner().index_pos(q.index_name())?;
        let key = range_search_key(pos.unique(), q.into_key());
        let refs = Refs::iter(view.iter_ref(pos, &key, prefix));
        Ok(if pos.lpm() { refs.dedup() } else { refs })
    }
}
