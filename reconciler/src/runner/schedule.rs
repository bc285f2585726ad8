//! The loop's timers in one place: full rounds, prunes, refresh ticks,
//! the write-back retry. Deadlines saturate: any interval is valid.

use std::time::Duration;

use tokio::time::Instant;

use crate::time::deadline;

/// When each periodic job is next due (`None`: never).
pub(super) struct Schedule {
    full_interval: Duration,
    prune_interval: Duration,
    refresh_tick: Option<Duration>,
    pub next_full: Option<Instant>,
    pub next_prune: Option<Instant>,
    pub next_refresh: Option<Instant>,
}

impl Schedule {
    pub fn new(full: Duration, prune: Duration, refresh_tick: Option<Duration>) -> Self {
        let now = Instant::now();
        let at = |d: Duration| (!d.is_zero()).then(|| deadline(now, d));
        Schedule {
            full_interval: full,
            prune_interval: prune,
            refresh_tick,
            next_full: at(full),
            next_prune: at(prune),
            next_refresh: refresh_tick.map(|t| deadline(now, t)),
        }
    }

    /// A full round finished: both intervals start again (it pruned too).
    pub fn full_done(&mut self) {
        let now = Instant::now();
        self.next_full = (!self.full_interval.is_zero()).then(|| deadline(now, self.full_interval));
        self.prune_done();
    }

    pub fn prune_done(&mut self) {
        let now = Instant::now();
        self.next_prune =
            (!self.prune_interval.is_zero()).then(|| deadline(now, self.prune_interval));
    }

    /// True (and the next tick set) if a refresh tick is due.
    pub fn refresh_due(&mut self) -> bool {
        let now = Instant::now();
        match (self.next_refresh, self.refresh_tick) {
            (Some(at), Some(tick)) if at <= now => {
                self.next_refresh = Some(deadline(now, tick));
                true
            }
            _ => false,
        }
    }
}

/// Sleeps until `t`; never completes for `None`.
pub(super) async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Exponential backoff for the loop's own retries (the write-back, the
/// change iterator's registration): 1 ms doubling to 1 s.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    pub failures: u32,
    pub due: Option<Instant>,
    pub error: Option<String>,
}

impl Backoff {
    pub fn failed(&mut self, error: String) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let d = Duration::from_millis(1 << self.failures.min(10).saturating_sub(1))
            .min(Duration::from_secs(1));
        self.due = Some(deadline(Instant::now(), d));
        self.error = Some(error);
        d
    }

    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    /// May the next attempt run now?
    pub fn ready(&self) -> bool {
        self.due.is_none_or(|d| d <= Instant::now())
    }
}
