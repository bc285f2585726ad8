//! What queries read from: a table as one transaction sees it.

use part::{Iter, Read, Tree, Watch};

use crate::Revision;
use crate::error::{Result, TxnError};
use crate::index::{IndexPos, exact_watch, first_exact};
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

/// The key an exact query searches ([`View::exact_key`]): the query's
/// own, or the match an LPM lookup resolved to.
pub(crate) enum ExactKey<'k> {
    Borrowed(&'k [u8]),
    Owned(part::Key),
}

impl std::ops::Deref for ExactKey<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            ExactKey::Borrowed(k) => k,
            ExactKey::Owned(k) => k,
        }
    }
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

    /// The length of the longest stored prefix of the LPM path `path` in
    /// `pos`'s tree as of now (see [`crate::lpm`]).
    #[inline]
    pub(crate) fn longest_prefix(&self, pos: IndexPos, path: &[u8]) -> Option<usize> {
        read!(self, |s| s.index(pos).longest_prefix(path))
    }

    /// The exact key a query's key stands for: itself, or on an LPM index
    /// the stored key of its longest match (`None`: nothing matches).
    #[inline]
    pub(crate) fn exact_key<'k>(&self, pos: IndexPos, key: &'k [u8]) -> Option<ExactKey<'k>> {
        if !pos.lpm() {
            return Some(ExactKey::Borrowed(key));
        }
        let n = self.longest_prefix(pos, key)?;
        Some(ExactKey::Owned(crate::lpm::match_key(key, n)))
    }

    /// [`View::exact_key`] and the query's watch: on an LPM index one
    /// that closes when the longest match may change, found in the same
    /// descent on a snapshot.
    pub(crate) fn exact_key_watch<'k>(
        &self,
        pos: IndexPos,
        key: &'k [u8],
    ) -> (Option<ExactKey<'k>>, Watch) {
        let tree = self.watch_tree(pos);
        if !pos.lpm() {
            return (
                Some(ExactKey::Borrowed(key)),
                exact_watch(tree, pos.unique(), key),
            );
        }
        let (n, watch) = tree.longest_prefix_watch(key);
        // A write transaction answers from its own tree; its watch comes
        // from the snapshot it started from (see `ViewInner::Txn`).
        let n = if self.is_snapshot() {
            n
        } else {
            self.longest_prefix(pos, key)
        };
        let found = n.map(|n| ExactKey::Owned(crate::lpm::match_key(key, n)));
        (found, watch)
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
