//! Configuration of a reconciler and the operations it calls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use statedb::{Objects, ReadTxn, Revision, Table};

use crate::limiter::RateLimiter;
use crate::metrics::Metrics;
use crate::status::Status;

/// Error returned by operations.
pub type OpError = Box<dyn std::error::Error + Send + Sync>;

/// How objects are reconciled with the target.
///
/// Operations are async and run on the tokio runtime. On shutdown the
/// reconciler drops the future of an operation in progress: that is the
/// cancellation (write operations so that dropping them at an `.await`
/// leaves the target consistent, e.g. write a temp file then rename). A
/// blocking target should run its work in `tokio::task::spawn_blocking`
/// so it does not stall other tasks. A panicking operation is caught: the
/// object gets an error status and is retried.
///
/// Each operation gets a [`ReadTxn`] of the snapshot being reconciled, so
/// it can look up other tables (say, realized state) without a syscall.
#[async_trait::async_trait]
pub trait Operations<Obj>: Send + Sync {
    /// Updates the target to match `obj` (a clone made with
    /// [`Config::clone_object`]; the operation may change it, and the
    /// changed object is written back with its status). Must be
    /// idempotent.
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
    async fn update(
        &self,
        txn: &ReadTxn,
        revision: Revision,
        obj: &mut Obj,
        changed: Option<&mut bool>,
    ) -> Result<(), OpError>;

    /// Deletes `obj` from the target. Deleting what is not there is not an
    /// error. Called for a soft delete ([`crate::Status::pending_delete`],
    /// `revision` is the object's) and for a row deleted from the table
    /// (its last version; `revision` is that of the delete).
    async fn delete(&self, txn: &ReadTxn, revision: Revision, obj: &Obj) -> Result<(), OpError>;

    /// Removes from the target whatever `objects` (every desired object)
    /// does not ask for. Run at the start of each full reconciliation; a
    /// failed prune is not retried before the next full round.
    async fn prune(&self, txn: &ReadTxn, objects: Objects<Obj>) -> Result<(), OpError>;
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
#[async_trait::async_trait]
pub trait BatchOperations<Obj>: Send + Sync {
    /// Updates every entry, setting each entry's `result`.
    async fn update_batch(&self, txn: &ReadTxn, batch: &mut [BatchEntry<Obj>]);
    /// Deletes every entry, setting each entry's `result`.
    async fn delete_batch(&self, txn: &ReadTxn, batch: &mut [BatchEntry<Obj>]);
}

/// Configuration of one reconciler.
pub struct Config<Obj> {
    /// The table to reconcile.
    pub table: Table<Obj>,
    /// Metrics; `None` uses [`crate::Params::default_metrics`] (and if that
    /// is `None` too, nothing is recorded).
    pub metrics: Option<Arc<dyn Metrics>>,
    /// Time between full reconciliations (prune, then update of every
    /// object, to undo outside changes). Zero disables the periodic ones.
    /// Whatever it is, one prune runs as soon as the table is initialized
    /// (leftovers from before a restart go at once), and
    /// [`crate::Reconciler::trigger_full_reconciliation`] runs a full
    /// round on demand. Default: zero.
    pub full_reconciliation_interval: Duration,
    /// First retry delay of a failed update or delete; doubles on each
    /// further failure.
    pub retry_backoff_min_duration: Duration,
    /// Longest retry delay.
    pub retry_backoff_max_duration: Duration,
    /// Most objects reconciled in one incremental round before statuses
    /// are committed and a new snapshot is taken. 100–1000 suits most.
    pub incremental_round_size: usize,
    /// On shutdown, how long an incremental round in flight may go on so
    /// that its operations finish and their results are committed; what
    /// is still running then is cancelled (dropped). Default 1 s; zero
    /// cancels at once.
    pub shutdown_drain_duration: Duration,
    /// Most operations in flight at once in an incremental round (never
    /// two on one object). 1 (the default) runs them one after another;
    /// more pays when operations wait on I/O. Batch operations are not
    /// affected.
    pub concurrency: usize,
    /// Objects whose status is older than this are updated again
    /// ("refreshed"), at most [`Config::refresh_per_round`] at a time:
    /// they are marked [`crate::StatusKind::Refreshing`] and go through
    /// incremental rounds like new versions, so the whole table is never
    /// updated in one blocking pass. Zero (the default) disables refresh.
    /// Apart from pruning: see [`Config::full_reconciliation_interval`].
    pub refresh_interval: Duration,
    /// Most objects marked for refresh at once. Default 100.
    pub refresh_per_round: usize,
    /// The object's status.
    pub get_object_status: fn(&Obj) -> &Status,
    /// Sets the status of a clone of the object.
    pub set_object_status: fn(&mut Obj, Status),
    /// A copy of the object, handed to operations and written back.
    pub clone_object: fn(&Obj) -> Obj,
    /// When set, rounds wait for it: trades latency for larger batches.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// The operations.
    pub operations: Arc<dyn Operations<Obj>>,
    /// Batched operations for incremental rounds, if any.
    pub batch_operations: Option<Arc<dyn BatchOperations<Obj>>>,
}

impl<Obj> Clone for Config<Obj> {
    fn clone(&self) -> Self {
        Config {
            table: self.table.clone(),
            metrics: self.metrics.clone(),
            full_reconciliation_interval: self.full_reconciliation_interval,
            retry_backoff_min_duration: self.retry_backoff_min_duration,
            retry_backoff_max_duration: self.retry_backoff_max_duration,
            incremental_round_size: self.incremental_round_size,
            shutdown_drain_duration: self.shutdown_drain_duration,
            concurrency: self.concurrency,
            refresh_interval: self.refresh_interval,
            refresh_per_round: self.refresh_per_round,
            get_object_status: self.get_object_status,
            set_object_status: self.set_object_status,
            clone_object: self.clone_object,
            rate_limiter: self.rate_limiter.clone(),
            operations: self.operations.clone(),
            batch_operations: self.batch_operations.clone(),
        }
    }
}

impl<Obj> fmt::Debug for Config<Obj> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table.name())
            .field(
                "full_reconciliation_interval",
                &self.full_reconciliation_interval,
            )
            .field(
                "retry_backoff_min_duration",
                &self.retry_backoff_min_duration,
            )
            .field(
                "retry_backoff_max_duration",
                &self.retry_backoff_max_duration,
            )
            .field("incremental_round_size", &self.incremental_round_size)
            .field("shutdown_drain_duration", &self.shutdown_drain_duration)
            .field("concurrency", &self.concurrency)
            .field("refresh_interval", &self.refresh_interval)
            .field("refresh_per_round", &self.refresh_per_round)
            .field("rate_limiter", &self.rate_limiter.is_some())
            .field("batch_operations", &self.batch_operations.is_some())
            .finish()
    }
}

