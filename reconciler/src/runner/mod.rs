//! The reconciler loop, built from parts that own their state:
//!
//! - [`scheduler`]: the in-flight set (concurrency, one operation per key,
//!   work queued behind a busy key);
//! - [`op`]: operations as owned futures (timeout, panic, metrics);
//! - [`write_back`]: outcomes into the table, a function of (table,
//!   outcomes);
//! - the retry queue (`crate::retries`), the [`breaker`], the
//!   [`schedule`] of timers, [`full`] rounds and [`refresh`];
//! - [`work`]: what flows between them, and the guarded user callbacks.
//!
//! The loop only moves work between them: read changes and due retries
//! into the scheduler, start what may start, collect what finished,
//! write it back, publish progress and health, and wait.

mod breaker;
mod full;
mod op;
mod own_writes;
mod refresh;
mod schedule;
mod scheduler;
mod work;
mod write_back;

use std::collections::BTreeMap;

use crate::fast_hash::FastSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use statedb::{ChangeIterator, Db, Key, ReadTxn, Revision, Table, TxnError, Watch, WriteTxn};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::{Health, MAX_JOINED_ERRORS, join_errors};
use crate::report::{Failing, Reconciled};
use crate::retries::RetryQueue;
use crate::settings::Settings;
use crate::status::StatusKind;
use crate::write_log::{Reader, Version};

use breaker::Breaker;
use full::{FullRound, log_prune};
use op::OpRunner;
use own_writes::OwnWrites;
use refresh::{Refresh, WallClock};
use schedule::{Backoff, Schedule, sleep_until};
use scheduler::Scheduler;
use work::{Action, Callbacks, Origin, Outcome, Work, panic_message};
use write_back::{Settled, Written, settle_hard_delete, write_rows};

/// Requests from the handle to the loop.
#[derive(Default)]
pub(crate) struct Signals {
    /// A full round.
    pub full: Notify,
    /// A prune.
    pub prune: Notify,
}

/// What the loop shares with its handle and supervisor.
#[derive(Clone)]
pub(crate) struct Shared {
    pub db: Db,
    pub module_id: Arc<str>,
    pub health: Arc<dyn Health>,
    pub signals: Arc<Signals>,
    pub progress: Arc<tokio::sync::watch::Sender<Reconciled>>,
    /// This reconciler's registration in its table's log of status
    /// writes (`crate::write_log`), from build until the job ends: a
    /// reader that joined late would miss what it must see.
    pub writes: Arc<Reader>,
}

/// Revisions of changes taken from the change iterator and not yet
/// settled: everything up to `consumed` below the first of them is done.
#[derive(Default)]
struct Progress {
    consumed: Revision,
    /// How many unsettled works stand for each revision (their `since`).
    outstanding: BTreeMap<Revision, usize>,
}

impl Progress {
    fn add(&mut self, since: Revision) {
        *self.outstanding.entry(since).or_default() += 1;
    }

    fn settle(&mut self, since: Revision) {
        if let Some(n) = self.outstanding.get_mut(&since) {
            *n -= 1;
            if *n == 0 {
                self.outstanding.remove(&since);
            }
        }
    }

    fn processed(&self) -> Revision {
        match self.outstanding.first_key_value() {
            Some((r, _)) => self.consumed.min(r.saturating_sub(1)),
            None => self.consumed,
        }
    }
}

/// How long a write-back waits (in the lock's queue, without blocking a
/// thread) before it reports the wait and tries again later.
const WRITE_BACK_LOCK_WAIT: Duration = Duration::from_millis(100);

