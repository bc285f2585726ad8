//! Declaring a reconciler: the builder, its validation and the settings
//! the loop runs with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use statedb::Table;

use crate::handle::Reconciler;
use crate::limiter::{DynRateLimiter, RateLimiter};
use crate::metrics::Metrics;
use crate::ops::{BatchOperations, DynBatchOperations, DynOperations, Operations};
use crate::params::Params;
use crate::status::Status;

pub(crate) type GetStatus<Obj> = Arc<dyn Fn(&Obj) -> &Status + Send + Sync>;
pub(crate) type SetStatus<Obj> = Arc<dyn Fn(&mut Obj, Status) + Send + Sync>;

/// An invalid reconciler declaration; each variant names the setter (or
/// parameter) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`Builder::status`] was not called.
    #[error("status(get, set) must be called: the reconciler needs the object's status")]
    MissingStatus,
    /// [`Builder::incremental_round_size`] is zero.
    #[error("incremental_round_size must be greater than zero")]
    ZeroRoundSize,
    /// [`Builder::refresh`]: `per_round` is zero while refresh is on.
    #[error("refresh: per_round must be at least 1 when the interval is set")]
    ZeroRefreshPerRound,
    /// [`Builder::concurrency`] is zero.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// [`Builder::retry_backoff`]: the minimum is zero.
    #[error("retry_backoff: min must be greater than zero")]
    ZeroRetryBackoffMin,
    /// [`Builder::retry_backoff`]: the maximum is below the minimum.
    #[error("retry_backoff: max ({max:?}) must not be less than min ({min:?})")]
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

/// What the reconciler loop runs with: a validated [`Builder`].
pub(crate) struct Settings<Obj> {
    pub table: Table<Obj>,
    pub operations: Arc<dyn DynOperations<Obj>>,
    pub batch_operations: Option<Arc<dyn DynBatchOperations<Obj>>>,
    pub get_status: GetStatus<Obj>,
    pub set_status: SetStatus<Obj>,
    pub metrics: Option<Arc<dyn Metrics>>,
    pub full_reconciliation_interval: Duration,
    pub prune_interval: Duration,
    pub retry_backoff_min: Duration,
    pub retry_backoff_max: Duration,
    pub incremental_round_size: usize,
    pub rate_limiter: Option<Arc<dyn DynRateLimiter>>,
    pub shutdown_drain: Duration,
    pub concurrency: usize,
    pub refresh_interval: Duration,
    pub refresh_per_round: usize,
}

/// Declares a reconciler of one table: start with
/// [`Reconciler::builder`], set what differs from the defaults, then
/// [`Builder::build`] (or [`Builder::register`]) with the [`Params`].
///
/// Defaults: no periodic full reconciliation or prune (one prune runs as
/// soon as the table is initialized, whatever the settings), retries from
/// 100 ms to 1 min, rounds of 1000 objects, no rate limiter, one operation
/// at a time, 1 s shutdown drain, no refresh.
#[must_use = "a builder does nothing until build() or register()"]
pub struct Builder<Obj> {
    table: Table<Obj>,
    operations: Arc<dyn DynOperations<Obj>>,
    batch_operations: Option<Arc<dyn DynBatchOperations<Obj>>>,
    status: Option<(GetStatus<Obj>, SetStatus<Obj>)>,
    metrics: Option<Arc<dyn Metrics>>,
    full_reconciliation_interval: Duration,
    prune_interval: Duration,
    retry_backoff: (Duration, Duration),
    incremental_round_size: usize,
    rate_limiter: Option<Arc<dyn DynRateLimiter>>,
    shutdown_drain: Duration,
    concurrency: usize,
    refresh: (Duration, usize),
}

