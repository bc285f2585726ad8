//! A read-only handle on a table (the reference's `Table` beside
//! `RWTable`): give a component read access by type, and it cannot write.

use std::net::IpAddr;

use ipnet::IpNet;
use part::Watch;

use crate::Revision;
use crate::changes::ChangeIterator;
use crate::db::Db;
use crate::error::TxnError;
use crate::index::{Index, Query};
use crate::objects::{Found, Objects, Refs};
use crate::observe::Observer;
use crate::table::Table;
use crate::txn::WriteTxn;
use crate::view::ReadTxnLike;

/// The reads of a [`Table`], and nothing else: every query, watch,
/// change iterator and observer, no insert or delete. Made with
/// [`Table::read_only`]; cheap to clone.
///
/// ```
/// use statedb::{Db, Index, ReadTable, Table};
/// let by_id: Index<(u32, &str), u32> = Index::unique("id", |o: &(u32, &str), k| k.push(&o.0));
/// let t = Table::new("t", &by_id)?;
/// let db = Db::new();
/// db.register_table(&t)?;
/// let mut w = db.write_txn(&[&t])?;
/// t.insert(&mut w, (1, "one"))?;
/// w.commit();
///
/// fn report(routes: &ReadTable<(u32, &'static str)>, db: &Db) -> usize {
///     routes.num_objects(&db.read_txn()).unwrap_or(0)
/// }
/// assert_eq!(report(&t.read_only(), &db), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It has no writes:
///
/// ```compile_fail
/// use statedb::{Db, Index, Table};
/// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
/// let t = Table::new("t", &by_id).unwrap();
/// let db = Db::new();
/// db.register_table(&t).unwrap();
/// let mut w = db.write_txn(&[&t]).unwrap();
/// t.read_only().insert(&mut w, 1);
/// ```
pub struct ReadTable<T> {
    table: Table<T>,
}

impl<T> Clone for ReadTable<T> {
    fn clone(&self) -> Self {
        ReadTable {
            table: self.table.clone(),
        }
    }
}

impl<T> std::fmt::Debug for ReadTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTable")
            .field("name", &self.table.name())
            .finish()
    }
}

impl<T: Send + Sync + 'static> From<Table<T>> for ReadTable<T> {
    fn from(table: Table<T>) -> Self {
        ReadTable { table }
    }
}

impl<T: Send + Sync + 'static> Table<T> {
    /// A handle that can only read this table ([`ReadTable`]).
    pub fn read_only(&self) -> ReadTable<T> {
        ReadTable {
            table: self.clone(),
        }
    }
}

/// Forwards read methods to the table, each documented by a link to it.
macro_rules! reads {
    ($( fn $name:ident $(<$lt:lifetime>)? (&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        $(
            #[doc = concat!("See [`Table::", stringify!($name), "`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`Table::", stringify!($name), "`].")]
            pub fn $name $(<$lt>)? (&self $(, $arg: $ty)*) -> $ret {
                self.table.$name($($arg),*)
            }
        )*
    };
}

impl<T: Send + Sync + 'static> ReadTable<T> {
    /// The table name.
    pub fn name(&self) -> &str {
        self.table.name()
    }

    /// The names of the table's indexes, primary first.
    pub fn index_names(&self) -> Vec<&'static str> {
        self.table.index_names()
    }

    /// The primary key as text (see [`Table::primary_key_text`]).
    pub fn primary_key_text(&self, key: &[u8]) -> String {
        self.table.primary_key_text(key)
    }

    reads! {
        fn get(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Found<T>, TxnError>;
        fn get_watch(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Found<T>, Watch), TxnError>;
        fn list(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError>;
        fn list_watch(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Objects<T>, Watch), TxnError>;
        fn prefix(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Objects<T>, Watch), TxnError>;
        fn lower_bound(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<(Objects<T>, Watch), TxnError>;
        fn all(&self, txn: &impl ReadTxnLike) -> Result<Objects<T>, TxnError>;
        fn all_watch(&self, txn: &impl ReadTxnLike) -> Result<(Objects<T>, Watch), TxnError>;
        fn lower_bound_by_revision(&self, txn: &impl ReadTxnLike, revision: Revision) -> Result<(Objects<T>, Watch), TxnError>;
        fn watch(&self, txn: &impl ReadTxnLike) -> Result<Watch, TxnError>;
        fn revision(&self, txn: &impl ReadTxnLike) -> Result<Revision, TxnError>;
        fn last_delete_revision(&self, txn: &impl ReadTxnLike) -> Result<Revision, TxnError>;
        fn num_objects(&self, txn: &impl ReadTxnLike) -> Result<usize, TxnError>;
        fn graveyard_len(&self, txn: &impl ReadTxnLike) -> Result<usize, TxnError>;
        fn list_rev(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError>;
        fn prefix_rev(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError>;
        fn lower_bound_rev(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError>;
        fn all_rev(&self, txn: &impl ReadTxnLike) -> Result<Objects<T>, TxnError>;
        fn last(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Found<T>, TxnError>;
        fn count(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<usize, TxnError>;
        fn longest_prefix_match(&self, txn: &impl ReadTxnLike, index: &Index<T, IpNet>, addr: IpAddr) -> Result<Objects<T>, TxnError>;
        fn prefixes_within(&self, txn: &impl ReadTxnLike, index: &Index<T, IpNet>, net: IpNet) -> Result<Objects<T>, TxnError>;
        fn get_ref<'t>(&self, txn: &'t impl ReadTxnLike, q: Query<T>) -> Result<Option<(&'t T, Revision)>, TxnError>;
        fn list_ref<'t>(&self, txn: &'t impl ReadTxnLike, q: Query<T>) -> Result<Refs<'t, T>, TxnError>;
        fn prefix_ref<'t>(&self, txn: &'t impl ReadTxnLike, q: Query<T>) -> Result<Refs<'t, T>, TxnError>;
        fn lower_bound_ref<'t>(&self, txn: &'t impl ReadTxnLike, q: Query<T>) -> Result<Refs<'t, T>, TxnError>;
        fn all_ref<'t>(&self, txn: &'t impl ReadTxnLike) -> Result<Refs<'t, T>, TxnError>;
        fn initialized(&self, txn: &impl ReadTxnLike) -> Result<(bool, Watch), TxnError>;
        fn pending_initializers(&self, txn: &impl ReadTxnLike) -> Result<Vec<String>, TxnError>;
        fn changes(&self, txn: &mut WriteTxn) -> Result<ChangeIterator<T>, TxnError>;
        fn observe(&self, db: &Db) -> Result<Observer<T>, TxnError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<X: Send + Sync>() {}

    #[test]
    fn reads_see_what_the_table_holds() {
        assert_send_sync::<ReadTable<u32>>();
        let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
        let t = Table::new("t", &by_id).unwrap();
        let db = Db::new();
        db.register_table(&t).unwrap();
        let r = t.read_only();
        let mut w = db.write_txn(&[&t]).unwrap();
        let mut changes = r.changes(&mut w).unwrap();
        t.insert(&mut w, 7).unwrap();
        w.commit();
        let txn = db.read_txn();
        assert_eq!(r.name(), "t");
        assert_eq!(*r.get(&txn, by_id.query(&7)).unwrap().unwrap().0, 7);
        assert_eq!(r.num_objects(&txn).unwrap(), 1);
        let (mut iter, _) = changes.next(&txn).unwrap();
        assert_eq!(*iter.next().unwrap().object, 7);
        assert!(format!("{r:?}").contains("\"t\""));
    }
}
