//! The handle of a running reconciler: trigger a full round or a prune,
//! wait for a revision, read progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statedb::Revision;

use crate::report::Reconciled;
use crate::runner::Signals;
use crate::wait::WaitError;

/// A requested full reconciliation or prune; see
/// [`Reconciler::trigger_full_reconciliation`] and [`Reconciler::prune`].
#[derive(Debug)]
pub struct FullRound {
    progress: tokio::sync::watch::Receiver<Reconciled>,
    target: u64,
    prune_only: bool,
}

impl FullRound {
    /// Completes once a round (a full round, or for [`Reconciler::prune`]
    /// a prune) that started after the request has finished: its prune
    /// and updates ran and their results were written back.
    ///
    /// # Errors
    ///
    /// [`WaitError::Stopped`] if the reconciler stops first.
    pub async fn finished(mut self) -> Result<(), WaitError> {
        let (target, prune_only) = (self.target, self.prune_only);
        self.progress
            .wait_for(|p| {
                if prune_only {
                    p.prunes >= target
                } else {
                    p.full_rounds >= target
                }
            })
            .await
            .map(drop)
            .map_err(|_| WaitError::Stopped)
    }
}

/// A handle to a registered reconciler; declare one with
/// [`Reconciler::builder`]. Cheap to clone.
pub struct Reconciler<Obj> {
    pub(crate) signals: Arc<Signals>,
    pub(crate) progress: tokio::sync::watch::Receiver<Reconciled>,
    pub(crate) started: Arc<AtomicBool>,
    pub(crate) module_id: String,
    pub(crate) _obj: std::marker::PhantomData<fn(Obj)>,
}

impl<Obj> Clone for Reconciler<Obj> {
    fn clone(&self) -> Self {
        Reconciler {
            signals: self.signals.clone(),
            progress: self.progress.clone(),
            started: self.started.clone(),
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
        self.signals.full.notify_one();
        FullRound {
            progress: self.progress.clone(),
            target,
            prune_only: false,
        }
    }

    /// Asks for a prune on its own (the target drops what no object asks
    /// for) as soon as possible, once the table is initialized; requests
    /// coalesce like [`Reconciler::trigger_full_reconciliation`]. The
    /// handle waits for a prune that started after this call.
    pub fn prune(&self) -> FullRound {
        let target = self.progress.borrow().prunes_started + 1;
        self.signals.prune.notify_one();
        FullRound {
            progress: self.progress.clone(),
            target,
            prune_only: true,
        }
    }

    /// The module id.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    fn check_started(&self) -> Result<(), WaitError> {
        if self.started.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(WaitError::NotStarted)
        }
    }

    async fn wait(&self, cond: impl Fn(&Reconciled) -> bool) -> Result<Reconciled, WaitError> {
        self.check_started()?;
        let mut rx = self.progress.clone();
        let seen = rx
            .wait_for(|p| cond(p))
            .await
            .map_err(|_| WaitError::Stopped)?;
        Ok(seen.clone())
    }

    /// Completes once every change of the table up to `revision` (say,
    /// the table revision of the user's commit) has been processed, with
    /// the report of that moment (what is still failing). Needs no status
    /// index. Cancel by dropping the future; see
    /// [`Reconciler::wait_until_reconciled_timeout`] for a deadline.
    ///
    /// "Processed" includes failures: see
    /// [`Reconciler::wait_until_succeeded`] to wait until the target holds.
    ///
    /// # Errors
    ///
    /// [`WaitError::NotStarted`] if the reconciler's lifecycle has not
    /// been started when the wait begins; [`WaitError::Stopped`] if the
    /// reconciler stops first.
    pub async fn wait_until_reconciled(&self, revision: Revision) -> Result<Reconciled, WaitError> {
        self.wait(|p| p.processed(revision)).await
    }

    /// [`Reconciler::wait_until_reconciled`] with a deadline (tokio's
    /// clock; any duration, `Duration::MAX` included).
    ///
    /// # Errors
    ///
    /// [`WaitError::Timeout`] when `timeout` passes first; as
    /// [`Reconciler::wait_until_reconciled`].
    pub async fn wait_until_reconciled_timeout(
        &self,
        revision: Revision,
        timeout: Duration,
    ) -> Result<Reconciled, WaitError> {
        tokio::time::timeout(timeout, self.wait_until_reconciled(revision))
            .await
            .map_err(|_| WaitError::Timeout)?
    }

    /// Completes once every change up to `revision` has *succeeded*: it
    /// was processed and no object of those changes is still failing
    /// (retries and hard deletes included) — the target holds the table
    /// as of `revision`. The loop "write, then wait until it is in the
    /// target" is this call.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use reconciler::*;
    /// # use statedb::*;
    /// # #[derive(Clone)] struct R { id: u32, status: Status }
    /// # struct T;
    /// # impl Operations<R> for T {
    /// #   async fn update(&self, _: &ReadTxn, _: Revision, _: &mut R, _: Option<&mut bool>) -> Result<(), OpError> { Ok(()) }
    /// #   async fn delete(&self, _: &ReadTxn, _: Revision, _: &R) -> Result<(), OpError> { Ok(()) }
    /// #   async fn prune(&self, _: &ReadTxn, _: Objects<R>) -> Result<Pruned, OpError> { Ok(Pruned::default()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let by_id: Index<R, u32> = Index::unique("id", |r: &R, k| k.push(&r.id));
    /// # let table = Table::new("r", &by_id)?;
    /// # let db = Db::new();
    /// # db.register_table(&table)?;
    /// # let lc = Lifecycle::new();
    /// # let params = Params::new(db.clone(), "r", lc.clone(), Arc::new(HealthReporter::new()));
    /// let rec = Reconciler::builder(table.clone(), T)
    ///     .status(|r| &r.status, |r, s| r.status = s)
    ///     .build(params)?;
    /// lc.start().await?;
    /// let mut w = db.write_txn(&[&table])?;
    /// table.insert(&mut w, R { id: 1, status: Status::pending() })?;
    /// let rev = table.revision(&w.commit())?;
    /// let report = rec.wait_until_succeeded_timeout(rev, std::time::Duration::from_secs(10)).await?;
    /// assert_eq!(report.errors, 0);
    /// lc.stop().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Reconciler::wait_until_reconciled`]. It waits for as long as
    /// the target keeps failing: use
    /// [`Reconciler::wait_until_succeeded_timeout`] for a deadline.
    pub async fn wait_until_succeeded(&self, revision: Revision) -> Result<Reconciled, WaitError> {
        self.wait(|p| p.succeeded(revision)).await
    }

    /// [`Reconciler::wait_until_succeeded`] with a deadline (tokio's
    /// clock).
    ///
    /// # Errors
    ///
    /// [`WaitError::Timeout`] when `timeout` passes first; as
    /// [`Reconciler::wait_until_reconciled`].
    pub async fn wait_until_succeeded_timeout(
        &self,
        revision: Revision,
        timeout: Duration,
    ) -> Result<Reconciled, WaitError> {
        tokio::time::timeout(timeout, self.wait_until_succeeded(revision))
            .await
            .map_err(|_| WaitError::Timeout)?
    }

    /// The latest progress: the revision processed and what is failing.
    pub fn progress(&self) -> Reconciled {
        self.progress.borrow().clone()
    }
}
