//! `reconciler`: pushes the desired state kept in a [`statedb`] table into
//! a target (kernel routes, eBPF maps, files, a remote API), retries
//! failures with backoff, reports per-object [`Status`], prunes what no
//! object asks for, and exposes metrics and health.
//!
//! The Rust counterpart of the Go package `cilium/statedb/reconciler`:
//!
//! | Go | here |
//! |---|---|
//! | `OpUpdate`, `OpDelete`, `OpPrune` | [`OP_UPDATE`], [`OP_DELETE`], [`OP_PRUNE`] |
//! | `Status`, `StatusKind`, `StatusPending()`… | [`Status`], [`StatusKind`], [`Status::pending`]… |
//! | `NewStatusIndex` | [`new_status_index`] |
//! | `Config`, `Operations`, `BatchOperations`, `BatchEntry` | [`Config`], [`Operations`], [`BatchOperations`], [`BatchEntry`] |
//! | `Metrics`, `ExpVarMetrics` | [`Metrics`], [`InMemoryMetrics`] (+ [`PrometheusMetrics`]) |
//! | `Params` (lifecycle, jobs, health, metrics) | [`Params`], [`Lifecycle`], [`Health`] / [`HealthReporter`] |
//! | `New`, `Register`, `Reconciler.TriggerFullReconciliation` | [`new`], [`register`], [`Reconciler::trigger_full_reconciliation`] (returns a [`FullRound`] to await) |
//! | `WaitForReconciliation` | [`wait_for_reconciliation`], [`wait_for_reconciliation_timeout`], [`wait_for_reconciliation_blocking`] (one [`WaitError`]) |
//! | (new) wait for a revision | [`Reconciler::wait_until_reconciled`] → [`Reconciled`] |
//! | (new) refresh, concurrency, graceful drain | [`Config::refresh_interval`] / [`StatusKind::Refreshing`], [`Config::concurrency`], [`Config::shutdown_drain_duration`] |
//! | `*rate.Limiter` | [`RateLimiter`] (governor, on tokio's clock: [`tokio_rate_limiter`]) |
//!
//! Time comes from tokio's clock, so tests run on a paused runtime in
//! virtual time.
//!
//! ```
//! use std::sync::Arc;
//! use parking_lot::Mutex;
//! use reconciler::{Config, HealthReporter, Lifecycle, OpError, Operations, Params, Status};
//! use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};
//!
//! #[derive(Clone, Debug)]
//! struct Route { prefix: String, status: Status }
//!
//! /// The target: a map standing in for the kernel's routing table.
//! #[derive(Default)]
//! struct Kernel(Mutex<Vec<String>>);
//!
//! #[async_trait::async_trait]
//! impl Operations<Route> for Kernel {
//!     async fn update(&self, _: &ReadTxn, _: Revision, r: &mut Route, _: Option<&mut bool>) -> Result<(), OpError> {
//!         let mut k = self.0.lock();
//!         if !k.contains(&r.prefix) { k.push(r.prefix.clone()); }
//!         Ok(())
//!     }
//!     async fn delete(&self, _: &ReadTxn, _: Revision, r: &Route) -> Result<(), OpError> {
//!         self.0.lock().retain(|p| *p != r.prefix);
//!         Ok(())
//!     }
//!     async fn prune(&self, _: &ReadTxn, _: Objects<Route>) -> Result<(), OpError> { Ok(()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let by_prefix: Index<Route, str> = Index::unique("prefix", |r: &Route, k| k.push(r.prefix.as_str()));
//! let status = reconciler::new_status_index(|r: &Route| &r.status);
//! let routes = Table::builder("routes", &by_prefix).index(&status).build()?;
//! let db = Db::new();
//! db.register_table(&routes)?;
//!
//! let kernel = Arc::new(Kernel::default());
//! let config = Config::new(routes.clone(), |r| &r.status, |r, s| r.status = s, Route::clone, kernel.clone());
//! let lifecycle = Lifecycle::new();
//! let params = Params::new(db.clone(), "routes-reconciler", lifecycle.clone(), Arc::new(HealthReporter::new()));
//! reconciler::register(config, params)?;
//! lifecycle.start().await?;
//!
//! let mut w = db.write_txn(&[&routes])?;
//! routes.insert(&mut w, Route { prefix: "10.0.0.0/8".into(), status: Status::pending() })?;
//! w.commit();
//! reconciler::wait_for_reconciliation(&db, &routes, &status).await?;
//! assert_eq!(*kernel.0.lock(), ["10.0.0.0/8"]);
//! lifecycle.stop().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod health;
mod lifecycle;
mod limiter;
mod metrics;
mod reconciler;
mod retries;
mod status;
mod wait;

