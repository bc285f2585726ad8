//! The reconciler loop and its parts: incremental rounds
//! (`incremental.rs`), writing results back and tracking deletes
//! (`write_back.rs`), prune and full rounds (`full.rs`), refresh
//! (`refresh.rs`), and running one operation (`op.rs`).

mod full;
mod incremental;
mod op;
mod refresh;
mod write_back;

use std::collections::HashSet;
use std::sync::Arc;

use statedb::{Db, Key, ReadTxn, Revision, WatchSet};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::builder::Settings;
use crate::health::{Health, MAX_JOINED_ERRORS, join_errors};
use crate::metrics::Metrics;
use crate::retries::RetryQueue;
use crate::status::Status;
use crate::wait::Reconciled;

use refresh::RefreshClock;

/// What a round does with one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// `Operations::update`; the status is written back.
    Update,
    /// A soft delete (`Status::pending_delete`): `Operations::delete`, then
    /// the row is removed.
    SoftDelete,
    /// The row was deleted from the table: `Operations::delete` with its
    /// last version; no row to write back, so failures stay in the retry
    /// queue until the delete succeeds or the key is inserted again.
    HardDelete,
}

impl Action {
    fn is_delete(self) -> bool {
        self != Action::Update
    }
}

/// One object to reconcile in a round.
struct Work<Obj> {
    pk: Key,
    object: Arc<Obj>,
    revision: Revision,
    action: Action,
}

/// The outcome of one operation on one object, to be written back.
struct Outcome<Obj> {
    pk: Key,
    /// The object as reconciled (possibly changed by the operation).
    object: Obj,
    /// The revision the operation saw: the write-back is compare-and-swap.
    revision: Revision,
    action: Action,
    result: Result<(), String>,
}

