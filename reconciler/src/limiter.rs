//! Rate limiting of reconciliation rounds, on tokio's clock.

use std::future::Future;
use std::ops::Add;
use std::sync::Arc;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};

/// Spaces reconciliation rounds: the reconciler awaits [`RateLimiter::wait`]
/// before each round.
pub trait RateLimiter: Send + Sync + 'static {
    /// Completes when the next round may start.
    fn wait(&self) -> impl Future<Output = ()> + Send;
}

impl<T: RateLimiter + ?Sized> RateLimiter for Arc<T> {
    fn wait(&self) -> impl Future<Output = ()> + Send {
        (**self).wait()
    }
}

/// [`RateLimiter`] made object-safe, for storing any limiter.
pub(crate) trait DynRateLimiter: Send + Sync {
    fn wait(&self) -> crate::ops::BoxFuture<'_, ()>;
}

impl<T: RateLimiter> DynRateLimiter for T {
    fn wait(&self) -> crate::ops::BoxFuture<'_, ()> {
        Box::pin(RateLimiter::wait(self))
    }
}

/// A [`governor`] clock reading tokio's clock, so that a paused tokio
/// runtime (tests) drives the limiter in virtual time.
#[derive(Debug, Clone)]
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
pub fn tokio_rate_limiter(quota: governor::Quota) -> GovernorLimiter<TokioClock> {
    GovernorLimiter::direct_with_clock(quota, TokioClock::new())
}
