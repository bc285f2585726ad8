//! Tables with their object type erased: what the Db and the transactions
//! need of any table, and the handle users name tables with.

use std::any::Any;
use std::sync::{Arc, Weak};

use crate::Revision;
use crate::error::{Result, TxnError};
use crate::info::IndexInfo;
use crate::lock::TableLock;
use crate::state::{AnyTableState, AnyTableTxn, TableState, TableTxn};
use crate::table_inner::TableInner;

/// Type-erased table operations the Db and the transactions need.
pub(crate) trait ErasedTable: Send + Sync {
    fn name(&self) -> &str;
    fn registration(&self) -> Option<(u64, usize)>;
    /// See [`TableInner::register`].
    fn register(
        &self,
        db_id: u64,
        db: Weak<dyn Any + Send + Sync>,
        publish: &mut dyn FnMut() -> Result<usize, TxnError>,
    ) -> Result<(), TxnError>;
    fn lock(&self) -> &TableLock;
    fn new_state(&self) -> Arc<dyn AnyTableState>;
    /// A write transaction's copy of `state`, or `None` if `state` is not
    /// this table's (never: the root holds each table's own state type at
    /// its position).
    fn begin(self: Arc<Self>, state: &dyn AnyTableState) -> Option<Box<dyn AnyTableTxn>>;
    /// See [`crate::graveyard::Trackers::wants_collection`].
    fn wants_collection(&self, oldest: Option<Revision>) -> bool;
    /// Asks the holder of the table's lock to collect when it finishes.
    fn request_collection(&self);
    /// The indexes, primary first.
    fn indexes(&self) -> Vec<IndexInfo>;
    /// How many change iterators of the table are alive.
    fn change_iterators(&self) -> usize;
    /// The typed table behind, for [`crate::Db::table`]'s downcast.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Send + Sync + 'static> ErasedTable for TableInner<T> {
    fn name(&self) -> &str {
        TableInner::name(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn registration(&self) -> Option<(u64, usize)> {
        TableInner::registration(self)
    }
    fn register(
        &self,
        db_id: u64,
        db: Weak<dyn Any + Send + Sync>,
        publish: &mut dyn FnMut() -> Result<usize, TxnError>,
    ) -> Result<(), TxnError> {
        TableInner::register(self, db_id, db, publish)
    }
    fn lock(&self) -> &TableLock {
        TableInner::lock(self)
    }
    fn new_state(&self) -> Arc<dyn AnyTableState> {
        Arc::new(TableState::<T>::new(self.secondary().len()))
    }
    fn begin(self: Arc<Self>, state: &dyn AnyTableState) -> Option<Box<dyn AnyTableTxn>> {
        let state = (state as &dyn Any).downcast_ref::<TableState<T>>()?;
        Some(Box::new(TableTxn::new(self.clone(), state)))
    }
    fn wants_collection(&self, oldest: Option<Revision>) -> bool {
        self.trackers().wants_collection(oldest)
    }
    fn request_collection(&self) {
        self.trackers().request_collection();
    }
    fn change_iterators(&self) -> usize {
        self.trackers().count()
    }
    fn indexes(&self) -> Vec<IndexInfo> {
        let primary = IndexInfo {
            name: self.primary().name(),
            unique: true,
            primary: true,
            lpm: false,
        };
        std::iter::once(primary)
            .chain(self.secondary().iter().map(|i| IndexInfo {
                name: i.name(),
                unique: i.is_unique(),
                primary: false,
                lpm: i.is_lpm(),
            }))
            .collect()
    }
}

/// A handle to any table, for naming tables in [`crate::Db::write_txn`].
/// Implemented by [`crate::Table`]; sealed.
pub trait TableHandle: crate::sealed::Sealed + Send + Sync {
    /// The table name.
    fn table_name(&self) -> &str;
    #[doc(hidden)]
    fn erased(&self) -> ErasedRef;
}

/// Opaque type-erased table reference (implementation detail).
#[doc(hidden)]
#[derive(Clone)]
pub struct ErasedRef(pub(crate) Arc<dyn ErasedTable>);
