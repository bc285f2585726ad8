//! Rate limiting of reconciliation rounds: the [`RateLimiter`] trait (a
//! `governor` limiter on tokio's clock is in `governor_limiter.rs`,
//! feature `governor`).

use std::future::Future;
use std::sync::Arc;

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