pub(crate) struct Runner<Obj: Send + Sync + 'static> {
    cfg: Settings<Obj>,
    db: Db,
    module_id: String,
    metrics: Option<Arc<dyn Metrics>>,
    health: Arc<dyn Health>,
    trigger: Arc<Notify>,
    retries: RetryQueue<Obj>,
    prune_error: Option<String>,
    /// Published after every round that consumed every change it saw.
    progress: tokio::sync::watch::Sender<Reconciled>,
    /// Rows this reconciler removed after a successful soft delete: their
    /// delete shows up in the change iterator and needs no second delete.
    deleted_by_us: HashSet<Key>,
}

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    pub fn new(
        cfg: Settings<Obj>,
        db: Db,
        module_id: String,
        metrics: Option<Arc<dyn Metrics>>,
        health: Arc<dyn Health>,
        trigger: Arc<Notify>,
        progress: tokio::sync::watch::Sender<Reconciled>,
    ) -> Self {
        let retries = RetryQueue::new(cfg.retry_backoff_min, cfg.retry_backoff_max);
        Runner {
            cfg,
            db,
            module_id,
            metrics,
            health,
            trigger,
            retries,
            prune_error: None,
            deleted_by_us: HashSet::new(),
            progress,
        }
    }

    fn primary_key(&self, obj: &Obj) -> Key {
        self.cfg
            .table
            .primary_query(obj)
            .map(|q| Key::from_slice(q.key()))
            .unwrap_or_default()
    }

    fn status<'a>(&self, obj: &'a Obj) -> &'a Status {
        (self.cfg.get_status)(obj)
    }

    /// The loop; returns when `cancel` fires. An incremental round in
    /// flight then gets up to `shutdown_drain_duration` to finish (its
    /// results are committed); after that it is dropped, which drops its
    /// operations and commits nothing of it.
    pub async fn run(mut self, cancel: CancellationToken) {
        let table = self.cfg.table.clone();
        let mut changes = match self.db.write_txn(&[&table]).and_then(|mut w| {
            let c = table.changes(&mut w);
            w.commit();
            c
        }) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "reconciler cannot follow table");
                self.health
                    .degraded("Reconciler failed to start", &e.to_string());
                return;
            }
        };
        let interval = self.cfg.full_reconciliation_interval;
        let mut next_full = (!interval.is_zero()).then(|| Instant::now() + interval);
        let mut full_requested = false;
        let prune_interval = self.cfg.prune_interval;
        let mut next_prune = (!prune_interval.is_zero()).then(|| Instant::now() + prune_interval);
        // The first prune runs as soon as the table is initialized, whatever
        // the intervals: leftovers in the target from before a restart go at
        // once. (A full round requested by then prunes too.)
        let mut prune_requested = true;
        // Set when a round stopped at the round size with changes left.
        let mut more = true;
        // The table watch of the snapshot the last round read its changes
        // from: it closes on any change that round did not see.
        let mut changes_watch: Option<statedb::Watch> = None;
        let mut refresh = RefreshClock::new(self.cfg.refresh_interval);
        tracing::info!(module_id = %self.module_id, table = %table.name(), "reconciler started");
        loop {
            let txn = self.db.read_txn();
            let (initialized, init_watch) = match table.initialized(&txn) {
                Ok(x) => x,
                Err(_) => (false, statedb::Watch::closed_watch()),
            };
            if !more {
                let mut watches = WatchSet::new();
                watches.add(
                    changes_watch
                        .take()
                        .unwrap_or_else(statedb::Watch::closed_watch),
                );
                if !initialized {
                    watches.add(init_watch);
                }
                let retry_at = self.retries.next_due();
                let full_at = next_full.filter(|_| initialized);
                let prune_at = next_prune.filter(|_| initialized);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = watches.wait_async() => {}
                    _ = self.trigger.notified() => full_requested = true,
                    _ = sleep_until_opt(retry_at) => {}
                    _ = sleep_until_opt(full_at) => full_requested = true,
                    _ = sleep_until_opt(prune_at) => prune_requested = true,
                    _ = sleep_until_opt(refresh.next_tick()) => {}
                }
            }
            if let Some(limiter) = self.cfg.rate_limiter.clone() {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = limiter.wait() => {}
                }
            }
            let txn = self.db.read_txn();
            let initialized = table.initialized(&txn).map(|x| x.0).unwrap_or(false);
            let drain = self.cfg.shutdown_drain;
            let finished = {
                let round = self.incremental(&txn, &mut changes);
                tokio::pin!(round);
                tokio::select! {
                    _ = cancel.cancelled() => {
                        if tokio::time::timeout(drain, &mut round).await.is_err() {
                            tracing::warn!(drain = ?drain, "operations still running at shutdown were cancelled");
                        }
                        None
                    }
                    done = &mut round => Some(done),
                }
            };
            let Some((m, w)) = finished else { break };
            more = m;
            changes_watch = w;
            if !more {
                self.publish_progress(&txn);
            }
            if let Some(cutoff) = refresh.tick(table.revision(&txn).unwrap_or(0)) {
                self.mark_for_refresh(&txn, cutoff);
            }
            if full_requested && initialized {
                full_requested = false;
                prune_requested = false;
                let txn = self.db.read_txn();
                self.progress.send_modify(|p| p.full_rounds_started += 1);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.full(&txn) => {}
                }
                self.progress
                    .send_modify(|p| p.full_rounds = p.full_rounds_started);
                next_full = (!interval.is_zero()).then(|| Instant::now() + interval);
                next_prune = (!prune_interval.is_zero()).then(|| Instant::now() + prune_interval);
            } else if prune_requested && initialized {
                prune_requested = false;
                let txn = self.db.read_txn();
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.prune(&txn) => {}
                }
                next_prune = (!prune_interval.is_zero()).then(|| Instant::now() + prune_interval);
            }
            self.report_health();
        }
        self.health.stopped("reconciler stopped");
        tracing::info!(module_id = %self.module_id, "reconciler stopped");
    }

    /// Every change up to `txn`'s table revision is processed: publish it,
    /// with the objects left in error.
    fn publish_progress(&self, txn: &ReadTxn) {
        let revision = self.cfg.table.revision(txn).unwrap_or(0);
        if revision <= self.progress.borrow().revision
            && self.retries.len() == self.progress.borrow().errors
        {
            return;
        }
        let error_keys = self
            .retries
            .keys()
            .take(crate::wait::Reconciled::MAX_KEYS)
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        self.progress.send_modify(|p| {
            p.revision = revision;
            p.errors = self.retries.len();
            p.error_keys = error_keys;
        });
    }

    fn report_health(&self) {
        if let Some(m) = &self.metrics {
            m.retry_queue_size(&self.module_id, self.retries.len());
        }
        if self.retries.len() == 0 && self.prune_error.is_none() {
            let n = self.cfg.table.num_objects(&self.db.read_txn()).unwrap_or(0);
            self.health.ok(&format!("OK, {n} object(s)"));
        } else {
            // Only the errors shown are looked up: a long outage queues
            // every object, and this runs after every round.
            let errs = self
                .prune_error
                .iter()
                .map(String::as_str)
                .chain(self.retries.errors())
                .take(MAX_JOINED_ERRORS);
            let mut message = join_errors(errs);
            let total = usize::from(self.prune_error.is_some()) + self.retries.len();
            if total > MAX_JOINED_ERRORS {
                let omitted = total - MAX_JOINED_ERRORS;
                message.push_str(&format!("\n{omitted} further errors omitted"));
            }
            self.health.degraded("Reconciliation failed", &message);
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
