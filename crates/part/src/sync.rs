//! The synchronisation primitives `part` and `statedb` use, in one place so
//! that the loom model checker can replace them.
//!
//! Normal builds get `parking_lot`, `arc-swap` and `std` atomics. Built
//! with `RUSTFLAGS="--cfg loom"`, every type here is backed by loom's
//! instrumented primitives instead, and loom explores the interleavings of
//! their operations (see `crates/testkit/tests/loom.rs`). Nothing outside
//! this module names a lock, condition variable, atomic or atomic pointer
//! directly, except the id counters and `OnceLock`, which carry no ordering
//! the code relies on beyond what `std` guarantees.
//!
//! Loom has no clock: under loom a timed wait is an untimed one, so the
//! models only use untimed waits.

#![doc(hidden)]

use std::time::Instant;

#[cfg(loom)]
pub use loom::sync::Arc;
/// Reference counting for values that hold the primitives below, so that
/// loom sees the ordering a drop of the last reference relies on. Values
/// without them (tree nodes, snapshots) keep `std::sync::Arc`.
#[cfg(not(loom))]
pub use std::sync::Arc;

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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

/// A lock with no data whose guard owns a reference to it, so a write
/// transaction can hold table locks for as long as it lives and move
/// between threads. Cloning yields a handle to the same lock.
#[derive(Default, Clone)]
pub struct OwnedLock {
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
pub struct OwnedLockGuard {
    #[cfg(not(loom))]
    _guard: parking_lot::lock_api::ArcMutexGuard<parking_lot::RawMutex, ()>,
    #[cfg(loom)]
    lock: Arc<LoomLock>,
}

impl OwnedLock {
    /// A new unlocked lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks until the lock is held by the returned guard.
    pub fn lock_owned(&self) -> OwnedLockGuard {
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
    pub fn try_lock_owned_for(&self, timeout: std::time::Duration) -> Option<OwnedLockGuard> {
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
    pub fn try_lock_owned(&self) -> Option<OwnedLockGuard> {
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
pub fn thread_token() -> u64 {
    THREAD_TOKEN.with(|t| *t)
}

/// An atomically replaceable `Arc<T>`: readers load it without locking.
pub struct AtomicArc<T> {
    #[cfg(not(loom))]
    inner: arc_swap::ArcSwap<T>,
    #[cfg(loom)]
    inner: loom::sync::RwLock<std::sync::Arc<T>>,
}

impl<T> AtomicArc<T> {
    /// Holds `value` initially.
    pub fn new(value: std::sync::Arc<T>) -> Self {
        AtomicArc {
            #[cfg(not(loom))]
            inner: arc_swap::ArcSwap::new(value),
            #[cfg(loom)]
            inner: loom::sync::RwLock::new(value),
        }
    }

    /// The current value.
    pub fn load_full(&self) -> std::sync::Arc<T> {
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
    pub fn store(&self, value: std::sync::Arc<T>) {
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

    /// The value, if set.
    pub fn into_inner(self) -> Option<T> {
        #[cfg(not(loom))]
        {
            self.inner.into_inner()
        }
        #[cfg(loom)]
        {
            self.inner.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }
}