use std::sync::Arc;

pub use config::{BatchEntry, BatchOperations, Config, ConfigError, OpError, Operations};
pub use health::{
    Health, HealthLevel, HealthReport, HealthReporter, MAX_JOINED_ERRORS, join_errors,
};
pub use lifecycle::{BoxError, Hook, Lifecycle, LifecycleError};
pub use limiter::{GovernorLimiter, RateLimiter, TokioClock, TokioInstant, tokio_rate_limiter};
pub use metrics::{InMemoryMetrics, Metrics, ModuleMetrics, PrometheusMetrics};
pub use status::{OP_DELETE, OP_PRUNE, OP_UPDATE, Status, StatusKind, new_status_index};
pub use wait::{
    Reconciled, WaitError, wait_for_reconciliation, wait_for_reconciliation_blocking,
    wait_for_reconciliation_timeout,
};

use statedb::Db;
use tokio::sync::Notify;

/// What a reconciler needs from the application.
#[derive(Clone)]
pub struct Params {
    /// The database holding the table.
    pub db: Db,
    /// Names the reconciler in metrics (`module_id` label) and logs.
    pub module_id: String,
    /// The lifecycle (job group) that starts and stops the reconciler.
    pub lifecycle: Lifecycle,
    /// Where health is reported.
    pub health: Arc<dyn Health>,
    /// Metrics used when [`Config::metrics`] is `None`.
    pub default_metrics: Option<Arc<dyn Metrics>>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("module_id", &self.module_id)
            .field("default_metrics", &self.default_metrics.is_some())
            .finish()
    }
}

impl Params {
    /// Params without default metrics.
    pub fn new(db: Db, module_id: &str, lifecycle: Lifecycle, health: Arc<dyn Health>) -> Self {
        Params {
            db,
            module_id: module_id.to_string(),
            lifecycle,
            health,
            default_metrics: None,
        }
    }

    /// Sets the default metrics.
    #[must_use]
    pub fn with_default_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.default_metrics = Some(metrics);
        self
    }
}

/// A requested full reconciliation; see
/// [`Reconciler::trigger_full_reconciliation`].
#[derive(Debug)]
pub struct FullRound {
    progress: tokio::sync::watch::Receiver<Reconciled>,
    target: u64,
}

impl FullRound {
    /// Completes once a full round that started after the request has
    /// finished (its prune and updates ran and their results were written
    /// back).
    ///
    /// # Errors
    ///
    /// [`WaitError::Stopped`] if the reconciler stops first.
    pub async fn finished(mut self) -> Result<(), WaitError> {
        let target = self.target;
        self.progress
            .wait_for(|p| p.full_rounds >= target)
            .await
            .map(drop)
            .map_err(|_| WaitError::Stopped)
    }
}

/// A handle to a registered reconciler.
pub struct Reconciler<Obj> {
    trigger: Arc<Notify>,
    progress: tokio::sync::watch::Receiver<Reconciled>,
    module_id: String,
    _obj: std::marker::PhantomData<fn(Obj)>,
}

impl<Obj> Clone for Reconciler<Obj> {
    fn clone(&self) -> Self {
        Reconciler {
            trigger: self.trigger.clone(),
            progress: self.progress.clone(),
            module_id: self.module_id.clone(),
            _obj: std::marker::PhantomData,
        }
    }
}

