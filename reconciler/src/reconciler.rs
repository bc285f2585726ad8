//! The reconciliation loop: incremental rounds over changed objects,
//! retries, and periodic or triggered full reconciliation.

use std::any::Any;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use statedb::{ChangeIterator, Db, Key, ReadTxn, Revision, WatchSet};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{BatchEntry, Config, OpError};
use crate::health::{Health, MAX_JOINED_ERRORS, join_errors};
use crate::metrics::Metrics;
use crate::retries::RetryQueue;
use crate::status::{OP_DELETE, OP_PRUNE, OP_UPDATE, Status, StatusKind};

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
    pub cfg: Config<Obj>,
    pub db: Db,
    pub module_id: String,
    pub metrics: Option<Arc<dyn Metrics>>,
    pub health: Arc<dyn Health>,
    pub trigger: Arc<Notify>,
    retries: RetryQueue<Obj>,
    prune_error: Option<String>,
    /// Published after every round that consumed every change it saw.
    progress: tokio::sync::watch::Sender<crate::wait::Reconciled>,
    /// Rows this reconciler removed after a successful soft delete: their
    /// delete shows up in the change iterator and needs no second delete.
    deleted_by_us: HashSet<Key>,
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("operation panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("operation panicked: {s}")
    } else {
        "operation panicked".to_string()
    }
}

/// Runs an operation future, turning a panic into an error.
async fn guarded<F: std::future::Future<Output = Result<(), OpError>>>(f: F) -> Result<(), String> {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(panic_message(p)),
    }
}

