//! The synchronisation primitives `statedb` uses beyond those of `part`
//! (whose [`Mutex`], [`Condvar`] and [`Arc`] it reuses), in one place so
//! that the loom model checker can replace them: the atomically replaced
//! root, the atomics, and the thread token that names a thread holding a
//! table lock (the lock itself is built on these, in `lock.rs`).
//!
//! Normal builds get `parking_lot`, `arc-swap` and `std` atomics; built
//! with `RUSTFLAGS="--cfg loom"`, loom's instrumented primitives (see
//! `crates/testkit/tests/loom.rs`).

pub(crate) use part::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

// A plain std atomic even under loom: tokens only need to be unique.
static NEXT_THREAD_TOKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[cfg(not(loom))]
std::thread_local! {
    static THREAD_TOKEN: u64 = NEXT_THREAD_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
#[cfg(loom)]
loom::thread_local! {
    static THREAD_TOKEN: u64 = NEXT_THREAD_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A number unique to the calling thread (never 0), to recognise a lock
/// the thread holds already.
pub(crate) fn thread_token() -> u64 {
    THREAD_TOKEN.with(|t| *t)
}

/// A number no thread has as its token, nor will.
pub(crate) fn fresh_token() -> u64 {
    NEXT_THREAD_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An atomically replaceable `Arc<T>`: readers load it without locking.
pub(crate) struct AtomicArc<T> {
    #[cfg(not(loom))]
    inner: arc_swap::ArcSwap<T>,
    #[cfg(loom)]
    inner: loom::sync::RwLock<std::sync::Arc<T>>,
}

impl<T> AtomicArc<T> {
    /// Holds `value` initially.
    pub(crate) fn new(value: std::sync::Arc<T>) -> Self {
        AtomicArc {
            #[cfg(not(loom))]
            inner: arc_swap::ArcSwap::new(value),
            #[cfg(loom)]
            inner: loom::sync::RwLock::new(value),
        }
    }

    /// The current value.
    pub(crate) fn load_full(&self) -> std::sync::Arc<T> {
        #[cfg(not(loom))]
        {
            self.inner.load_full()
        }
        #[cfg(loom)]
        {
            self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    /// Replaces the value; readers see either the old or the new one.
    pub(crate) fn store(&self, value: std::sync::Arc<T>) {
        #[cfg(not(loom))]
        {
            self.inner.store(value);
        }
        #[cfg(loom)]
        {
            *self.inner.write().unwrap_or_else(|e| e.into_inner()) = value;
        }
    }
}
