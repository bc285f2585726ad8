//! What queries read from: a table as one transaction sees it.

use part::{Iter, Read, Tree, Watch};

use crate::Revision;
use crate::error::{Result, TxnError};
use crate::index::{IndexPos, first_exact};
use crate::object::Object;
use crate::state::{TableRead, TableState, TableTxn};
use crate::table_inner::TableInner;

/// What queries read from: a [`crate::ReadTxn`] or a [`crate::WriteTxn`]
/// (which sees its own writes). Sealed.
pub trait ReadTxnLike: crate::sealed::Sealed {
    #[doc(hidden)]
    fn view<'t, T: Send + Sync + 'static>(
        &'t self,
        table: &TableInner<T>,
    ) -> Result<View<'t, T>, TxnError>;
    /// The committed state the transaction started from: for a
    /// [`crate::WriteTxn`], without its own uncommitted writes.
    #[doc(hidden)]
    fn committed_view<'t, T: Send + Sync + 'static>(
        &'t self,
        table: &TableInner<T>,
    ) -> Result<View<'t, T>, TxnError>;
}

/// A table as seen by one transaction (implementation detail).
#[doc(hidden)]
pub struct View<'t, T>(ViewInner<'t, T>);

enum ViewInner<'t, T> {
    Snapshot(&'t TableState<T>),
    /// A write transaction's own state, and the snapshot it started from:
    /// watches come from that snapshot, whose nodes stay in the Db if the
    /// transaction aborts (its own nodes would be dropped and never close).
    Txn(&'t TableTxn<T>, &'t TableState<T>),
}

/// Evaluates `$body` with `$s` bound to whichever state the view reads:
/// both implement [`TableRead`], so each read is written once.
macro_rules! read {
    ($view:expr, |$s:ident| $body:expr) => {
        match &$view.0 {
            ViewInner::Snapshot($s) => $body,
            ViewInner::Txn($s, _) => $body,
        }
    };
}

impl<'t, T: Send + Sync + 'static> View<'t, T> {
    pub(crate) fn snapshot(state: &'t TableState<T>) -> Self {
        View(ViewInner::Snapshot(state))
    }

    pub(crate) fn txn(txn: &'t TableTxn<T>, base: &'t TableState<T>) -> Self {
        View(ViewInner::Txn(txn, base))
    }

    /// The snapshot watches come from (see [`ViewInner::Txn`]).
    fn base(&self) -> &'t TableState<T> {
        match self.0 {
            ViewInner::Snapshot(s) | ViewInner::Txn(_, s) => s,
        }
    }

    /// True for a read snapshot (not a write transaction's own state).
    pub(crate) fn is_snapshot(&self) -> bool {
        matches!(self.0, ViewInner::Snapshot(_))
    }

    /// An index's tree as of now.
    pub(crate) fn tree(&self, pos: IndexPos) -> Tree<Object<T>> {
        read!(self, |s| s.index(pos).snapshot())
    }

    /// First object matching `key` exactly, without taking a snapshot.
    #[inline]
    pub(crate) fn first(&self, pos: IndexPos, key: &[u8]) -> Option<Object<T>> {
        read!(self, |s| first_exact(s.index(pos), pos.unique(), key)
            .cloned())
    }

    /// First object matching `key` exactly, borrowed for the life of the
    /// transaction.
    #[inline]
    pub(crate) fn first_ref(&self, pos: IndexPos, key: &[u8]) -> Option<&'t Object<T>> {
        read!(self, |s| first_exact(s.index(pos), pos.unique(), key))
    }

    /// Objects of `pos` from `start` on (`prefix`: only keys starting
    /// with it), borrowed for the life of the transaction.
    #[inline]
    pub(crate) fn iter_ref(&self, pos: IndexPos, key: &[u8], prefix: bool) -> Iter<'t, Object<T>> {
        read!(self, |s| {
            let tree = s.index(pos);
            if prefix {
                tree.prefix_iter(key)
            } else {
                tree.lower_bound(key)
            }
        })
    }

    /// The tree to take `pos`'s watches from.
    pub(crate) fn watch_tree(&self, pos: IndexPos) -> &'t Tree<Object<T>> {
        self.base().index(pos)
    }

    /// The table watch: closes on any insert or delete.
    pub(crate) fn table_watch(&self) -> Watch {
        self.base().table_watch()
    }

    pub(crate) fn revision_tree(&self) -> Tree<Object<T>> {
        read!(self, |s| s.by_revision().snapshot())
    }

    pub(crate) fn graveyard_revision_tree(&self) -> Tree<Object<T>> {
        read!(self, |s| s.graveyard_by_revision())
    }

    pub(crate) fn last_revision(&self) -> Revision {
        read!(self, |s| s.last_revision())
    }

    pub(crate) fn last_delete(&self) -> Revision {
        read!(self, |s| s.last_delete())
    }

    pub(crate) fn num_objects(&self) -> usize {
        read!(self, |s| s.index(IndexPos::Primary).len())
    }

    pub(crate) fn graveyard_len(&self) -> usize {
        read!(self, |s| s.graveyard_len())
    }

    pub(crate) fn pending_initializers(&self) -> &[(u64, String)] {
        read!(self, |s| s.pending_initializers())
    }

    pub(crate) fn init_watch(&self) -> Option<part::Watch> {
        read!(self, |s| s.init_watch())
    }
}