impl<Obj> std::fmt::Debug for Reconciler<Obj> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("module_id", &self.module_id)
            .finish()
    }
}

impl<Obj> Reconciler<Obj> {
    /// Asks for a full reconciliation (prune, then update of every object)
    /// as soon as possible, once the table is initialized. Requests
    /// coalesce like sends to a channel of size 1: N calls may yield fewer
    /// than N full rounds. The returned handle can wait for a full round
    /// that started after this call to finish ([`FullRound::finished`]);
    /// ignoring it is fine.
    pub fn trigger_full_reconciliation(&self) -> FullRound {
        // A round already running may have read the table before the
        // caller's writes: wait for the next one to start.
        let target = self.progress.borrow().full_rounds_started + 1;
        self.trigger.notify_one();
        FullRound {
            progress: self.progress.clone(),
            target,
        }
    }

    /// The module id.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// Completes once every change of the table up to `revision` (say,
    /// the table revision of the user's commit) has been processed, with
    /// the objects left in error at that point. Needs no status index.
    /// Cancel by dropping the future; see
    /// [`Reconciler::wait_until_reconciled_timeout`] for a deadline.
    ///
    /// # Errors
    ///
    /// [`WaitError::Stopped`] if the reconciler stops first (or never
    /// started).
    pub async fn wait_until_reconciled(
        &self,
        revision: statedb::Revision,
    ) -> Result<Reconciled, WaitError> {
        let mut rx = self.progress.clone();
        let seen = rx
            .wait_for(|p| p.revision >= revision)
            .await
            .map_err(|_| WaitError::Stopped)?;
        Ok(seen.clone())
    }

    /// [`Reconciler::wait_until_reconciled`] with a deadline (tokio's
    /// clock).
    ///
    /// # Errors
    ///
    /// [`WaitError::Timeout`] when `timeout` passes first;
    /// [`WaitError::Stopped`].
    pub async fn wait_until_reconciled_timeout(
        &self,
        revision: statedb::Revision,
        timeout: std::time::Duration,
    ) -> Result<Reconciled, WaitError> {
        tokio::time::timeout(timeout, self.wait_until_reconciled(revision))
            .await
            .map_err(|_| WaitError::Timeout)?
    }

    /// The latest progress: the revision processed and the objects in
    /// error then.
    pub fn progress(&self) -> Reconciled {
        self.progress.borrow().clone()
    }
}

/// Validates `config` and adds the reconciler to `params.lifecycle`; it
/// runs from [`Lifecycle::start`] until [`Lifecycle::stop`].
pub fn new<Obj: Send + Sync + 'static>(
    config: Config<Obj>,
    params: Params,
) -> Result<Reconciler<Obj>, ConfigError> {
    config.validate()?;
    if params.module_id.is_empty() {
        return Err(ConfigError::EmptyModuleId);
    }
    config
        .table
        .num_objects(&params.db.read_txn())
        .map_err(|e| ConfigError::Table {
            table: config.table.name().to_string(),
            reason: e.to_string(),
        })?;
    let trigger = Arc::new(Notify::new());
    let (progress_tx, progress) = tokio::sync::watch::channel(Reconciled::default());
    let metrics = config.metrics.clone().or(params.default_metrics.clone());
    let runner = reconciler::Runner::new(
        config,
        params.db.clone(),
        params.module_id.clone(),
        metrics,
        params.health.clone(),
        trigger.clone(),
        progress_tx,
    );
    let name = format!("reconcile-{}", params.module_id);
    params
        .lifecycle
        .add_job(&name, move |cancel| runner.run(cancel));
    Ok(Reconciler {
        trigger,
        progress,
        module_id: params.module_id,
        _obj: std::marker::PhantomData,
    })
}

/// Like [`new`], for when the handle is not needed.
pub fn register<Obj: Send + Sync + 'static>(
    config: Config<Obj>,
    params: Params,
) -> Result<(), ConfigError> {
    new(config, params).map(|_| ())
}
