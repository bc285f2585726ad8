//! Declaring a reconciler: the builder (wiring plus a [`Config`]), and
//! starting it: the supervised loop added to the lifecycle.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use statedb::{Db, Table};
use tokio_util::sync::CancellationToken;

pub use crate::config::{Config, ConfigError};
use crate::handle::Reconciler;
use crate::limiter::{DynRateLimiter, RateLimiter};
use crate::metrics::Metrics;
use crate::ops::{BatchOperations, DynBatchOperations, DynOperations, Operations};
use crate::params::Params;
use crate::report::Reconciled;
use crate::runner::{Runner, Shared, Signals};
use crate::settings::{GetStatus, SetStatus, Settings};
use crate::state::{ReconcilerState, ensure_state_table, publish_state};
use crate::status::Status;
use crate::write_log::WriteLog;

/// Declares a reconciler of one table: start with
/// [`Reconciler::builder`], set what differs from the defaults, then
/// [`Builder::build`] (or [`Builder::register`]) with the [`Params`].
///
/// The knobs are a [`Config`] (set it whole with [`Builder::config`], or
/// through the setters of the same names here); its docs list the
/// defaults. No rate limiter by default.
#[must_use = "a builder does nothing until build() or register()"]
pub struct Builder<Obj> {
    table: Table<Obj>,
    operations: Arc<dyn DynOperations<Obj>>,
    batch_operations: Option<Arc<dyn DynBatchOperations<Obj>>>,
    status: Option<(GetStatus<Obj>, SetStatus<Obj>)>,
    metrics: Option<Arc<dyn Metrics>>,
    rate_limiter: Option<Arc<dyn DynRateLimiter>>,
    config: Config,
}

impl<Obj> fmt::Debug for Builder<Obj> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("table", &self.table.name())
            .field("status", &self.status.is_some())
            .field("batch_operations", &self.batch_operations.is_some())
            .field("rate_limiter", &self.rate_limiter.is_some())
            .field("config", &self.config)
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
            rate_limiter: None,
            config: Config::default(),
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
        self.config = self.config.full_reconciliation_interval(interval);
        self
    }

    /// Time between prunes on their own (without updating every object).
    /// Zero (the default) prunes only when the table becomes initialized
    /// and in full reconciliations.
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.config = self.config.prune_interval(interval);
        self
    }

    /// Retry delays of a failed update or delete: `min` first, doubling on
    /// each further failure up to `max`. Default 100 ms to 1 min.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config = self.config.retry_backoff(min, max);
        self
    }

    /// Most objects reconciled in one incremental round before statuses
    /// are committed and a new snapshot is taken. Default 1000; 100–1000
    /// suits most.
    pub fn incremental_round_size(mut self, size: usize) -> Self {
        self.config = self.config.incremental_round_size(size);
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
        self.config = self.config.shutdown_drain(drain);
        self
    }

    /// Most operations in flight at once in an incremental round, never
    /// two on one object. 1 (the default) runs them one after another;
    /// more pays when operations wait on I/O. Batch operations are not
    /// affected.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config = self.config.concurrency(n);
        self
    }

    /// Objects whose status is older than `interval` are updated again
    /// ("refreshed"), at most `per_round` at a time: they are marked
    /// [`crate::StatusKind::Refreshing`] and go through incremental rounds
    /// like new versions, so the whole table is never updated in one
    /// blocking pass. A zero interval (the default) disables refresh.
    pub fn refresh(mut self, interval: Duration, per_round: usize) -> Self {
        self.config = self.config.refresh(interval, per_round);
        self
    }

    /// Every knob at once (replacing what the setters set before).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// See [`Config::retry_jitter`].
    pub fn retry_jitter(mut self, fraction: f64) -> Self {
        self.config = self.config.retry_jitter(fraction);
        self
    }

    /// See [`Config::operation_timeout`].
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.operation_timeout(timeout);
        self
    }

    /// See [`Config::circuit_breaker`].
    pub fn circuit_breaker(mut self, threshold: u32, pause: Duration) -> Self {
        self.config = self.config.circuit_breaker(threshold, pause);
        self
    }

    /// See [`Config::write_back_window`].
    pub fn write_back_window(mut self, window: Duration) -> Self {
        self.config = self.config.write_back_window(window);
        self
    }

    /// Checks every setting; returns the first problem.
    fn settings(self) -> Result<Settings<Obj>, ConfigError> {
        let (get_status, set_status) = self.status.ok_or(ConfigError::MissingStatus)?;
        self.config.validate()?;
        Ok(Settings {
            table: self.table,
            operations: self.operations,
            batch_operations: self.batch_operations,
            get_status,
            set_status,
            metrics: self.metrics,
            rate_limiter: self.rate_limiter,
            config: self.config,
        })
    }

    /// Validates the declaration and adds the reconciler to
    /// `params.lifecycle`: it runs from [`crate::Lifecycle::start`] (at
    /// once if the lifecycle runs already) until
    /// [`crate::Lifecycle::stop`]. Returns its handle.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] naming the first bad setting, an empty module
    /// id, or a table not registered with `params.db`.
    pub fn build(self, params: Params) -> Result<Reconciler<Obj>, ConfigError> {
        let settings = self.settings()?;
        start(settings, params)
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

impl<Obj: Clone + Send + Sync + 'static> Reconciler<Obj> {
    /// Starts declaring a reconciler of `table` pushing to `operations`
    /// (a target, or an `Arc` of one); see [`Builder`].
    pub fn builder(table: Table<Obj>, operations: impl Operations<Obj>) -> Builder<Obj> {
        Builder::new(table, operations)
    }
}