impl<Obj> fmt::Debug for Builder<Obj> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("table", &self.table.name())
            .field("status", &self.status.is_some())
            .field("batch_operations", &self.batch_operations.is_some())
            .field(
                "full_reconciliation_interval",
                &self.full_reconciliation_interval,
            )
            .field("prune_interval", &self.prune_interval)
            .field("retry_backoff", &self.retry_backoff)
            .field("incremental_round_size", &self.incremental_round_size)
            .field("rate_limiter", &self.rate_limiter.is_some())
            .field("shutdown_drain", &self.shutdown_drain)
            .field("concurrency", &self.concurrency)
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl<Obj: Clone + Send + Sync + 'static> Builder<Obj> {
    pub(crate) fn new(table: Table<Obj>, operations: impl Operations<Obj>) -> Self {
        Builder {
            table,
            operations: Arc::new(operations),
            batch_operations: None,
            status: None,
            metrics: None,
            full_reconciliation_interval: Duration::ZERO,
            prune_interval: Duration::ZERO,
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(60)),
            incremental_round_size: 1000,
            rate_limiter: None,
            shutdown_drain: Duration::from_secs(1),
            concurrency: 1,
            refresh: (Duration::ZERO, 100),
        }
    }

    /// Where the object keeps this reconciler's status: `get` reads it,
    /// `set` replaces it in a clone of the object. Required. For a plain
    /// [`Status`] field: `.status(|r| &r.status, |r, s| r.status = s)`;
    /// for one entry of a [`crate::StatusSet`]:
    /// `.status(|r| r.statuses.get("routes"), |r, s| r.statuses = r.statuses.set("routes", s))`.
    pub fn status(
        mut self,
        get: impl Fn(&Obj) -> &Status + Send + Sync + 'static,
        set: impl Fn(&mut Obj, Status) + Send + Sync + 'static,
    ) -> Self {
        self.status = Some((Arc::new(get), Arc::new(set)));
        self
    }

    /// Batched operations for incremental rounds (deletes first, then
    /// updates); full rounds still use the [`Operations`].
    pub fn batch_operations(mut self, batch: impl BatchOperations<Obj>) -> Self {
        self.batch_operations = Some(Arc::new(batch));
        self
    }

    /// Metrics; without, [`Params::default_metrics`] are used (and if
    /// those are unset too, nothing is recorded).
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Time between full reconciliations (prune, then update of every
    /// object, to undo outside changes). Zero (the default) disables the
    /// periodic ones; [`Reconciler::trigger_full_reconciliation`] still
    /// runs one on demand.
    pub fn full_reconciliation_interval(mut self, interval: Duration) -> Self {
        self.full_reconciliation_interval = interval;
        self
    }

    /// Time between prunes on their own (without updating every object).
    /// Zero (the default) prunes only when the table becomes initialized
    /// and in full reconciliations.
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Retry delays of a failed update or delete: `min` first, doubling on
    /// each further failure up to `max`. Default 100 ms to 1 min.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_backoff = (min, max);
        self
    }

    /// Most objects reconciled in one incremental round before statuses
    /// are committed and a new snapshot is taken. Default 1000; 100–1000
    /// suits most.
    pub fn incremental_round_size(mut self, size: usize) -> Self {
        self.incremental_round_size = size;
        self
    }

    /// Rounds wait for `limiter` before they start: trades latency for
    /// larger batches (with the `governor` feature: `tokio_rate_limiter`).
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.rate_limiter = Some(Arc::new(limiter));
        self
    }

    /// On shutdown, how long an incremental round in flight may go on so
    /// that its operations finish and their results are committed; what
    /// is still running then is cancelled (dropped). Default 1 s; zero
    /// cancels at once.
    pub fn shutdown_drain(mut self, drain: Duration) -> Self {
        self.shutdown_drain = drain;
        self
    }

    /// Most operations in flight at once in an incremental round, never
    /// two on one object. 1 (the default) runs them one after another;
    /// more pays when operations wait on I/O. Batch operations are not
    /// affected.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Objects whose status is older than `interval` are updated again
    /// ("refreshed"), at most `per_round` at a time: they are marked
    /// [`crate::StatusKind::Refreshing`] and go through incremental rounds
    /// like new versions, so the whole table is never updated in one
    /// blocking pass. A zero interval (the default) disables refresh.
    pub fn refresh(mut self, interval: Duration, per_round: usize) -> Self {
        self.refresh = (interval, per_round);
        self
    }

    /// Checks every setting; returns the first problem.
    fn settings(self) -> Result<Settings<Obj>, ConfigError> {
        let (get_status, set_status) = self.status.ok_or(ConfigError::MissingStatus)?;
        if self.incremental_round_size == 0 {
            return Err(ConfigError::ZeroRoundSize);
        }
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        let (refresh_interval, refresh_per_round) = self.refresh;
        if !refresh_interval.is_zero() && refresh_per_round == 0 {
            return Err(ConfigError::ZeroRefreshPerRound);
        }
        let (min, max) = self.retry_backoff;
        if min.is_zero() {
            return Err(ConfigError::ZeroRetryBackoffMin);
        }
        if max < min {
            return Err(ConfigError::RetryBackoffMaxBelowMin { min, max });
        }
        Ok(Settings {
            table: self.table,
            operations: self.operations,
            batch_operations: self.batch_operations,
            get_status,
            set_status,
            metrics: self.metrics,
            full_reconciliation_interval: self.full_reconciliation_interval,
            prune_interval: self.prune_interval,
            retry_backoff_min: min,
            retry_backoff_max: max,
            incremental_round_size: self.incremental_round_size,
            rate_limiter: self.rate_limiter,
            shutdown_drain: self.shutdown_drain,
            concurrency: self.concurrency,
            refresh_interval,
            refresh_per_round,
        })
    }

    /// Validates the declaration and adds the reconciler to
    /// `params.lifecycle`: it runs from [`crate::Lifecycle::start`] until
    /// [`crate::Lifecycle::stop`]. Returns its handle.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] naming the first bad setting, an empty module
    /// id, or a table not registered with `params.db`.
    pub fn build(self, params: Params) -> Result<Reconciler<Obj>, ConfigError> {
        let settings = self.settings()?;
        crate::handle::start(settings, params)
    }

    /// Like [`Builder::build`], for when the handle is not needed.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn register(self, params: Params) -> Result<(), ConfigError> {
        self.build(params).map(drop)
    }
}
