//! The handle of a running reconciler: trigger a full round, wait for a
//! revision, read progress.

use std::sync::Arc;

use statedb::Table;
use tokio::sync::Notify;

use crate::builder::{Builder, ConfigError, Settings};
use crate::ops::Operations;
use crate::params::Params;
use crate::runner::Runner;
use crate::wait::{Reconciled, WaitError};

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

/// A handle to a registered reconciler; declare one with
/// [`Reconciler::builder`].
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

impl<Obj: Clone + Send + Sync + 'static> Reconciler<Obj> {
    /// Starts declaring a reconciler of `table` pushing to `operations`
    /// (a target, or an `Arc` of one); see [`Builder`].
    pub fn builder(table: Table<Obj>, operations: impl Operations<Obj>) -> Builder<Obj> {
        Builder::new(table, operations)
    }
}

/// Checks the params and adds the runner to the lifecycle.
pub(crate) fn start<Obj: Clone + Send + Sync + 'static>(
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
    let trigger = Arc::new(Notify::new());
    let (progress_tx, progress) = tokio::sync::watch::channel(Reconciled::default());
    let metrics = settings.metrics.clone().or(params.default_metrics.clone());
    let runner = Runner::new(
        settings,
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
