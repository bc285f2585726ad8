//! Refresh: objects whose status is older than the refresh interval are
//! marked for another update, a bounded number at a time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use statedb::{ReadTxn, Revision};
use tokio::time::Instant;

use super::Runner;
use crate::status::{Status, StatusKind};

/// When to look for stale objects, and which revisions are old enough.
///
/// Statuses carry wall-clock times, but the reconciler runs on tokio's
/// clock (virtual in tests), so age is judged by revision: the clock
/// samples the table revision every tenth of the interval, and a status
/// written at or below the revision of a sample older than the interval
/// is older than the interval.
pub(super) struct RefreshClock {
    interval: Duration,
    tick: Duration,
    next: Option<Instant>,
    /// (when, table revision then), oldest first.
    samples: VecDeque<(Instant, Revision)>,
}

impl RefreshClock {
    /// A clock for `interval`; zero never ticks.
    pub fn new(interval: Duration) -> Self {
        let tick = (interval / 10).max(Duration::from_millis(1));
        RefreshClock {
            interval,
            tick,
            next: (!interval.is_zero()).then(|| Instant::now() + tick),
            samples: VecDeque::new(),
        }
    }

    /// When the loop should wake for the next sample.
    pub fn next_tick(&self) -> Option<Instant> {
        self.next
    }

    /// Samples `revision` (the table's now) if a tick is due, and returns
    /// the revision at or below which statuses are older than the
    /// interval, once such a sample exists.
    pub fn tick(&mut self, revision: Revision) -> Option<Revision> {
        let at = self.next.filter(|at| *at <= Instant::now())?;
        let now = Instant::now();
        self.next = Some(at + self.tick);
        self.samples.push_back((now, revision));
        // Keep the newest sample older than the interval, and the ones
        // after it.
        while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= self.interval {
            self.samples.pop_front();
        }
        self.samples
            .front()
            .filter(|(t, _)| now.duration_since(*t) >= self.interval)
            .map(|(_, r)| *r)
    }
}

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    /// Marks up to `refresh_per_round` done objects last written at or
    /// below `cutoff` (their status is older than the refresh interval) as
    /// refreshing; the incremental rounds then update them again. The
    /// revision index lists objects by last write, oldest first, so this
    /// reads only what it marks (plus the in-flight ones it skips).
    pub(super) fn mark_for_refresh(&mut self, txn: &ReadTxn, cutoff: Revision) {
        let table = self.cfg.table.clone();
        let Ok((oldest, _)) = table.lower_bound_by_revision(txn, 0) else {
            return;
        };
        let stale: Vec<(Arc<Obj>, Revision)> = oldest
            .take_while(|(_, rev)| *rev <= cutoff)
            .filter(|(o, _)| {
                let s = self.status(o);
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
            let mut obj = Obj::clone(&obj);
            (self.cfg.set_status)(&mut obj, refreshing.clone());
            // Changed meanwhile: its new version is reconciled anyway.
            let _ = table.compare_and_swap(&mut wtxn, revision, obj);
        }
        wtxn.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cutoff_is_the_revision_of_a_sample_older_than_the_interval() {
        let mut clock = RefreshClock::new(Duration::from_secs(10));
        assert_eq!(clock.tick(1), None, "not due yet");
        let mut cutoffs = Vec::new();
        for rev in 1..=25 {
            tokio::time::advance(Duration::from_secs(1)).await;
            cutoffs.push(clock.tick(rev));
        }
        // Samples every second; the first one older than 10 s appears at
        // 11 s and holds the revision of 1 s.
        assert_eq!(cutoffs[..10], [None; 10]);
        assert_eq!(cutoffs[10], Some(1));
        assert_eq!(cutoffs[24], Some(15));
        assert!(RefreshClock::new(Duration::ZERO).next_tick().is_none());
    }
}
