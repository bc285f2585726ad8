//! The knobs of a reconciler, apart from its wiring (table, operations,
//! status accessors): a plain [`Config`] with defaults, and its
//! validation ([`ConfigError`]).

use std::time::Duration;

/// An invalid reconciler declaration; each variant names the setter (or
/// parameter) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`crate::Builder::status`] was not called.
    #[error("status(get, set) must be called: the reconciler needs the object's status")]
    MissingStatus,
    /// [`Config::incremental_round_size`] is zero.
    #[error("incremental_round_size must be greater than zero")]
    ZeroRoundSize,
    /// [`Config::refresh`]: `per_round` is zero while refresh is on.
    #[error("refresh: per_round must be at least 1 when the interval is set")]
    ZeroRefreshPerRound,
    /// [`Config::concurrency`] is zero.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// [`Config::retry_backoff`]: the minimum is zero.
    #[error("retry_backoff: min must be greater than zero")]
    ZeroRetryBackoffMin,
    /// [`Config::retry_backoff`]: the maximum is below the minimum.
    #[error("retry_backoff: max ({max:?}) must not be less than min ({min:?})")]
    RetryBackoffMaxBelowMin {
        /// The minimum.
        min: Duration,
        /// The maximum.
        max: Duration,
    },
    /// [`Config::retry_jitter`] is not a fraction in `0.0..=1.0`.
    #[error("retry_jitter must be within 0.0..=1.0, not {0}")]
    JitterOutOfRange(String),
    /// [`Config::operation_timeout`] is zero.
    #[error("operation_timeout must be greater than zero")]
    ZeroOperationTimeout,
    /// [`Config::circuit_breaker`]: the threshold is set but the pause is
    /// zero.
    #[error("circuit_breaker: pause must be greater than zero when the threshold is set")]
    ZeroBreakerPause,
    /// `module_id` of the params is empty.
    #[error("params.module_id must not be empty")]
    EmptyModuleId,
    /// The table is not registered with the params' Db.
    #[error("table {table:?} is not usable with params.db: {reason}")]
    Table {
        /// The table name.
        table: String,
        /// Why.
        reason: String,
    },
}

/// How a reconciler runs: intervals, retries, concurrency, timeouts.
/// Every setting has a default ([`Config::default`]); set what differs
/// and hand it to [`crate::Builder::config`] (the builder's setters of
/// the same names do the same).
///
/// ```
/// use std::time::Duration;
/// use reconciler::Config;
/// let c = Config::default()
///     .concurrency(16)
///     .operation_timeout(Duration::from_secs(5))
///     .retry_backoff(Duration::from_millis(50), Duration::from_secs(30));
/// assert_eq!(c.get_concurrency(), 16);
/// assert_eq!(Config::default().get_prune_interval(), Duration::from_secs(3600));
/// ```
///
/// Defaults:
///
/// | setting | default |
/// |---|---|
/// | full reconciliation | off (prune and refresh repair drift) |
/// | prune | when the table is initialized, then hourly |
/// | refresh | objects whose status is older than 30 min, 100 at a time |
/// | retries | 100 ms doubling to 1 min, up to 20% earlier at random |
/// | circuit breaker | after failures of 20 different objects in a row, pause 5 s, then probe with one operation |
/// | operations in flight | 1 |
/// | operation timeout | 1 min |
/// | round size | 1000 |
/// | shutdown drain | 1 s |
/// | write-back window (while backlogged) | 10 ms |
///
/// Any `Duration`, up to `Duration::MAX`, is accepted: a huge interval
/// means "practically never", not a panic.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) full_reconciliation_interval: Duration,
    pub(crate) prune_interval: Duration,
    pub(crate) retry_backoff: (Duration, Duration),
    pub(crate) retry_jitter: f64,
    pub(crate) incremental_round_size: usize,
    pub(crate) shutdown_drain: Duration,
    pub(crate) concurrency: usize,
    pub(crate) refresh: (Duration, usize),
    pub(crate) operation_timeout: Duration,
    pub(crate) breaker: (u32, Duration),
    pub(crate) write_back_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            full_reconciliation_interval: Duration::ZERO,
            prune_interval: Duration::from_secs(3600),
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(60)),
            retry_jitter: 0.2,
            incremental_round_size: 1000,
            shutdown_drain: Duration::from_secs(1),
            concurrency: 1,
            refresh: (Duration::from_secs(30 * 60), 100),
            operation_timeout: Duration::from_secs(60),
            breaker: (20, Duration::from_secs(5)),
            write_back_window: Duration::from_millis(10),
        }
    }
}

impl Config {
    /// Time between full reconciliations (prune, then update of every
    /// object, to undo outside changes). Zero (the default) disables the
    /// periodic ones; [`crate::Reconciler::trigger_full_reconciliation`]
    /// still runs one on demand.
    #[must_use]
    pub fn full_reconciliation_interval(mut self, interval: Duration) -> Self {
        self.full_reconciliation_interval = interval;
        self
    }

