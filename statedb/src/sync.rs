//! The synchronisation primitives `statedb` uses beyond those of `part`
//! (whose [`Mutex`] and [`Arc`] it reuses), in one place so that the loom
//! model checker can replace them: the owned table locks, the atomically
//! replaced root, the atomics, and the thread token that recognises a
//! lock its own thread holds.
//!
//! Normal builds get `parking_lot`, `arc-swap` and `std` atomics; built
//! with `RUSTFLAGS="--cfg loom"`, loom's instrumented primitives (see
//! `crates/testkit/tests/loom.rs`).

pub(crate) use part::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A lock with no data whose guard owns a reference to it, so a write
/// transaction can hold table locks for as long as it lives and move
/// between threads. Cloning yields a handle to the same lock.
#[derive(Default, Clone)]
pub(crate) struct OwnedLock {
    #[cfg(not(loom))]
    inner: Arc<parking_lot::Mutex<()>>,
    #[cfg(loom)]
    inner: Arc<LoomLock>,
}

#[cfg(loom)]
#[derive(Default)]
struct LoomLock {
    locked: loom::sync::Mutex<bool>,
    released: loom::sync::Condvar,
}

/// Holds an [`OwnedLock`] until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub(crate) struct OwnedLockGuard {
    #[cfg(not(loom))]
    _guard: parking_lot::lock_api::ArcMutexGuard<parking_lot::RawMutex, ()>,
    #[cfg(loom)]
    lock: Arc<LoomLock>,
}

impl OwnedLock {
    /// A new unlocked lock.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Blocks until the lock is held by the returned guard.
    pub(crate) fn lock_owned(&self) -> OwnedLockGuard {
        #[cfg(not(loom))]
        {
            OwnedLockGuard {
                _guard: self.inner.lock_arc(),
            }
        }
        #[cfg(loom)]
        {
            let mut locked = self.inner.locked.lock().unwrap_or_else(|e| e.into_inner());
            while *locked {
                locked = self
                    .inner
                    .released
                    .wait(locked)
                    .unwrap_or_else(|e| e.into_inner());
            }
            *locked = true;
            OwnedLockGuard {
                lock: self.inner.clone(),
            }
        }
    }

    /// Waits up to `timeout` for the lock. (Under loom, which has no
    /// clock, it tries once.)
    pub(crate) fn try_lock_owned_for(
        &self,
        timeout: std::time::Duration,
    ) -> Option<OwnedLockGuard> {
        #[cfg(not(loom))]
        {
            self.inner
                .try_lock_arc_for(timeout)
                .map(|g| OwnedLockGuard { _guard: g })
        }
        #[cfg(loom)]
        {
            let _ = timeout;
            self.try_lock_owned()
        }
    }

    /// Takes the lock if it is free.
    pub(crate) fn try_lock_owned(&self) -> Option<OwnedLockGuard> {
        #[cfg(not(loom))]
        {
            self.inner
                .try_lock_arc()
                .map(|g| OwnedLockGuard { _guard: g })
        }
        #[cfg(loom)]
        {
            let mut locked = self.inner.locked.lock().unwrap_or_else(|e| e.into_inner());
            if *locked {
                return None;
            }
            *locked = true;
            Some(OwnedLockGuard {
                lock: self.inner.clone(),
            })
        }
    }
}

#[cfg(loom)]
impl Drop for OwnedLockGuard {
    fn drop(&mut self) {
        *self.lock.locked.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.lock.released.notify_one();
    }
}

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
