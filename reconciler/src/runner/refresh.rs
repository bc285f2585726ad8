//! Refresh: objects whose status from this reconciler is older than the
//! refresh interval are marked for another update, a bounded number at a
//! time. Age is judged by this reconciler's own status (`updated_at`),
//! not by the row's last write: in a status set, other reconcilers' writes
//! must not keep an object young.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use statedb::{Db, Objects, Revision};
use tokio::time::Instant;

use super::work::Callbacks;
use crate::status::{Status, StatusKind};
use crate::write_log::WriteLog;

/// Wall-clock time that follows tokio's clock: statuses are stamped with
/// it, so ages agree with the loop's timers (virtual in tests).
#[derive(Clone, Copy, Debug)]
pub(super) struct WallClock {
    wall: SystemTime,
    mono: Instant,
}

impl WallClock {
    pub fn new() -> Self {
        WallClock {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.wall
            .checked_add(self.mono.elapsed())
            .unwrap_or_else(SystemTime::now)
    }
}

/// Scans the table a slice per tick for stale objects.
pub(super) struct Refresh<Obj: Send + Sync + 'static> {
    pub interval: Duration,
    per_round: usize,
    /// The scan in progress: a snapshot's objects, resumed every tick.
    scan: Option<Objects<Obj>>,
}

impl<Obj: Clone + Send + Sync + 'static> Refresh<Obj> {
    pub fn new(interval: Duration, per_round: usize) -> Self {
        Refresh {
            interval,
            per_round,
            scan: None,
        }
    }

    /// How often to look: a tenth of the interval, at least 1 ms.
    pub fn tick(&self) -> Option<Duration> {
        (!self.interval.is_zero()).then(|| (self.interval / 10).max(Duration::from_millis(1)))
    }

    /// Marks up to `per_round` done objects whose own status is older
    /// than the interval as refreshing; they then go through incremental
    /// work like new versions. Reads at most a bounded slice of the table
    /// per call. Returns how many were marked.
    pub fn mark(
        &mut self,
        db: &Db,
        cb: &Callbacks<Obj>,
        log: &WriteLog,
        clock: &WallClock,
    ) -> usize {
        let now = clock.now();
        let Some(cutoff) = now.checked_sub(self.interval) else {
            return 0;
        };
        let budget = self.per_round.saturating_mul(10).max(1000);
        let scan = match self.scan.take() {
            Some(s) => s,
            None => match cb.table.all(&db.read_txn()) {
                Ok(s) => s,
                Err(_) => return 0,
            },
        };
        let mut scan = scan;
        let mut stale: Vec<(Arc<Obj>, Revision)> = Vec::new();
        let mut read = 0;
        let mut exhausted = true;
        for (obj, rev) in scan.by_ref() {
            read += 1;
            if let Ok(s) = cb.status(&obj)
                && s.kind == StatusKind::Done
                && !s.delete
                && s.updated_at <= cutoff
            {
                stale.push((obj, rev));
            }
            if stale.len() >= self.per_round || read >= budget {
                exhausted = false;
                break;
            }
        }
        if !exhausted {
            self.scan = Some(scan);
        }
        if stale.is_empty() {
            return 0;
        }
        // Never wait for the lock here: if it is busy, the next tick tries.
        let Ok(mut wtxn) = db.try_write_txn(&[&cb.table]) else {
            return 0;
        };
        let mut marked = 0;
        for (obj, revision) in stale {
            let Ok(mut obj) = cb.clone_obj(&obj) else {
                continue;
            };
            let mut refreshing = Status::refreshing();
            refreshing.updated_at = now;
            // Stamped like a write-back: the other members of a status
            // set see a status write, not a new version to reconcile.
            let next = cb.table.next_revision(&wtxn).ok();
            if let Some(next) = next {
                refreshing = refreshing.written_at(next);
            }
            if cb.set_status(&mut obj, refreshing).is_err() {
                continue;
            }
            // Changed meanwhile: its new version is reconciled anyway.
            if cb.table.compare_and_swap(&mut wtxn, revision, obj).is_ok() {
                if let Some(next) = next {
                    log.record(next, revision);
                }
                marked += 1;
            }
        }
        wtxn.commit();
        marked
    }
}