    /// Time between prunes on their own (without updating every object).
    /// Default one hour. Zero prunes only when the table becomes
    /// initialized, in full reconciliations and on
    /// [`crate::Reconciler::prune`].
    #[must_use]
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Retry delays of a failed update or delete: `min` first, doubling on
    /// each further failure up to `max`. Default 100 ms to 1 min.
    #[must_use]
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_backoff = (min, max);
        self
    }

    /// How much earlier than its backoff a retry may run, at random, as a
    /// fraction of the delay (0.2, the default: between 80% and 100% of
    /// it). Spreads the retries of many objects that failed together (an
    /// outage) instead of retrying them in lockstep. 0 makes delays exact.
    #[must_use]
    pub fn retry_jitter(mut self, fraction: f64) -> Self {
        self.retry_jitter = fraction;
        self
    }

    /// Most objects taken into work at once (changes read ahead of the
    /// operations, and objects of a batch). Default 1000.
    #[must_use]
    pub fn incremental_round_size(mut self, size: usize) -> Self {
        self.incremental_round_size = size;
        self
    }

    /// On shutdown, how long operations in flight may go on so that they
    /// finish and their results are committed; what still runs then is
    /// cancelled (dropped). Default 1 s; zero cancels at once.
    #[must_use]
    pub fn shutdown_drain(mut self, drain: Duration) -> Self {
        self.shutdown_drain = drain;
        self
    }

    /// Most operations (or batches) in flight at once, never two on one
    /// object; a new one starts as soon as one finishes, so one slow
    /// operation holds one slot, not a whole round. Default 1.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Objects whose status (written by this reconciler) is older than
    /// `interval` are updated again ("refreshed"), at most `per_round` at a
    /// time: they are marked [`crate::StatusKind::Refreshing`] and go
    /// through incremental work like new versions. Default 30 min, 100;
    /// a zero interval disables refresh.
    #[must_use]
    pub fn refresh(mut self, interval: Duration, per_round: usize) -> Self {
        self.refresh = (interval, per_round);
        self
    }

    /// Longest an operation (update, delete, a batch, prune) may run; past
    /// it, it is cancelled (its future dropped) and counts as failed, with
    /// a retry. Default 1 min.
    ///
    /// ## Warning
    ///
    /// Cancelling drops the operation's future at an `.await`: write
    /// operations so that this leaves the target consistent (as for
    /// shutdown).
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// After operations on `threshold` different objects failed with no
    /// success in between, stop for `pause`, then let one operation through
    /// as a probe: its success releases the rest, its failure pauses
    /// again. Protects a target that is down from a storm of retries, and
    /// shows in health. Default 20, 5 s; a threshold of 0 turns the
    /// breaker off.
    ///
    /// ## Warning
    ///
    /// While open, no operation starts, including updates of healthy
    /// objects. One object that always fails never opens it (it counts
    /// once), but a target that refuses everything pauses everything, by
    /// design.
    #[must_use]
    pub fn circuit_breaker(mut self, threshold: u32, pause: Duration) -> Self {
        self.breaker = (threshold, pause);
        self
    }

    /// While work waits for a free slot (the reconciler is backlogged),
    /// outcomes of finished operations are collected for up to `window`
    /// (or a round's worth) and their statuses written in one write
    /// transaction, instead of one per finished operation. When nothing
    /// waits to start, outcomes are written at once. Default 10 ms; zero
    /// writes every outcome at once.
    ///
    /// One transaction per operation costs a commit per object (about
    /// 10x the CPU per object at concurrency 1 in
    /// `reconciler_100k_io_c1`); the window bounds the extra latency a
    /// status sees when the reconciler is saturated anyway.
    #[must_use]
    pub fn write_back_window(mut self, window: Duration) -> Self {
        self.write_back_window = window;
        self
    }

    /// The full reconciliation interval.
    pub fn get_full_reconciliation_interval(&self) -> Duration {
        self.full_reconciliation_interval
    }
    /// The prune interval.
    pub fn get_prune_interval(&self) -> Duration {
        self.prune_interval
    }
    /// The operations in flight at most.
    pub fn get_concurrency(&self) -> usize {
        self.concurrency
    }
    /// The operation timeout.
    pub fn get_operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// Checks every setting; returns the first problem.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.incremental_round_size == 0 {
            return Err(ConfigError::ZeroRoundSize);
        }
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        let (refresh_interval, per_round) = self.refresh;
        if !refresh_interval.is_zero() && per_round == 0 {
            return Err(ConfigError::ZeroRefreshPerRound);
        }
        let (min, max) = self.retry_backoff;
        if min.is_zero() {
            return Err(ConfigError::ZeroRetryBackoffMin);
        }
        if max < min {
            return Err(ConfigError::RetryBackoffMaxBelowMin { min, max });
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err(ConfigError::JitterOutOfRange(self.retry_jitter.to_string()));
        }
        if self.operation_timeout.is_zero() {
            return Err(ConfigError::ZeroOperationTimeout);
        }
        if self.breaker.0 > 0 && self.breaker.1.is_zero() {
            return Err(ConfigError::ZeroBreakerPause);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_setting() {
        assert!(Config::default().validate().is_ok());
        let max = Duration::MAX;
        let huge = Config::default()
            .full_reconciliation_interval(max)
            .prune_interval(max)
            .retry_backoff(max, max)
            .shutdown_drain(max)
            .refresh(max, 1)
            .operation_timeout(max)
            .circuit_breaker(1, max)
            .write_back_window(max);
        assert!(huge.validate().is_ok(), "any duration is valid");
        assert_eq!(
            Config::default().retry_jitter(1.5).validate(),
            Err(ConfigError::JitterOutOfRange("1.5".into()))
        );
        assert!(Config::default().retry_jitter(f64::NAN).validate().is_err());
        assert_eq!(
            Config::default()
                .operation_timeout(Duration::ZERO)
                .validate(),
            Err(ConfigError::ZeroOperationTimeout)
        );
        assert_eq!(
            Config::default()
                .circuit_breaker(3, Duration::ZERO)
                .validate(),
            Err(ConfigError::ZeroBreakerPause)
        );
        assert!(
            Config::default()
                .circuit_breaker(0, Duration::ZERO)
                .validate()
                .is_ok()
        );
    }
}
