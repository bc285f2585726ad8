//! Observable changes: a table's upserts and deletes as a
//! `futures_core::Stream`, or as a blocking iterator.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use part::{Closed, Watch};

use crate::changes::{Change, ChangeIterator};
use crate::db::Db;
use crate::error::{Result, TxnError};
use crate::table::Table;
use crate::txn::WriteTxn;

/// The changes of a table as a stream: first every object in the table as
/// an upsert, then each later upsert and delete in revision order; made by
/// [`Table::observe`]. Changes are read when the stream is polled: an
/// object inserted and deleted between two reads shows up as a delete
/// only.
///
/// Backed by a [`ChangeIterator`]: a slow consumer never loses a delete
/// (deleted objects wait in the graveyard until it has read them), and
/// dropping the observer releases them; [`Observer::max_lag`] bounds how
/// many it may hold back. The stream ends only when reading fails
/// ([`Observer::error`] says why: the table is gone, or the observer was
/// lapped).
pub struct Observer<T: Send + Sync + 'static> {
    db: Db,
    iter: ChangeIterator<T>,
    buffer: VecDeque<Change<T>>,
    watch: Option<Closed>,
    error: Option<TxnError>,
}

impl<T: Send + Sync + 'static> std::fmt::Debug for Observer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Table<T> {
    /// Observes the table's changes: a [`Stream`](futures_core::Stream) of
    /// [`Change`]s (see [`Observer`]); [`Observer::blocking`] gives the
    /// same as a blocking iterator for threads.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    /// let t = Table::new("nums", &by_id)?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// t.insert(&mut w, 1)?;
    /// w.commit();
    /// let mut changes = t.observe(&db)?.blocking();
    /// // Existing objects first, as upserts.
    /// let first = changes.next().unwrap();
    /// assert_eq!((*first.object, first.deleted), (1, false));
    /// let mut w = db.write_txn(&[&t])?;
    /// t.delete(&mut w, &1)?;
    /// w.commit();
    /// let next = changes.next().unwrap();
    /// assert_eq!((*next.object, next.deleted), (1, true));
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The table is not registered with `db`; [`crate::TxnError::WouldDeadlock`]
    /// if this thread holds a write transaction on the table (registering
    /// takes the table's lock for a moment).
    pub fn observe(&self, db: &Db) -> Result<Observer<T>, TxnError> {
        let mut w = db.write_txn(&[self])?;
        let observer = self.observe_in(db, &mut w);
        w.abort();
        observer
    }

    /// [`Table::observe`] within a write transaction on the table, so the
    /// caller can read the table as it was when the observer started.
    pub(crate) fn observe_in(&self, db: &Db, w: &mut WriteTxn) -> Result<Observer<T>, TxnError> {
        Ok(Observer {
            db: db.clone(),
            iter: self.changes(w)?,
            buffer: VecDeque::new(),
            watch: None,
            error: None,
        })
    }
}

impl<T: Send + Sync + 'static> Observer<T> {
    /// Reads the unseen changes into the buffer; returns the watch for
    /// more. A failure is kept for [`Observer::error`].
    fn fill(&mut self) -> Result<Watch> {
        let txn = self.db.read_txn();
        let (changes, watch) = self.iter.next(&txn).inspect_err(|e| {
            self.error = Some(e.clone());
        })?;
        self.buffer.extend(changes);
        Ok(watch)
    }

    /// Bounds how many deleted objects the observer may hold back (see
    /// [`ChangeIterator::max_lag`]): past it, the stream ends after what
    /// it had buffered, and [`Observer::error`] is
    /// [`TxnError::ChangesLapped`].
    #[must_use]
    pub fn max_lag(mut self, deleted_objects: usize) -> Self {
        self.iter = self.iter.max_lag(deleted_objects);
        self
    }

    /// Why the stream ended, once it has.
    pub fn error(&self) -> Option<&TxnError> {
        self.error.as_ref()
    }

    /// The same changes as a blocking iterator (for threads): `next` waits
    /// until there is a change. It never returns `None` while the table is
    /// registered.
    pub fn blocking(self) -> BlockingObserver<T> {
        BlockingObserver { inner: self }
    }
}

impl<T: Send + Sync + 'static> futures_core::Stream for Observer<T> {
    type Item = Change<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change<T>>> {
        let this = self.get_mut();
        loop {
            if let Some(change) = this.buffer.pop_front() {
                return Poll::Ready(Some(change));
            }
            match &mut this.watch {
                Some(closed) => match Pin::new(closed).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => this.watch = None,
                },
                None => match this.fill() {
                    Ok(watch) => this.watch = Some(watch.closed()),
                    Err(_) => return Poll::Ready(None),
                },
            }
        }
    }
}

/// [`Observer`] as a blocking iterator; see [`Observer::blocking`].
#[derive(Debug)]
pub struct BlockingObserver<T: Send + Sync + 'static> {
    inner: Observer<T>,
}

impl<T: Send + Sync + 'static> BlockingObserver<T> {
    /// Why the iterator ended, once it has (see [`Observer::error`]).
    pub fn error(&self) -> Option<&TxnError> {
        self.inner.error()
    }
}

impl<T: Send + Sync + 'static> Iterator for BlockingObserver<T> {
    type Item = Change<T>;

    fn next(&mut self) -> Option<Change<T>> {
        loop {
            if let Some(change) = self.inner.buffer.pop_front() {
                return Some(change);
            }
            let watch = self.inner.fill().ok()?;
            if self.inner.buffer.is_empty() {
                watch.wait();
            }
        }
    }
}
