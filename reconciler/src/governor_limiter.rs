//! A `governor` rate limiter on tokio's clock (feature `governor`).

use std::ops::Add;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};

use crate::limiter::RateLimiter;

/// A [`governor`] clock reading tokio's clock, so that a paused tokio
/// runtime (tests) drives the limiter in virtual time.
#[derive(Debug, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "governor")))]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting now. Create it inside the runtime whose clock it
    /// should follow (a paused test runtime, say).
    pub fn new() -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

/// An instant of [`TokioClock`]: nanoseconds since the clock started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(docsrs, doc(cfg(feature = "governor")))]
pub struct TokioInstant(Nanos);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, d: Nanos) -> TokioInstant {
        TokioInstant(self.0 + d)
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_sub(earlier.0)
    }
    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.saturating_sub(duration))
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(Nanos::from(self.start.elapsed()))
    }
}

/// A direct (unkeyed) governor limiter on any clock.
#[cfg_attr(docsrs, doc(cfg(feature = "governor")))]
pub type GovernorLimiter<C> =
    governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

impl<C> RateLimiter for GovernorLimiter<C>
where
    C: Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    async fn wait(&self) {
        while let Err(not_until) = self.check() {
            let wait = not_until.wait_time_from(self.clock().now());
            tokio::time::sleep(wait).await;
        }
    }
}

/// A limiter allowing `quota` on tokio's clock.
///
/// ```
/// use std::num::NonZeroU32;
/// let limiter = reconciler::tokio_rate_limiter(governor::Quota::per_second(NonZeroU32::new(10).unwrap()));
/// # let _ = limiter;
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "governor")))]
pub fn tokio_rate_limiter(quota: governor::Quota) -> GovernorLimiter<TokioClock> {
    GovernorLimiter::direct_with_clock(quota, TokioClock::new())
}
