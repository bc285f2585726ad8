//! What the reconciler calls: the operations on the target.
//!
//! The traits use `async fn` (return-position `impl Future + Send`), so an
//! implementation needs no extra crate and the docs show plain
//! signatures. The reconciler stores them behind a boxed adapter
//! ([`DynOperations`]), one allocation per operation, as a boxed
//! `async_trait` future would be.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use statedb::{Objects, ReadTxn, Revision};

/// Error returned by operations.
pub type OpError = Box<dyn std::error::Error + Send + Sync>;

/// What a prune removed from the target, as the target reports it (names,
/// paths, keys…); the reconciler logs it and counts it. `Pruned::default()`
/// reports nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    removed: Vec<String>,
}

impl Pruned {
    /// A prune that removed these items.
    pub fn removed<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Pruned {
            removed: items.into_iter().map(Into::into).collect(),
        }
    }

    /// The items removed.
    pub fn items(&self) -> &[String] {
        &self.removed
    }
}

/// How objects are reconciled with the target.
///
/// Implement the methods as `async fn`. They run on the tokio runtime. On
/// shutdown the reconciler drops the future of an operation in progress:
/// that is the cancellation (write operations so that dropping them at an
/// `.await` leaves the target consistent, e.g. write a temp file then
/// rename). A blocking target should run its work in
/// `tokio::task::spawn_blocking` so it does not stall other tasks. A
/// panicking operation is caught: the object gets an error status and is
/// retried.
///
/// Each operation gets a [`ReadTxn`] of the snapshot being reconciled, so
/// it can look up other tables (say, realized state) without a syscall.
///
/// ```
/// use reconciler::{OpError, Operations, Pruned};
/// use statedb::{Objects, ReadTxn, Revision};
///
/// struct Printer;
///
/// impl Operations<String> for Printer {
///     async fn update(&self, _: &ReadTxn, rev: Revision, s: &mut String, _: Option<&mut bool>) -> Result<(), OpError> {
///         println!("update {s} at {rev}");
///         Ok(())
///     }
///     async fn delete(&self, _: &ReadTxn, _: Revision, s: &String) -> Result<(), OpError> {
///         println!("delete {s}");
///         Ok(())
///     }
///     async fn prune(&self, _: &ReadTxn, _: Objects<String>) -> Result<Pruned, OpError> {
///         Ok(Pruned::default())
///     }
/// }
/// ```
pub trait Operations<Obj>: Send + Sync + 'static {
    /// Updates the target to match `obj` (a clone the operation may
    /// change; the changed object is written back with its status). Must
    /// be idempotent.
    ///
    /// `revision` is the object's revision in the table (the version
    /// being reconciled), e.g. to skip work a target already did for it.
    ///
    /// `changed` is `Some` during full reconciliation: set it to true when
    /// the target differed from `obj` (it had drifted); such objects are
    /// counted as out of sync in the metrics.
    ///
    /// What is written back: on success, the object as this call left it
    /// with a fresh done status; on error, that object with an error
    /// status (and a retry). Both as a compare-and-swap on `revision`: if
    /// the object changed meanwhile, the result is dropped and the newer
    /// version is reconciled next. This holds in incremental and full
    /// rounds alike.
    fn update(
        &self,
        txn: &ReadTxn,
        revision: Revision,
        obj: &mut Obj,
        changed: Option<&mut bool>,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Deletes `obj` from the target. Deleting what is not there is not an
    /// error. Called for a soft delete ([`crate::Status::pending_delete`],
    /// `revision` is the object's) and for a row deleted from the table
    /// (its last version; `revision` is that of the delete).
    fn delete(
        &self,
        txn: &ReadTxn,
        revision: Revision,
        obj: &Obj,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Removes from the target whatever `objects` (every desired object)
    /// does not ask for, and reports what it removed. Run when the table
    /// is initialized, every prune interval and at the start of each full
    /// reconciliation; a failed prune is retried at the next of those.
    fn prune(
        &self,
        txn: &ReadTxn,
        objects: Objects<Obj>,
    ) -> impl Future<Output = Result<Pruned, OpError>> + Send;
}

/// A shared target is a target.
impl<Obj, T: Operations<Obj> + ?Sized> Operations<Obj> for Arc<T> {
    fn update(
        &self,
        txn: &ReadTxn,
        revision: Revision,
        obj: &mut Obj,
        changed: Option<&mut bool>,
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        (**self).update(txn, revision, obj, changed)
    }
    fn delete(
        &self,
        txn: &ReadTxn,
        revision: Revision,
        obj: &Obj,
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        (**self).delete(txn, revision, obj)
    }
    fn prune(
        &self,
        txn: &ReadTxn,
        objects: Objects<Obj>,
    ) -> impl Future<Output = Result<Pruned, OpError>> + Send {
        (**self).prune(txn, objects)
    }
}

/// One object of a batch with the operation's result for it.
#[derive(Debug)]
pub struct BatchEntry<Obj> {
    /// The object (a clone the operation may change).
    pub object: Obj,
    /// The revision of the object in the table.
    pub revision: Revision,
    /// Set by the operation: `Ok(())` (the default) or the error.
    pub result: Result<(), OpError>,
}

/// Batched operations, used instead of [`Operations::update`] and
/// [`Operations::delete`] in incremental rounds when given: deletes first,
/// then updates. Full reconciliation still uses [`Operations`].
pub trait BatchOperations<Obj>: Send + Sync + 'static {
    /// Updates every entry, setting each entry's `result`.
    fn update_batch(
        &self,
        txn: &ReadTxn,
        batch: &mut [BatchEntry<Obj>],
    ) -> impl Future<Output = ()> + Send;
    /// Deletes every entry, setting each entry's `result`.
    fn delete_batch(
        &self,
        txn: &ReadTxn,
        batch: &mut [BatchEntry<Obj>],
    ) -> impl Future<Output = ()> + Send;
}