pub(crate) struct Runner<Obj: Send + Sync + 'static> {
    s: Settings<Obj>,
    sh: Shared,
    cb: Callbacks<Obj>,
    ops: Arc<OpRunner<Obj>>,
    retries: RetryQueue<Obj>,
    sched: Scheduler<Obj>,
    breaker: Breaker,
    /// Finished, not yet written back.
    unwritten: Vec<Outcome<Obj>>,
    /// When the oldest of `unwritten` finished (for the write-back window).
    unwritten_since: Option<Instant>,
    write_back: Backoff,
    /// The revision of this reconciler's last status write per key: the
    /// change it produces is not work, whatever the status getter reads.
    own_writes: OwnWrites,
    /// Rows removed after a successful soft delete: their delete needs no
    /// second delete.
    deleted_by_us: FastSet<Key>,
    progress: Progress,
    prune_error: Option<String>,
    /// A user callback that panicked outside an object's work, or a table
    /// read that failed: shown in health until a clean pass.
    fault: Option<String>,
    full: Option<FullRound<Obj>>,
    full_requested: bool,
    prune_requested: bool,
    schedule: Schedule,
    refresh: Refresh<Obj>,
    clock: WallClock,
    last_health: Option<(bool, String)>,
    /// The generations of the retry queue and the in-flight set when the
    /// failing list was last published: unchanged, it is not rebuilt.
    failing_seen: Option<(u64, u64)>,
    /// The object count of the last healthy report (`None` after an
    /// unhealthy one): an unchanged healthy report is not rebuilt.
    healthy_count: Option<usize>,
}

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    pub fn new(s: Settings<Obj>, sh: Shared) -> Self {
        let c = &s.config;
        let cb = Callbacks::new(s.table.clone(), s.get_status.clone(), s.set_status.clone());
        let ops = Arc::new(OpRunner {
            ops: s.operations.clone(),
            batch: s.batch_operations.clone(),
            metrics: s.metrics.clone(),
            module_id: sh.module_id.clone(),
            timeout: c.operation_timeout,
            cb: cb.clone(),
        });
        let refresh = Refresh::new(c.refresh.0, c.refresh.1);
        Runner {
            retries: RetryQueue::new(c.retry_backoff.0, c.retry_backoff.1, c.retry_jitter),
            breaker: Breaker::new(c.breaker.0, c.breaker.1),
            schedule: Schedule::new(
                c.full_reconciliation_interval,
                c.prune_interval,
                refresh.tick(),
            ),
            refresh,
            cb,
            ops,
            sched: Scheduler::new(),
            unwritten: Vec::new(),
            unwritten_since: None,
            write_back: Backoff::default(),
            own_writes: OwnWrites::default(),
            deleted_by_us: FastSet::default(),
            progress: Progress::default(),
            prune_error: None,
            fault: None,
            full: None,
            full_requested: false,
            // The first prune runs as soon as the table is initialized:
            // leftovers in the target from before a restart go at once.
            prune_requested: true,
            clock: WallClock::new(),
            last_health: None,
            failing_seen: None,
            healthy_count: None,
            s,
            sh,
        }
    }

    fn round_size(&self) -> usize {
        self.s.config.incremental_round_size
    }

    /// Registers the change iterator, retrying with backoff (Degraded
    /// meanwhile) until it works or `cancel` fires.
    async fn follow(&mut self, cancel: &CancellationToken) -> Option<ChangeIterator<Obj>> {
        let table = self.s.table.clone();
        let mut backoff = Backoff::default();
        loop {
            let res = lock_table(&self.sh.db, &self.s.table)
                .await
                .and_then(|mut w| {
                    let c = table.changes(&mut w);
                    w.commit();
                    c
                });
            match res {
                Ok(c) => return Some(c),
                Err(e) => {
                    let wait = backoff.failed(e.to_string());
                    tracing::warn!(module_id = %self.sh.module_id, error = %e, "reconciler cannot follow the table yet; retrying");
                    self.sh
                        .health
                        .degraded("Reconciler cannot follow the table", &e.to_string());
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The loop; returns when `cancel` fires. Operations in flight then
    /// get up to `shutdown_drain` to finish (their results are
    /// committed); after that they are dropped.
    pub async fn run(mut self, cancel: CancellationToken) {
        let Some(mut changes) = self.follow(&cancel).await else {
            self.sh.health.stopped("reconciler stopped");
            return;
        };
        tracing::info!(module_id = %self.sh.module_id, table = %self.s.table.name(), "reconciler started");
        // The watch of the snapshot changes were last read from (`None`:
        // read now), and whether that read stopped with changes left.
        let mut watch: Option<Watch> = None;
        let mut more = false;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let mut progressed = false;
            let txn = self.sh.db.read_txn();
            let (initialized, init_watch) = self
                .s
                .table
                .initialized(&txn)
                .unwrap_or_else(|_| (false, Watch::closed_watch()));

            let room = self.round_size().saturating_sub(self.sched.queued_len());
            if room > 0 && (more || watch.as_ref().is_none_or(Watch::is_closed)) {
                let (taken, queued, w, m) = self.gather(&txn, &mut changes, room);
                progressed |= taken;
                watch = Some(w);
                more = m;
                // The limiter spaces rounds that brought work (not passes
                // that only saw this reconciler's own status writes).
                if queued && !self.rate_limit(&cancel).await {
                    break;
                }
            }
            progressed |= self.take_retries();

            // A prune (alone or opening a full round) runs alone: what it
            // sees must not race operations adding to the target.
            let prune_waits =
                initialized && self.full.is_none() && (self.full_requested || self.prune_requested);
            if prune_waits && self.sched.running_len() == 0 {
                if !self.prune(&cancel).await {
                    break;
                }
                progressed = true;
            }
            if let Some(full) = &mut self.full {
                let room = self
                    .s
                    .config
                    .incremental_round_size
                    .saturating_sub(self.sched.queued_len());
                full.feed(&self.cb, &mut self.sched, room, &self.sh.db.read_txn());
            }
            let prune_waits =
                initialized && self.full.is_none() && (self.full_requested || self.prune_requested);
            // Operations that finish without awaiting run back to back,
            // up to a round's worth per pass (then the loop yields): one
            // pass per operation cost 3-5x the CPU per object. Freed slots
            // take waiting work before the write-back decides whether the
            // reconciler is backlogged.
            let mut budget = self.round_size();
            loop {
                if !prune_waits {
                    progressed |= self.start_units();
                }
                let mut done = 0;
                while let Some(outs) = self.sched.ready() {
                    done += outs.len().max(1);
                    self.finished(outs);
                }
                if done == 0 {
                    break;
                }
                progressed = true;
                budget = budget.saturating_sub(done);
                if budget == 0 {
                    if !prune_waits {
                        self.start_units();
                    }
                    break;
                }
            }
            if !self.unwritten.is_empty() && self.write_back.ready() && self.write_back_due() {
                self.flush().await;
                progressed = true;
            }
            self.finish_full_round();
            if self.schedule.refresh_due() {
                self.refresh
                    .mark(&self.sh.db, &self.cb, self.sh.writes.log(), &self.clock);
            }
            self.publish();
            self.report_health();
            if progressed {
                // Never a hot loop: let the runtime run others between
                // batches, even when operations complete without awaiting.
                tokio::task::yield_now().await;
                continue;
            }

            let room = self.round_size().saturating_sub(self.sched.queued_len()) > 0;
            let changed = watch.clone().filter(|_| room);
            let retry_at = self.retries.next_due().filter(|_| room);
            let write_back_at = if self.unwritten.is_empty() {
                None
            } else {
                match (self.write_back.due, self.window_ends()) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                }
            };
            // A due timer whose round is already requested or running is
            // disarmed: left armed in the past it wakes the select at once,
            // forever (a round longer than its interval spun the loop and
            // stopped tokio's paused clock).
            let full_idle = self.full.is_none() && !self.full_requested;
            let full_at = self.schedule.next_full.filter(|_| initialized && full_idle);
            let prune_at = self
                .schedule
                .next_prune
                .filter(|_| initialized && full_idle && !self.prune_requested);
            tokio::select! {
                _ = cancel.cancelled() => break,
                outs = self.sched.next(), if self.sched.running_len() > 0 => self.finished(outs),
                _ = wait_watch(changed) => {}
                _ = init_watch.closed(), if !initialized => {}
                _ = self.sh.signals.full.notified() => self.full_requested = true,
                _ = self.sh.signals.prune.notified() => self.prune_requested = true,
                // One timer for every deadline (registering six per pass
                // cost more than the pass); what came due is sorted out
                // after it fires.
                _ = sleep_until(earliest(&[
                    retry_at,
                    write_back_at,
                    full_at,
                    prune_at,
                    self.schedule.next_refresh,
                    self.breaker.reopens_at(),
                ])) => {
                    let now = Instant::now();
                    if full_at.is_some_and(|t| t <= now) {
                        self.full_requested = true;
                    }
                    if prune_at.is_some_and(|t| t <= now) {
                        self.prune_requested = true;
                    }
                }
            }
        }
        self.shutdown().await;
    }

    /// Waits for the rate limiter, if any; false if cancelled. A panicking
    /// limiter is reported and skipped.
    async fn rate_limit(&mut self, cancel: &CancellationToken) -> bool {
        let Some(limiter) = self.s.rate_limiter.clone() else {
            return true;
        };
        tokio::select! {
            _ = cancel.cancelled() => false,
            r = AssertUnwindSafe(limiter.wait()).catch_unwind() => {
                if let Err(p) = r {
                    self.fault = Some(panic_message("rate limiter", p));
                }
                true
            }
        }
    }

    /// Reads up to `room` changes into the scheduler. Returns whether any
    /// change was read, whether any work was queued, the watch for further
    /// changes, and whether it stopped with changes left.
    fn gather(
        &mut self,
        txn: &ReadTxn,
        changes: &mut ChangeIterator<Obj>,
        room: usize,
    ) -> (bool, bool, Watch, bool) {
        let (iter, watch) = match changes.next(txn) {
            Ok(x) => x,
            Err(e) => {
                self.fault = Some(format!("reading changes failed: {e}"));
                return (false, false, Watch::closed_watch(), false);
            }
        };
        // Changes looked at per call, skipped ones included: bounded so
        // that the loop yields between batches.
        let budget = room.max(self.round_size()).saturating_mul(4);
        let mut queued = 0;
        let mut read = 0;
        let mut last = None;
        let mut more = false;
        let mut fault = false;
        // Every change read now is above what was consumed before: a
        // version read may stand for earlier writes of its key that the
        // iterator folded into it (a user's write under other
        // reconcilers' status writes), so its work counts from here.
        let floor = self.progress.consumed.saturating_add(1);
        for change in iter {
            read += 1;
            last = Some(change.revision);
            match self.classify(txn, change, floor) {
                Ok(q) => queued += usize::from(q),
                Err(e) => {
                    fault = true;
                    self.fault = Some(e);
                }
            }
            if queued >= room || read >= budget {
                more = true;
                break;
            }
        }
        if !fault
            && self
                .fault
                .as_deref()
                .is_some_and(|f| !f.starts_with("rate limiter"))
        {
            self.fault = None;
        }
        if more {
            if let Some(last) = last {
                self.progress.consumed = self.progress.consumed.max(last);
            }
        } else {
            let rev = self.s.table.revision(txn).unwrap_or(0);
            self.progress.consumed = self.progress.consumed.max(rev);
        }
        self.own_writes.forget_through(self.progress.consumed);
        (read > 0, queued > 0, watch, more)
    }

    /// Turns one change into work, or recognises it as none. Returns
    /// whether work was queued.
    fn classify(
        &mut self,
        txn: &ReadTxn,
        change: statedb::Change<Obj>,
        floor: Revision,
    ) -> Result<bool, String> {
        let pk = self.cb.primary_key(&change.object)?;
        let revision = change.revision;
        // The work stands for the earliest write it may carry: a version
        // written by a reconciler over a user's write carries that write
        // (the change iterator folds it, even below what was read before,
        // when a read in pieces passed it).
        let carried = match self.sh.writes.log().version(revision) {
            Version::StatusWrite { desired } if desired > 0 => desired,
            _ => revision,
        };
        let since = floor.min(carried);
        if change.deleted {
            // The delete replaces earlier failures of the row, and stands
            // for what they stood for (a failed soft delete whose row
            // another reconciler removed is still not out of the target).
            let since = self.retries.since_of(&pk).map_or(since, |s| s.min(since));
            self.retries.remove(&pk);
            if self.deleted_by_us.remove(&pk) {
                return Ok(false);
            }
            self.queue(Work {
                pk,
                object: change.object,
                revision,
                action: Action::HardDelete,
                origin: Origin::Change,
                since,
                txn: txn.clone(),
            });
            return Ok(true);
        }
        // This reconciler's own status write-back: never work, whatever
        // the status getter reads back.
        if self.own_writes.contains(revision) {
            return Ok(false);
        }
        self.deleted_by_us.remove(&pk);
        let work = |action| Work {
            pk: pk.clone(),
            object: change.object.clone(),
            revision,
            action,
            origin: Origin::Change,
            since,
            txn: txn.clone(),
        };
        let status = match self.cb.status(&change.object) {
            Ok(s) if !s.is_pending() && self.is_new_version(s, revision) => {
                // A version that kept a status written into an older one
                // (a clone changed and inserted, say): new desired state,
                // never silently ignored.
                (StatusKind::Pending, s.delete)
            }
            Ok(s) => (s.kind, s.delete),
            Err(e) => {
                // A retry (and health Degraded), but no status written:
                // without reading the status there is no knowing whether
                // it asked for a delete, and an error status would turn a
                // soft delete into an update.
                let failed_since = self.retries.since_of(&pk).map_or(since, |s| s.min(since));
                self.retries
                    .add(pk, change.object, failed_since, e, Instant::now());
                return Ok(false);
            }
        };
        match status {
            (StatusKind::Pending | StatusKind::Refreshing, delete) => {
                // A new desired version replaces the retry, and stands for
                // what the retry stood for: a wait up to the failed
                // version returns only once the target holds a version.
                let failed_since = self.retries.since_of(&pk);
                self.retries.remove(&pk);
                let action = if delete {
                    Action::SoftDelete
                } else {
                    Action::Update
                };
                let mut w = work(action);
                if let Some(s) = failed_since {
                    w.since = w.since.min(s);
                }
                self.queue(w);
                Ok(true)
            }
            (kind, _) => {
                // Another writer's change that leaves this reconciler's
                // status as it was (another reconciler's status, say). A
                // re-inserted key cancels a pending retry of its hard
                // delete (the insert wins); an error status always has a
                // retry, so nothing is left stuck in error.
                if self.retries.is_hard_delete(&pk) {
                    self.retries.remove(&pk);
                }
                if kind == StatusKind::Error
                    && !self.retries.contains(&pk)
                    && !self.sched.holds(&pk)
                {
                    self.retries
                        .recheck(pk, change.object, since, Instant::now());
                }
                Ok(false)
            }
        }
    }

    /// Is the version at `revision`, whose status for this reconciler is
    /// `status` (not pending), new desired state? Only if a reconciler
    /// wrote that status (a status made by the writer, `Status::done()`,
    /// is its word, as in the reference) into an older version, and the
    /// version since carries a user's write after it. Other reconcilers'
    /// status writes carry none, so they never make work here.
    fn is_new_version(&self, status: &crate::status::Status, revision: Revision) -> bool {
        let Some(written) = status.written() else {
            return false;
        };
        if status.written_by_reconciler_at(revision) {
            return false;
        }
        match self.sh.writes.log().version(revision) {
            Version::User => true,
            Version::StatusWrite { desired } => desired > written,
            // Written before this reconciler joined (a restart): another
            // writer's version since its own, of unknown kind. One more
            // operation settles it; skipping could miss a user's write.
            Version::Unknown => true,
        }
    }

    /// Queues work; work it replaces (same key, not started) is settled.
    fn queue(&mut self, mut w: Work<Obj>) {
        // Work replacing queued work stands for what that stood for too.
        if let Some(old) = self.sched.queued_since(&w.pk) {
            w.since = w.since.min(old);
        }
        if w.origin == Origin::Change {
            self.progress.add(w.since);
        }
        if let Some(old) = self.sched.queue(w) {
            self.settle_progress(old.origin, old.since);
        }
    }

    fn settle_progress(&mut self, origin: Origin, since: Revision) {
        match origin {
            Origin::Change => self.progress.settle(since),
            Origin::Full => {
                if let Some(f) = &mut self.full {
                    f.outstanding = f.outstanding.saturating_sub(1);
                }
            }
            Origin::Retry => {}
        }
    }

    /// Moves due retries (of keys not already in work) into the
    /// scheduler, each looked up again in a fresh snapshot.
    fn take_retries(&mut self) -> bool {
        let room = self.round_size().saturating_sub(self.sched.queued_len());
        let now = Instant::now();
        if room == 0 || self.retries.next_due().is_none_or(|t| t > now) {
            return false;
        }
        let sched = &self.sched;
        let due = self.retries.take_due(now, room, |k| sched.holds(k));
        if due.is_empty() {
            return false;
        }
        let txn = self.sh.db.read_txn();
        for d in due {
            let current = self.cb.current(&txn, &d.object);
            let w = |object, revision, action| Work {
                pk: d.key.clone(),
                object,
                revision,
                action,
                origin: Origin::Retry,
                since: d.since,
                txn: txn.clone(),
            };
            match current {
                Err(e) => {
                    let w = w(d.object.clone(), d.since, Action::Update);
                    self.unwritten.push(Outcome::of(w, None, Err(e), false));
                }
                // The key is back in the table: its current row is what
                // counts, looked at below like any retry. (Dropping the
                // entry lost the new version: a failed delete's retry had
                // replaced the new version's own retry for the key.)
                Ok(None) if d.hard_delete => {
                    self.queue(w(d.object.clone(), d.since, Action::HardDelete));
                }
                Ok(None) => self.retries.remove(&d.key),
                Ok(Some((cur, revision))) => match self.cb.status(&cur) {
                    Err(e) => {
                        // As in `classify`: a retry, no status written.
                        self.retries.add(d.key.clone(), cur, d.since, e, now);
                    }
                    // Done: fixed meanwhile, unless an operation failed and
                    // its error status never reached the row (its write
                    // lost a race): the Done read is then the one from
                    // before the failure, and the failure stands.
                    Ok(s) if s.kind == StatusKind::Done && !d.failed => self.retries.remove(&d.key),
                    Ok(s) if s.kind == StatusKind::Done => {
                        self.queue(w(cur, revision, Action::Update));
                    }
                    Ok(s) => {
                        let action = if s.delete {
                            Action::SoftDelete
                        } else {
                            Action::Update
                        };
                        self.queue(w(cur, revision, action));
                    }
                },
            }
        }
        true
    }

    /// Starts units while slots (and the breaker) allow: single
    /// operations, or batches of what can start when batch operations
    /// are given.
    fn start_units(&mut self) -> bool {
        let mut started = false;
        loop {
            let free = self
                .s
                .config
                .concurrency
                .saturating_sub(self.sched.running_len())
                .min(self.breaker.allowed());
            if free == 0 || self.sched.startable() == 0 {
                return started;
            }
            let unit = match self.ops.batch.clone() {
                Some(batch) => {
                    let work = self.sched.take(self.round_size());
                    self.ops.batch(batch, work)
                }
                None => {
                    let Some(w) = self.sched.take_one() else {
                        return started;
                    };
                    self.ops.single(w)
                }
            };
            self.breaker.started();
            started = true;
            // Polled once here: a unit that finishes without awaiting
            // (a target in memory) skips the in-flight set's task
            // allocation and wake-up.
            let mut unit = unit;
            match (&mut unit).now_or_never() {
                Some(outs) => self.finished(outs),
                None => self.sched.spawn(unit),
            }
        }
    }

    /// A unit finished: free its keys, feed the breaker, keep the
    /// outcomes for the write-back.
    fn finished(&mut self, outs: Vec<Outcome<Obj>>) {
        for o in &outs {
            self.sched.release(&o.pk);
            self.breaker.record(&o.pk, o.result.is_ok());
        }
        if self.unwritten.is_empty() && !outs.is_empty() {
            self.unwritten_since = Some(Instant::now());
        }
        self.unwritten.extend(outs);
    }

    /// When the write-back window of the oldest unwritten outcome ends.
    fn window_ends(&self) -> Option<Instant> {
        self.unwritten_since
            .map(|t| crate::time::deadline(t, self.s.config.write_back_window))
    }

    /// Whether to write back now: at once unless work waits for a slot
    /// (backlogged), then once the window has passed or a round's worth
    /// of outcomes is collected.
    fn write_back_due(&self) -> bool {
        self.sched.queued_len() == 0
            || self.unwritten.len() >= self.round_size()
            || self.window_ends().is_none_or(|t| t <= Instant::now())
    }

    /// Writes back what finished, in one short write transaction. If the
    /// transaction cannot be had (the table is held elsewhere, or by a
    /// task on this thread across an `.await`), every outcome is kept and
    /// the write-back retried with backoff; health says Degraded if that
    /// lasts.
    async fn flush(&mut self) {
        // Sized for a round up front: grown by doubling from empty on
        // every flush, the buffer was reallocated into fresh pages each
        // time (a fifth of the CPU of a 100k backlog went to page faults).
        let capacity = self.round_size().min(4096);
        let outcomes = std::mem::replace(&mut self.unwritten, Vec::with_capacity(capacity));
        self.unwritten_since = None;
        let (hard, rows): (Vec<_>, Vec<_>) = outcomes
            .into_iter()
            .partition(|o| o.action == Action::HardDelete);
        let mut written: Vec<Written<Obj>> = hard.into_iter().map(settle_hard_delete).collect();
        if !rows.is_empty() {
            match lock_table(&self.sh.db, &self.s.table).await {
                Ok(mut wtxn) => {
                    written.extend(write_rows(
                        &self.cb,
                        self.sh.writes.log(),
                        &mut wtxn,
                        rows,
                        self.clock.now(),
                    ));
                    wtxn.commit();
                    self.write_back.succeeded();
                }
                Err(e) => {
                    if self.write_back.failures == 0 {
                        tracing::warn!(module_id = %self.sh.module_id, error = %e, "cannot write statuses yet; keeping the results and retrying");
                    }
                    self.write_back
                        .failed(format!("writing statuses back failed: {e}"));
                    self.unwritten = rows;
                    self.unwritten_since = Some(Instant::now());
                }
            }
        }
        let mut errs = Vec::new();
        let mut incremental = false;
        let mut full_errs = Vec::new();
        for w in written {
            incremental |= w.origin != Origin::Full;
            if let Settled::Failed { error, .. } = &w.settled {
                if w.origin == Origin::Full {
                    full_errs.push(error.clone());
                } else {
                    errs.push(error.clone());
                }
            }
            self.settle(w);
        }
        if let Some(f) = &mut self.full {
            f.errors.extend(full_errs);
        }
        if let Some(m) = &self.s.metrics
            && incremental
        {
            m.incremental_reconciliation_errors(&self.sh.module_id, &errs);
        }
    }

    /// Acts on what became of one outcome.
    fn settle(&mut self, w: Written<Obj>) {
        let now = Instant::now();
        match w.settled {
            Settled::Done { own } => {
                self.retries.remove_up_to(&w.pk, w.since, now);
                if let Some(own) = own {
                    self.own_writes.add(own);
                }
                if w.origin == Origin::Full
                    && w.changed
                    && let Some(m) = &self.s.metrics
                {
                    m.full_reconciliation_out_of_sync(&self.sh.module_id);
                }
            }
            Settled::SoftDeleted => {
                self.retries.remove_up_to(&w.pk, w.since, now);
                self.deleted_by_us.insert(w.pk.clone());
            }
            Settled::Failed { object, error, own } => {
                if let Some(own) = own {
                    self.own_writes.add(own);
                }
                let key = String::from_utf8_lossy(&w.pk).into_owned();
                if self.retries.contains(&w.pk) {
                    tracing::debug!(module_id = %self.sh.module_id, key = %key, error = %error, "operation failed again");
                } else {
                    tracing::warn!(module_id = %self.sh.module_id, key = %key, error = %error, "operation failed; retrying with backoff");
                }
                // A failed update that settles after the failed delete of its
                // row (its status write waited for the lock) must not turn
                // the delete back into an update, unless the key is back.
                let row_gone =
                    || matches!(self.cb.current(&self.sh.db.read_txn(), &object), Ok(None));
                if w.action == Action::HardDelete {
                    self.retries
                        .add_hard_delete(w.pk.clone(), object, w.since, error, now);
                } else if self.retries.is_hard_delete(&w.pk) && row_gone() {
                    tracing::debug!(module_id = %self.sh.module_id, key = %key, "an update failed after its row was deleted; the delete stands");
                } else {
                    self.retries.add(w.pk.clone(), object, w.since, error, now);
                }
            }
            Settled::Lost { object } => {
                // The row changed under the operation. Newer work queued
                // for the key covers it; otherwise look at the row again
                // now (another reconciler's status write may carry this
                // reconciler's old error, which nothing else would retry).
                if !self.sched.is_queued(&w.pk) {
                    self.retries.recheck(w.pk.clone(), object, w.since, now);
                }
            }
            Settled::Gone => self.retries.remove_up_to(&w.pk, w.since, now),
        }
        self.settle_progress(w.origin, w.since);
    }

    /// Prunes (and starts a full round if one was asked for). False if
    /// cancelled meanwhile.
    async fn prune(&mut self, cancel: &CancellationToken) -> bool {
        let txn = self.sh.db.read_txn();
        let objects = match self.s.table.all(&txn) {
            Ok(o) => o,
            Err(e) => {
                self.prune_error = Some(format!("prune: {e}"));
                self.prune_requested = false;
                self.schedule.prune_done();
                return true;
            }
        };
        let full = self.full_requested;
        self.full_requested = false;
        self.prune_requested = false;
        self.sh.progress.send_modify(|p| {
            p.prunes_started += 1;
            if full {
                p.full_rounds_started += 1;
            }
        });
        let res = tokio::select! {
            _ = cancel.cancelled() => return false,
            r = self.ops.prune(&txn, objects) => r,
        };
        self.prune_error = log_prune(&self.sh.module_id, res);
        self.sh
            .progress
            .send_modify(|p| p.prunes = p.prunes_started);
        if full {
            match self.s.table.all(&txn) {
                Ok(objects) => {
                    self.full = Some(FullRound::new(objects, self.prune_error.clone()));
                }
                Err(e) => self.fault = Some(format!("full round: {e}")),
            }
        }
        self.schedule.prune_done();
        true
    }

    fn finish_full_round(&mut self) {
        if !self.full.as_ref().is_some_and(FullRound::finished) {
            return;
        }
        let Some(full) = self.full.take() else { return };
        if let Some(m) = &self.s.metrics {
            m.full_reconciliation_errors(&self.sh.module_id, &full.errors);
        }
        self.schedule.full_done();
        self.sh
            .progress
            .send_modify(|p| p.full_rounds = p.full_rounds_started);
    }

    /// Publishes progress when it moved.
    fn publish(&mut self) {
        let revision = self.progress.processed();
        // Processed and not failing, not only read: a change read and then
        // dropped by a stop (with the retries) must still be learnable
        // from the log after a restart.
        let settled = self
            .retries
            .low_watermark()
            .map_or(revision, |low| revision.min(low.saturating_sub(1)));
        self.sh.writes.read_up_to(settled);
        let errors = self.retries.len();
        let low = self.retries.low_watermark();
        let unsettled = match (low, self.progress.outstanding.first_key_value()) {
            (Some(a), Some((&b, _))) => Some(a.min(b)),
            (a, b) => a.or(b.map(|(&r, _)| r)),
        };
        let hard = self.retries.hard_deletes();
        let in_flight = self.sched.busy_len();
        let now = Instant::now();
        // Only the keys shown are looked at (the queue may hold every
        // object during an outage), none at all when nothing fails, and
        // none when neither the queue nor the in-flight set moved since
        // the list was last built (the list would come out the same, as
        // `same_failures` compares it).
        let seen = (self.retries.generation(), self.sched.generation());
        let failing: Option<Vec<Failing>> = (self.failing_seen != Some(seen)).then(|| {
            self.retries
                .info(Reconciled::MAX_KEYS)
                .into_iter()
                .map(|r| Failing {
                    key: self.cb.key_text(&r.key),
                    attempts: r.attempts,
                    error: r.error,
                    hard_delete: r.hard_delete,
                    retry_in: r
                        .due
                        .filter(|_| !self.sched.holds(&r.key))
                        .map(|d| d.saturating_duration_since(now)),
                })
                .collect()
        });
        self.failing_seen = Some(seen);
        let prune_error = self.prune_error.clone();
        {
            let p = self.sh.progress.borrow();
            if p.revision >= revision
                && p.errors == errors
                && p.lowest_failing == low
                && p.lowest_unsettled == unsettled
                && p.pending_hard_deletes == hard
                && p.in_flight == in_flight
                && p.running
                && p.prune_error == prune_error
                && failing
                    .as_ref()
                    .is_none_or(|f| same_failures(&p.failing, f))
            {
                return;
            }
        }
        self.sh.progress.send_modify(|p| {
            p.running = true;
            p.revision = p.revision.max(revision);
            p.errors = errors;
            if let Some(failing) = failing {
                p.error_keys = failing.iter().map(|f| f.key.clone()).collect();
                p.failing = failing;
            }
            p.lowest_failing = low;
            p.lowest_unsettled = unsettled;
            p.pending_hard_deletes = hard;
            p.in_flight = in_flight;
            p.prune_error = prune_error;
        });
    }

    fn report_health(&mut self) {
        if let Some(m) = &self.s.metrics {
            m.retry_queue_size(&self.sh.module_id, self.retries.len());
        }
        let write_back = self
            .write_back
            .error
            .clone()
            .filter(|_| self.write_back.failures >= 3);
        let faults: Vec<String> = [
            self.fault.clone(),
            write_back,
            self.breaker.message(),
            self.prune_error.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let report = if faults.is_empty() && self.retries.len() == 0 {
            let n = self
                .s
                .table
                .num_objects(&self.sh.db.read_txn())
                .unwrap_or(0);
            // The common pass: healthy before and after, same count.
            if self.healthy_count == Some(n) {
                return;
            }
            self.healthy_count = Some(n);
            (true, format!("OK, {n} object(s)"))
        } else {
            // Only the errors shown are looked up: a long outage queues
            // every object.
            let errs = faults
                .iter()
                .map(String::as_str)
                .chain(self.retries.errors(MAX_JOINED_ERRORS))
                .take(MAX_JOINED_ERRORS);
            let mut message = join_errors(errs);
            let total = faults.len() + self.retries.len();
            if total > MAX_JOINED_ERRORS {
                let omitted = total - MAX_JOINED_ERRORS;
                message.push_str(&format!("\n{omitted} further errors omitted"));
            }
            self.healthy_count = None;
            (false, message)
        };
        if self.last_health.as_ref() == Some(&report) {
            return;
        }
        if report.0 {
            self.sh.health.ok(&report.1);
        } else {
            self.sh.health.degraded("Reconciliation failed", &report.1);
        }
        self.sh.progress.send_modify(|p| {
            p.healthy = report.0;
            p.health = report.1.clone();
        });
        self.last_health = Some(report);
    }

    /// Lets operations in flight finish within the drain time, commits
    /// their results, and reports stopped.
    async fn shutdown(mut self) {
        for w in self.sched.drain_queued() {
            self.settle_progress(w.origin, w.since);
        }
        let drain = self.s.config.shutdown_drain;
        if self.sched.running_len() > 0 {
            let drained = tokio::time::timeout(drain, async {
                while self.sched.running_len() > 0 {
                    let outs = self.sched.next().await;
                    self.finished(outs);
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(drain = ?drain, "operations still running at shutdown were cancelled");
            }
        }
        if !self.unwritten.is_empty() {
            self.write_back.succeeded();
            self.flush().await;
            if !self.unwritten.is_empty() {
                tracing::warn!(module_id = %self.sh.module_id, count = self.unwritten.len(), "results of finished operations could not be written back at shutdown");
            }
        }
        self.sh.progress.send_modify(|p| p.running = false);
        self.sh.health.stopped("reconciler stopped");
        tracing::info!(module_id = %self.sh.module_id, "reconciler stopped");
    }
}

/// A write transaction on the table, waited for in the lock's queue
/// without blocking the thread (so a user task holding the table
/// across an `.await` on this thread can finish). A lock held longer
/// than [`WRITE_BACK_LOCK_WAIT`] is an error the caller reports and
/// retries later.
async fn lock_table<Obj: Send + Sync + 'static>(
    db: &Db,
    table: &Table<Obj>,
) -> Result<WriteTxn, TxnError> {
    let wait = db.write_txn_async(&[table]);
    match tokio::time::timeout(WRITE_BACK_LOCK_WAIT, wait).await {
        Ok(res) => res,
        Err(_) => Err(TxnError::LockTimeout {
            tables: vec![table.name().to_string()],
            timeout: WRITE_BACK_LOCK_WAIT,
        }),
    }
}

/// The same failures, ignoring how long until each retry (which changes
/// with every look at the clock and is no reason to publish).
/// The earliest of the deadlines that are set.
fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}

fn same_failures(a: &[Failing], b: &[Failing]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.key == y.key
                && x.attempts == y.attempts
                && x.error == y.error
                && x.hard_delete == y.hard_delete
                && x.retry_in.is_some() == y.retry_in.is_some()
        })
}

async fn wait_watch(w: Option<Watch>) {
    match w {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}