/// Checks the params and adds the supervised loop to the lifecycle.
fn start<Obj: Clone + Send + Sync + 'static>(
    settings: Settings<Obj>,
    params: Params,
) -> Result<Reconciler<Obj>, ConfigError> {
    if params.module_id.is_empty() {
        return Err(ConfigError::EmptyModuleId);
    }
    settings
        .table
        .num_objects(&params.db.read_txn())
        .map_err(|e| ConfigError::Table {
            table: settings.table.name().to_string(),
            reason: e.to_string(),
        })?;
    let (progress_tx, progress) = tokio::sync::watch::channel(Reconciled::default());
    let mut settings = settings;
    settings.metrics = settings.metrics.or(params.default_metrics.clone());
    // Its transactions carry its name unless the application named the
    // handle itself.
    let db = if params.db.handle_name() == Db::DEFAULT_HANDLE {
        params
            .db
            .handle(&format!("reconciler:{}", params.module_id))
    } else {
        params.db.clone()
    };
    let shared = Shared {
        db,
        module_id: params.module_id.as_str().into(),
        health: params.health.clone(),
        signals: Arc::new(Signals::default()),
        progress: Arc::new(progress_tx),
        writes: Arc::new(WriteLog::of(&params.db, settings.table.name()).reader(&params.module_id)),
    };
    let started = Arc::new(AtomicBool::new(false));
    let handle = Reconciler {
        signals: shared.signals.clone(),
        progress,
        started: started.clone(),
        module_id: params.module_id.clone(),
        _obj: std::marker::PhantomData,
    };
    // The reconciler's own state, inspectable beside the tables.
    let state = ensure_state_table(&params.db).map(|t| {
        let row = ReconcilerState {
            table: settings.table.name().to_string(),
            module_id: params.module_id.clone(),
            report: Reconciled::default(),
        };
        (t, row)
    });
    let name = format!("reconcile-{}", params.module_id);
    params.lifecycle.add_job(&name, move |cancel| {
        started.store(true, Ordering::Release);
        // Running from now on, having processed nothing yet: said before
        // the lifecycle's start returns, so that a wait right after start
        // (or a restart) cannot read the table as converged before this
        // reconciler has looked at it.
        shared.progress.send_modify(|p| {
            p.running = true;
            p.revision = 0;
        });
        if let Some((table, row)) = &state {
            let mut row = row.clone();
            row.report = shared.progress.borrow().clone();
            write_starting(&shared.db, table, &row);
        }
        async move {
            let Some((table, row)) = state else {
                return supervise(settings, shared, cancel).await;
            };
            let done = CancellationToken::new();
            let publisher = publish_state(
                shared.db.clone(),
                table,
                row,
                shared.progress.subscribe(),
                done.clone(),
            );
            let run = async {
                supervise(settings, shared, cancel).await;
                done.cancel();
            };
            futures::future::join(run, publisher).await;
        }
    });
    Ok(handle)
}

/// Writes the row of a starting reconciler, waiting briefly for the
/// state table (other reconcilers only hold it for a moment). On failure
/// the publisher writes it soon after.
fn write_starting(
    db: &statedb::Db,
    table: &statedb::Table<ReconcilerState>,
    row: &ReconcilerState,
) {
    match db.write_txn_timeout(&[table], std::time::Duration::from_millis(500)) {
        Ok(mut w) => {
            if table.insert(&mut w, row.clone()).is_ok() {
                w.commit();
            }
        }
        Err(e) => tracing::debug!(error = %e, "starting reconciler's state not written yet"),
    }
}

/// Runs the loop; if it panics (a bug, or a user callback the loop could
/// not contain), reports Degraded with the panic message and runs a fresh
/// loop after a backoff: the new change iterator sees every object again,
/// so nothing is left behind.
async fn supervise<Obj: Clone + Send + Sync + 'static>(
    settings: Settings<Obj>,
    shared: Shared,
    cancel: CancellationToken,
) {
    let mut restarts: u32 = 0;
    loop {
        let runner = Runner::new(settings.clone(), shared.clone());
        let Err(p) = AssertUnwindSafe(runner.run(cancel.clone()))
            .catch_unwind()
            .await
        else {
            return;
        };
        let msg = match p.downcast_ref::<&str>() {
            Some(s) => format!("reconciler panicked: {s}"),
            None => match p.downcast_ref::<String>() {
                Some(s) => format!("reconciler panicked: {s}"),
                None => "reconciler panicked".to_string(),
            },
        };
        tracing::error!(module_id = %shared.module_id, error = %msg, "reconciler panicked; restarting");
        shared
            .health
            .degraded("Reconciler panicked; restarting", &msg);
        restarts = restarts.saturating_add(1);
        let wait = Duration::from_millis(10u64 << restarts.min(7)).min(Duration::from_secs(1));
        tokio::select! {
            _ = cancel.cancelled() => {
                shared.progress.send_modify(|p| p.running = false);
                shared.health.stopped("reconciler stopped");
                return;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