/// An invalid configuration; each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `incremental_round_size` is zero.
    #[error("incremental_round_size must be greater than zero")]
    ZeroRoundSize,
    /// `refresh_per_round` is zero while refresh is on.
    #[error("refresh_per_round must be at least 1 when refresh_interval is set")]
    ZeroRefreshPerRound,
    /// `concurrency` is zero.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// `retry_backoff_min_duration` is zero.
    #[error("retry_backoff_min_duration must be greater than zero")]
    ZeroRetryBackoffMin,
    /// `retry_backoff_max_duration` is below the minimum.
    #[error(
        "retry_backoff_max_duration ({max:?}) must not be less than retry_backoff_min_duration ({min:?})"
    )]
    RetryBackoffMaxBelowMin {
        /// The minimum.
        min: Duration,
        /// The maximum.
        max: Duration,
    },
    /// `module_id` of the params is empty.
    #[error("params.module_id must not be empty")]
    EmptyModuleId,
    /// The table is not registered with the params' Db.
    #[error("table {table:?} is not usable with params.db: {reason}")]
    Table {
        /// The table name.
        table: String,
        /// Why.
        reason: String,
    },
}

impl<Obj: Send + Sync + 'static> Config<Obj> {
    /// A configuration with the usual defaults: no full reconciliation,
    /// retries from 100 ms to 1 min, rounds of 1000, no rate limiter.
    pub fn new(
        table: Table<Obj>,
        get_object_status: fn(&Obj) -> &Status,
        set_object_status: fn(&mut Obj, Status),
        clone_object: fn(&Obj) -> Obj,
        operations: Arc<dyn Operations<Obj>>,
    ) -> Self {
        Config {
            table,
            metrics: None,
            full_reconciliation_interval: Duration::ZERO,
            retry_backoff_min_duration: Duration::from_millis(100),
            retry_backoff_max_duration: Duration::from_secs(60),
            incremental_round_size: 1000,
            shutdown_drain_duration: Duration::from_secs(1),
            concurrency: 1,
            refresh_interval: Duration::ZERO,
            refresh_per_round: 100,
            get_object_status,
            set_object_status,
            clone_object,
            rate_limiter: None,
            operations,
            batch_operations: None,
        }
    }

    /// Checks every field; returns the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.incremental_round_size == 0 {
            return Err(ConfigError::ZeroRoundSize);
        }
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        if !self.refresh_interval.is_zero() && self.refresh_per_round == 0 {
            return Err(ConfigError::ZeroRefreshPerRound);
        }
        if self.retry_backoff_min_duration.is_zero() {
            return Err(ConfigError::ZeroRetryBackoffMin);
        }
        if self.retry_backoff_max_duration < self.retry_backoff_min_duration {
            return Err(ConfigError::RetryBackoffMaxBelowMin {
                min: self.retry_backoff_min_duration,
                max: self.retry_backoff_max_duration,
            });
        }
        Ok(())
    }
}