impl<Obj: Send + Sync + 'static> Runner<Obj> {
    pub fn new(
        cfg: Config<Obj>,
        db: Db,
        module_id: String,
        metrics: Option<Arc<dyn Metrics>>,
        health: Arc<dyn Health>,
        trigger: Arc<Notify>,
        progress: tokio::sync::watch::Sender<crate::wait::Reconciled>,
    ) -> Self {
        let retries = RetryQueue::new(
            cfg.retry_backoff_min_duration,
            cfg.retry_backoff_max_duration,
        );
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
        // The first prune runs as soon as the table is initialized, whatever
        // the interval: leftovers in the target from before a restart go at
        // once. (A full round requested by then prunes too.)
        let mut prune_requested = true;
        // Set when a round stopped at the round size with changes left.
        let mut more = true;
        // The table watch of the snapshot the last round read its changes
        // from: it closes on any change that round did not see.
        let mut changes_watch: Option<statedb::Watch> = None;
        let refresh = self.cfg.refresh_interval;
        // Refresh passes run ten times per interval.
        let refresh_tick = (refresh / 10).max(std::time::Duration::from_millis(1));
        let mut next_refresh = (!refresh.is_zero()).then(|| Instant::now() + refresh_tick);
        // (when, table revision then): a status written at or below the
        // revision of a sample older than the interval is older than it.
        let mut samples: std::collections::VecDeque<(Instant, Revision)> =
            std::collections::VecDeque::new();
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
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = watches.wait_async() => {}
                    _ = self.trigger.notified() => full_requested = true,
                    _ = sleep_until_opt(retry_at) => {}
                    _ = sleep_until_opt(full_at) => full_requested = true,
                    _ = sleep_until_opt(next_refresh) => {}
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
            let drain = self.cfg.shutdown_drain_duration;
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
            if let Some(at) = next_refresh.filter(|at| *at <= Instant::now()) {
                let now = Instant::now();
                samples.push_back((now, table.revision(&txn).unwrap_or(0)));
                // Keep the newest sample older than the interval, and the
                // ones after it.
                while samples.len() > 1 && now.duration_since(samples[1].0) >= refresh {
                    samples.pop_front();
                }
                let cutoff = samples
                    .front()
                    .filter(|(t, _)| now.duration_since(*t) >= refresh)
                    .map(|(_, r)| *r);
                if let Some(cutoff) = cutoff {
                    self.mark_for_refresh(&txn, cutoff);
                }
                next_refresh = Some(at + refresh_tick);
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
            } else if prune_requested && initialized {
                prune_requested = false;
                let txn = self.db.read_txn();
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.prune(&txn) => {}
                }
            }
            self.report_health();
        }
        self.health.stopped("reconciler stopped");
        tracing::info!(module_id = %self.module_id, "reconciler stopped");
    }

    /// Marks up to `refresh_per_round` done objects last written at or
    /// below `cutoff` (their status is older than the refresh interval) as
    /// refreshing; the incremental rounds then update them again. The
    /// revision index lists objects by last write, oldest first, so this
    /// reads only what it marks (plus the in-flight ones it skips).
    fn mark_for_refresh(&mut self, txn: &ReadTxn, cutoff: Revision) {
        let table = self.cfg.table.clone();
        let get_status = self.cfg.get_object_status;
        let Ok((oldest, _)) = table.lower_bound_by_revision(txn, 0) else {
            return;
        };
        let stale: Vec<(Arc<Obj>, Revision)> = oldest
            .take_while(|(_, rev)| *rev <= cutoff)
            .filter(|(o, _)| {
                let s = get_status(o);
                s.kind == StatusKind::Done && !s.delete
            })
            .take(self.cfg.refresh_per_round)
            .collect();
        if stale.is_empty() {
            return;
        }
        let Ok(mut wtxn) = self.db.write_txn(&[&table]) else {
            return;
        };
        let refreshing = Status::refreshing();
        for (obj, revision) in stale {
            let mut obj = (self.cfg.clone_object)(&obj);
            (self.cfg.set_object_status)(&mut obj, refreshing.clone());
            // Changed meanwhile: its new version is reconciled anyway.
            let _ = table.compare_and_swap(&mut wtxn, revision, obj);
        }
        wtxn.commit();
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

    /// One incremental round. Returns true if it stopped at the round size
    /// with changes possibly left, and the watch for further changes.
    async fn incremental(
        &mut self,
        txn: &ReadTxn,
        changes: &mut ChangeIterator<Obj>,
    ) -> (bool, Option<statedb::Watch>) {
        let limit = self.cfg.incremental_round_size;
        let get_status = self.cfg.get_object_status;
        let mut work: Vec<Work<Obj>> = Vec::new();
        let mut more = false;
        let mut watch = None;
        match changes.next(txn) {
            Ok((mut iter, w)) => {
                watch = Some(w);
                while work.len() < limit {
                    let Some(change) = iter.next() else { break };
                    if change.deleted {
                        let pk = self.primary_key(&change.object);
                        // Earlier failures of the row no longer count.
                        self.retries.remove(&pk);
                        if self.deleted_by_us.remove(&pk) {
                            continue;
                        }
                        work.push(Work {
                            pk,
                            object: change.object,
                            revision: change.revision,
                            action: Action::HardDelete,
                        });
                        continue;
                    }
                    let status = get_status(&change.object);
                    if !matches!(status.kind, StatusKind::Pending | StatusKind::Refreshing) {
                        // Our own status write (or a foreign one): nothing to
                        // do, but a re-inserted key cancels a pending retry
                        // of its hard delete (the insert wins).
                        if !self.deleted_by_us.is_empty() || self.retries.len() > 0 {
                            let pk = self.primary_key(&change.object);
                            self.deleted_by_us.remove(&pk);
                            if self.retries.is_hard_delete(&pk) {
                                self.retries.remove(&pk);
                            }
                        }
                        continue;
                    }
                    let action = if status.delete {
                        Action::SoftDelete
                    } else {
                        Action::Update
                    };
                    let pk = self.primary_key(&change.object);
                    if !self.deleted_by_us.is_empty() {
                        self.deleted_by_us.remove(&pk);
                    }
                    // A new desired version: earlier failures no longer count.
                    self.retries.remove(&pk);
                    work.push(Work {
                        pk,
                        object: change.object,
                        revision: change.revision,
                        action,
                    });
                }
                more = work.len() >= limit;
            }
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "reading changes failed")
            }
        }
        // Retries that are due, looked up again in this snapshot.
        let now = Instant::now();
        if work.len() < limit {
            for (pk, obj, hard_delete, deleted_at) in self.retries.due(now, limit - work.len()) {
                if work.iter().any(|w| w.pk == pk) {
                    continue;
                }
                let current = self
                    .cfg
                    .table
                    .primary_query(&obj)
                    .and_then(|q| self.cfg.table.get(txn, q).ok().flatten());
                match current {
                    // The key is back in the table: the insert wins.
                    Some(_) if hard_delete => self.retries.remove(&pk),
                    None if hard_delete => work.push(Work {
                        pk,
                        object: obj,
                        revision: deleted_at,
                        action: Action::HardDelete,
                    }),
                    Some((cur, revision)) if get_status(&cur).kind == StatusKind::Error => {
                        let action = if get_status(&cur).delete {
                            Action::SoftDelete
                        } else {
                            Action::Update
                        };
                        work.push(Work {
                            pk,
                            object: cur,
                            revision,
                            action,
                        });
                    }
                    _ => self.retries.remove(&pk),
                }
            }
        }
        if work.is_empty() {
            return (more, watch);
        }
        let outcomes = match self.cfg.batch_operations.clone() {
            Some(batch) => self.run_batch(txn, &*batch, work).await,
            None => self.run_each(txn, work).await,
        };
        let errs: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().cloned())
            .collect();
        self.write_back(outcomes);
        if let Some(m) = &self.metrics {
            m.incremental_reconciliation_errors(&self.module_id, &errs);
        }
        (more, watch)
    }

    /// Runs the round's operations: one after another, or up to
    /// `concurrency` at once. A round holds each key at most once (changes
    /// of one snapshot, plus due retries of other keys), so two operations
    /// on one key never overlap.
    async fn run_each(&self, txn: &ReadTxn, work: Vec<Work<Obj>>) -> Vec<Outcome<Obj>> {
        let ops = self.cfg.operations.clone();
        let n = self.cfg.concurrency;
        if n <= 1 {
            let mut out = Vec::with_capacity(work.len());
            for w in work {
                out.push(self.run_one(txn, &*ops, w).await);
            }
            return out;
        }
        use futures::StreamExt;
        futures::stream::iter(work)
            .map(|w| self.run_one(txn, &*ops, w))
            .buffer_unordered(n)
            .collect()
            .await
    }

    /// One operation: clone the object, run update or delete (a panic
    /// becomes an error), time it when metrics are on.
    async fn run_one(
        &self,
        txn: &ReadTxn,
        ops: &dyn crate::config::Operations<Obj>,
        w: Work<Obj>,
    ) -> Outcome<Obj> {
        let mut object = (self.cfg.clone_object)(&w.object);
        drop(w.object);
        // Timed only when someone records it: a clock read per operation
        // shows at a million objects per second.
        let start = self.metrics.as_ref().map(|_| Instant::now());
        let (op, result) = if w.action.is_delete() {
            (
                OP_DELETE,
                guarded(ops.delete(txn, w.revision, &object)).await,
            )
        } else {
            (
                OP_UPDATE,
                guarded(ops.update(txn, w.revision, &mut object, None)).await,
            )
        };
        if let (Some(m), Some(start)) = (&self.metrics, start) {
            m.incremental_reconciliation_duration(&self.module_id, op, start.elapsed());
        }
        Outcome {
            pk: w.pk,
            object,
            revision: w.revision,
            action: w.action,
            result,
        }
    }

    async fn run_batch(
        &self,
        txn: &ReadTxn,
        batch_ops: &dyn crate::config::BatchOperations<Obj>,
        work: Vec<Work<Obj>>,
    ) -> Vec<Outcome<Obj>> {
        let mut deletes = (Vec::new(), Vec::new());
        let mut updates = (Vec::new(), Vec::new());
        for w in work {
            let entry = BatchEntry {
                object: (self.cfg.clone_object)(&w.object),
                revision: w.revision,
                result: Ok(()),
            };
            let side = if w.action.is_delete() {
                &mut deletes
            } else {
                &mut updates
            };
            side.0.push(entry);
            side.1.push((w.pk, w.action));
        }
        let mut out = Vec::new();
        for (delete, (mut batch, keys)) in [(true, deletes), (false, updates)] {
            if batch.is_empty() {
                continue;
            }
            let start = Instant::now();
            let res = if delete {
                AssertUnwindSafe(batch_ops.delete_batch(txn, &mut batch))
                    .catch_unwind()
                    .await
            } else {
                AssertUnwindSafe(batch_ops.update_batch(txn, &mut batch))
                    .catch_unwind()
                    .await
            };
            if let Some(m) = &self.metrics {
                let op = if delete { OP_DELETE } else { OP_UPDATE };
                m.incremental_reconciliation_duration(&self.module_id, op, start.elapsed());
            }
            let panicked = res.err().map(panic_message);
            for (entry, (pk, action)) in batch.into_iter().zip(keys) {
                let result = match &panicked {
                    Some(msg) => Err(msg.clone()),
                    None => entry.result.map_err(|e| e.to_string()),
                };
                out.push(Outcome {
                    pk,
                    object: entry.object,
                    revision: entry.revision,
                    action,
                    result,
                });
            }
        }
        out
    }

    /// Writes statuses back in one short write transaction, each as a
    /// compare-and-swap on the revision the operation saw: a result for an
    /// object that changed meanwhile is dropped, and the newer version is
    /// reconciled in a later round.
    fn write_back(&mut self, outcomes: Vec<Outcome<Obj>>) {
        let now = Instant::now();
        // Hard deletes have no row to write: settle them first, and open
        // a write transaction only for the rest.
        let mut rows = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            if o.action != Action::HardDelete {
                rows.push(o);
                continue;
            }
            match o.result {
                Ok(()) => self.retries.remove(&o.pk),
                Err(err) => {
                    self.note_failure(&o.pk, &err);
                    self.retries
                        .add_hard_delete(o.pk, Arc::new(o.object), o.revision, err, now);
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        let table = self.cfg.table.clone();
        let mut wtxn = match self.db.write_txn(&[&table]) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "cannot write statuses");
                return;
            }
        };
        // One timestamp for the whole write-back.
        let done = Status::done();
        for mut o in rows {
            match o.result {
                Ok(()) if o.action == Action::SoftDelete => {
                    // Stale (changed or gone) deletes are dropped.
                    if let Ok(Some(_)) = table.compare_and_delete(&mut wtxn, o.revision, &o.object)
                    {
                        self.deleted_by_us.insert(o.pk.clone());
                    }
                    self.retries.remove(&o.pk);
                }
                Ok(()) => {
                    (self.cfg.set_object_status)(&mut o.object, done.clone());
                    let _ = table.compare_and_swap(&mut wtxn, o.revision, o.object);
                    self.retries.remove(&o.pk);
                }
                Err(err) => {
                    let delete = o.action.is_delete();
                    (self.cfg.set_object_status)(&mut o.object, Status::error(delete, &err));
                    let object = Arc::new(o.object);
                    if table
                        .compare_and_swap(&mut wtxn, o.revision, object.clone())
                        .is_ok()
                    {
                        self.note_failure(&o.pk, &err);
                        self.retries.add(o.pk, object, err, now);
                    }
                }
            }
        }
        wtxn.commit();
    }

    /// Logs a failure at `warn` once per failure streak of an object (the
    /// first failure after a success or a new version), later ones at
    /// `debug`.
    fn note_failure(&self, pk: &Key, err: &str) {
        let key = String::from_utf8_lossy(pk);
        if self.retries.contains(pk) {
            tracing::debug!(module_id = %self.module_id, key = %key, error = %err, "operation failed again");
        } else {
            tracing::warn!(module_id = %self.module_id, key = %key, error = %err, "operation failed; retrying with backoff");
        }
    }

    /// Removes from the target what no object asks for; returns the error.
    /// A failed prune is reported in health until a later prune succeeds.
    async fn prune(&mut self, txn: &ReadTxn) -> Option<String> {
        let all = match self.cfg.table.all(txn) {
            Ok(all) => all,
            Err(e) => return Some(format!("prune: {e}")),
        };
        let start = Instant::now();
        let res = guarded(self.cfg.operations.prune(txn, all)).await;
        if let Some(m) = &self.metrics {
            m.full_reconciliation_duration(&self.module_id, OP_PRUNE, start.elapsed());
        }
        match res {
            Ok(()) => {
                tracing::debug!(module_id = %self.module_id, "pruned");
                self.prune_error = None;
                None
            }
            Err(e) => {
                let e = format!("prune: {e}");
                tracing::warn!(module_id = %self.module_id, error = %e, "prune failed");
                self.prune_error = Some(e.clone());
                Some(e)
            }
        }
    }

    /// Full reconciliation: prune, then update every object comparing with
    /// the target. Failures get an error status and join the retry queue.
    async fn full(&mut self, txn: &ReadTxn) {
        let ops = self.cfg.operations.clone();
        let table = self.cfg.table.clone();
        let mut errs: Vec<String> = self.prune(txn).await.into_iter().collect();
        let mut outcomes = Vec::new();
        // The iterator owns its snapshot, so it can be held across the
        // operations' awaits; no need to copy every object out first.
        let objects = match table.all(txn) {
            Ok(objects) => objects,
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "cannot list objects");
                return;
            }
        };
        for (obj, revision) in objects {
            let status = (self.cfg.get_object_status)(&obj);
            // Pending objects and deletes belong to incremental rounds.
            if status.delete || status.kind == StatusKind::Pending {
                continue;
            }
            let mut object = (self.cfg.clone_object)(&obj);
            let mut changed = false;
            let start = Instant::now();
            let result = guarded(ops.update(txn, revision, &mut object, Some(&mut changed))).await;
            if let Some(m) = &self.metrics {
                m.full_reconciliation_duration(&self.module_id, OP_UPDATE, start.elapsed());
                if result.is_ok() && changed {
                    m.full_reconciliation_out_of_sync(&self.module_id);
                }
            }
            if let Err(e) = &result {
                errs.push(e.clone());
            }
            // Every result is written back (compare-and-swap, so a result
            // for an object changed meanwhile is dropped): the object as the
            // update left it, with a fresh done status or the error.
            outcomes.push(Outcome {
                pk: self.primary_key(&obj),
                object,
                revision,
                action: Action::Update,
                result,
            });
        }
        if !outcomes.is_empty() {
            self.write_back(outcomes);
        }
        if let Some(m) = &self.metrics {
            m.full_reconciliation_errors(&self.module_id, &errs);
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