impl<Obj, T: BatchOperations<Obj> + ?Sized> BatchOperations<Obj> for Arc<T> {
    fn update_batch(
        &self,
        txn: &ReadTxn,
        batch: &mut [BatchEntry<Obj>],
    ) -> impl Future<Output = ()> + Send {
        (**self).update_batch(txn, batch)
    }
    fn delete_batch(
        &self,
        txn: &ReadTxn,
        batch: &mut [BatchEntry<Obj>],
    ) -> impl Future<Output = ()> + Send {
        (**self).delete_batch(txn, batch)
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Operations`] made object-safe, for storing any implementation.
pub(crate) trait DynOperations<Obj>: Send + Sync {
    fn update<'a>(
        &'a self,
        txn: &'a ReadTxn,
        revision: Revision,
        obj: &'a mut Obj,
        changed: Option<&'a mut bool>,
    ) -> BoxFuture<'a, Result<(), OpError>>;
    fn delete<'a>(
        &'a self,
        txn: &'a ReadTxn,
        revision: Revision,
        obj: &'a Obj,
    ) -> BoxFuture<'a, Result<(), OpError>>;
    fn prune<'a>(
        &'a self,
        txn: &'a ReadTxn,
        objects: Objects<Obj>,
    ) -> BoxFuture<'a, Result<Pruned, OpError>>
    where
        Obj: 'a;
}

impl<Obj, T: Operations<Obj>> DynOperations<Obj> for T {
    fn update<'a>(
        &'a self,
        txn: &'a ReadTxn,
        revision: Revision,
        obj: &'a mut Obj,
        changed: Option<&'a mut bool>,
    ) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(Operations::update(self, txn, revision, obj, changed))
    }
    fn delete<'a>(
        &'a self,
        txn: &'a ReadTxn,
        revision: Revision,
        obj: &'a Obj,
    ) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(Operations::delete(self, txn, revision, obj))
    }
    fn prune<'a>(
        &'a self,
        txn: &'a ReadTxn,
        objects: Objects<Obj>,
    ) -> BoxFuture<'a, Result<Pruned, OpError>>
    where
        Obj: 'a,
    {
        Box::pin(Operations::prune(self, txn, objects))
    }
}

/// [`BatchOperations`] made object-safe.
pub(crate) trait DynBatchOperations<Obj>: Send + Sync {
    fn update_batch<'a>(
        &'a self,
        txn: &'a ReadTxn,
        batch: &'a mut [BatchEntry<Obj>],
    ) -> BoxFuture<'a, ()>;
    fn delete_batch<'a>(
        &'a self,
        txn: &'a ReadTxn,
        batch: &'a mut [BatchEntry<Obj>],
    ) -> BoxFuture<'a, ()>;
}

impl<Obj, T: BatchOperations<Obj>> DynBatchOperations<Obj> for T {
    fn update_batch<'a>(
        &'a self,
        txn: &'a ReadTxn,
        batch: &'a mut [BatchEntry<Obj>],
    ) -> BoxFuture<'a, ()> {
        Box::pin(BatchOperations::update_batch(self, txn, batch))
    }
    fn delete_batch<'a>(
        &'a self,
        txn: &'a ReadTxn,
        batch: &'a mut [BatchEntry<Obj>],
    ) -> BoxFuture<'a, ()> {
        Box::pin(BatchOperations::delete_batch(self, txn, batch))
    }
}
