//! The synchronisation primitives `part` uses, in one place so that the
//! loom model checker can replace them. (`statedb` keeps its own, for its
//! table locks and root, and reuses [`Mutex`] and [`Arc`] from here.)
//!
//! Normal builds get `parking_lot` and `std` atomics. Built
//! with `RUSTFLAGS="--cfg loom"`, every type here is backed by loom's
//! instrumented primitives instead, and loom explores the interleavings of
//! their operations (see `crates/testkit/tests/loom.rs`). Nothing outside
//! this module names a lock, condition variable or atomic directly, except
//! the id counters and `OnceLock`, which carry no ordering the code relies
//! on beyond what `std` guarantees.
//!
//! Loom has no clock: under loom a timed wait is an untimed one, so the
//! models only use untimed waits.

#![doc(hidden)]

use std::time::Instant;

#[cfg(loom)]
pub use loom::sync::Arc;
/// Reference counting for values that hold the primitives below, so that
/// loom sees the ordering a drop of the last reference relies on. Values
/// without them keep a plain one (tree nodes `triomphe::Arc`).
#[cfg(not(loom))]
pub use std::sync::Arc;

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, Ordering};

/// A mutual-exclusion lock with a `lock` that cannot fail.
#[derive(Default)]
pub struct Mutex<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard of a [`Mutex`].
#[cfg(not(loom))]
pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
/// The guard of a [`Mutex`].
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Blocks until the lock is held.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            // A poisoned lock only follows a panic, which already failed
            // the model; keep going with the data.
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// A condition variable paired with [`Mutex`].
#[derive(Default)]
pub struct Condvar {
    #[cfg(not(loom))]
    inner: parking_lot::Condvar,
    #[cfg(loom)]
    inner: loom::sync::Condvar,
}

impl Condvar {
    /// A new condition variable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Releases the guard's lock, waits for a notification, and locks again.
    #[cfg_attr(loom, allow(unused_mut))]
    pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(not(loom))]
        {
            self.inner.wait(&mut guard);
            guard
        }
        #[cfg(loom)]
        {
            self.inner.wait(guard).unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Like [`Condvar::wait`], giving up at `deadline`; the bool is true
    /// when it timed out. Under loom it waits without a deadline.
    #[cfg_attr(loom, allow(unused_mut))]
    pub fn wait_until<'a, T>(
        &self,
        mut guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> (MutexGuard<'a, T>, bool) {
        #[cfg(not(loom))]
        {
            let timed_out = self.inner.wait_until(&mut guard, deadline).timed_out();
            (guard, timed_out)
        }
        #[cfg(loom)]
        {
            let _ = deadline;
            (self.wait(guard), false)
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.inner.notify_all();
    }
}

/// A cell written at most once, then read by many: the lazily created
/// watches of tree nodes and leaves. Readers get the value through a
/// closure so that normal builds hand out a plain reference.
pub struct OnceSlot<T> {
    #[cfg(not(loom))]
    inner: std::sync::OnceLock<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<Option<T>>,
}

impl<T> Default for OnceSlot<T> {
    fn default() -> Self {
        OnceSlot {
            #[cfg(not(loom))]
            inner: std::sync::OnceLock::new(),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(None),
        }
    }
}

impl<T> From<T> for OnceSlot<T> {
    fn from(value: T) -> Self {
        OnceSlot {
            #[cfg(not(loom))]
            inner: std::sync::OnceLock::from(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(Some(value)),
        }
    }
}

impl<T> OnceSlot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `f` to the value, if set.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        #[cfg(not(loom))]
        {
            self.inner.get().map(f)
        }
        #[cfg(loom)]
        {
            self.inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(f)
        }
    }

    /// Sets the value with `init` unless set, then applies `f` to it.
    /// `init` runs at most once over all callers and must not block.
    pub fn with_or_init<R>(&self, init: impl FnOnce() -> T, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(self.inner.get_or_init(init))
        }
        #[cfg(loom)]
        {
            let mut slot = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(slot.get_or_insert_with(init))
        }
    }

    /// Applies `f` to the value by unique reference, if set.
    #[inline]
    pub fn with_mut<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        #[cfg(not(loom))]
        {
            self.inner.get_mut().map(f)
        }
        #[cfg(loom)]
        {
            self.inner
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .map(f)
        }
    }

    /// Takes the value out, leaving the slot empty.
    pub fn take(&mut self) -> Option<T> {
        #[cfg(not(loom))]
        {
            self.inner.take()
        }
        #[cfg(loom)]
        {
            self.inner
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take()
        }
    }
}
