//! The table lock: one per table, held by one write transaction at a
//! time, fair, and owned by a transaction rather than a thread.
//!
//! Waiters queue in arrival order whether they block a thread
//! ([`crate::Db::write_txn`]) or wait as a future
//! ([`crate::Db::write_txn_async`]). A release hands the lock straight to
//! the first waiter (it is never free in between, so a newcomer cannot
//! overtake the queue). A waiter that gives up (timeout, or its future
//! dropped) leaves the queue; if the lock was handed to it meanwhile, a
//! timed-out blocking waiter keeps it, a dropped future passes it on.
//!
//! Each holder carries an [`Owner`]: who would wait forever if it asked for
//! the lock again. That is the tokio task that opened the transaction, or,
//! outside a task, the thread that last used it. A request from the same
//! owner is refused ([`Acquire::Conflict`]) instead of queued.

use std::collections::VecDeque;
#[cfg(not(loom))]
use std::hash::Hasher;
use std::task::Waker;
use std::time::Instant;

// A plain `Arc`, as the transactions hold these: nothing here relies on
// the ordering of a drop.
use std::sync::Arc;

use crate::sync::{Condvar, Mutex, MutexGuard, fresh_token, thread_token};

/// Set in an [`Owner`] value that names a tokio task (clear: a thread).
const TASK_BIT: u64 = 1 << 63;

/// Who holds (or asks for) a lock: see the module doc. A plain number,
/// so taking a lock allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner(u64);

impl Owner {
    /// The caller: its tokio task if it runs in one, else its thread.
    pub(crate) fn current() -> Owner {
        Owner(current_identity())
    }

    /// The caller of an async acquisition: its tokio task if it runs in
    /// one. Outside a task, a future waiting does not block its thread,
    /// so the thread proves nothing: a fresh identity, which no holder
    /// has, and the transaction becomes the thread's that writes through
    /// it (as any thread-owned one).
    pub(crate) fn current_async() -> Owner {
        let id = current_identity();
        Owner(if id & TASK_BIT != 0 {
            id
        } else {
            fresh_token()
        })
    }

    /// The owner that is `thread` (a token from `thread_token`).
    pub(crate) fn thread_owner(thread: u64) -> Owner {
        Owner(thread)
    }

    /// The thread the owner is, or 0 when it is a task (a task keeps its
    /// identity on any thread).
    pub(crate) fn thread(self) -> u64 {
        if self.0 & TASK_BIT == 0 { self.0 } else { 0 }
    }
}

/// The calling task's id with [`TASK_BIT`], or the calling thread's token.
fn current_identity() -> u64 {
    #[cfg(not(loom))]
    if let Some(id) = tokio::task::try_id() {
        // `Id` hashes as its one `u64`; capture it exactly.
        let mut capture = CaptureU64(0);
        std::hash::Hash::hash(&id, &mut capture);
        return capture.0 | TASK_BIT;
    }
    thread_token()
}

/// A "hasher" that keeps the last `u64` written to it.
#[cfg(not(loom))]
struct CaptureU64(u64);

#[cfg(not(loom))]
impl Hasher for CaptureU64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for tokio's `Id` (a `NonZeroU64`); fold just in case.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// One table's lock.
#[derive(Default)]
pub(crate) struct TableLock {
    state: Mutex<LockState>,
}

#[derive(Default)]
struct LockState {
    held: bool,
    owner: Option<Owner>,
    queue: VecDeque<Arc<Waiter>>,
    /// The handle whose transaction holds the lock, and since when (for
    /// inspection): set in the same critical section that hands the lock
    /// over, so taking a lock costs no second trip through this mutex.
    holder: Option<(Arc<str>, std::time::Instant)>,
}

/// A place in a lock's queue.
pub(crate) struct Waiter {
    owner: Owner,
    /// The handle it waits for (the holder once the lock is handed over).
    handle: Arc<str>,
    slot: Mutex<Slot>,
    granted: Condvar,
}

#[derive(Default)]
struct Slot {
    granted: bool,
    waker: Option<Waker>,
}

/// What [`TableLock::acquire`] did.
pub(crate) enum Acquire {
    /// The lock is the caller's.
    Held,
    /// The caller already owns the lock (waiting would never end).
    Conflict,
    /// Taken by another transaction: the caller is queued.
    Queued(Arc<Waiter>),
    /// Taken by another transaction and the caller asked not to queue.
    Busy,
}

impl TableLock {
    /// Takes the lock for `owner` (of the named `handle`) if it is free;
    /// otherwise queues `owner` (if `queue`) unless `owner` holds it
    /// already.
    pub(crate) fn acquire(&self, owner: Owner, handle: &Arc<str>, queue: bool) -> Acquire {
        let mut state = self.state.lock();
        if !state.held {
            state.held = true;
            state.owner = Some(owner);
            state.holder = Some((handle.clone(), std::time::Instant::now()));
            return Acquire::Held;
        }
        if state.owner == Some(owner) {
            return Acquire::Conflict;
        }
        if !queue {
            return Acquire::Busy;
        }
        let waiter = Arc::new(Waiter {
            owner,
            handle: handle.clone(),
            slot: Mutex::new(Slot::default()),
            granted: Condvar::new(),
        });
        state.queue.push_back(waiter.clone());
        Acquire::Queued(waiter)
    }

    /// The handle holding the lock and since when, if it is held.
    pub(crate) fn holder(&self) -> Option<(Arc<str>, std::time::Instant)> {
        self.state.lock().holder.clone()
    }

    /// Whether `owner` holds the lock now.
    pub(crate) fn held_by(&self, owner: Owner) -> bool {
        let state = self.state.lock();
        state.held && state.owner == Some(owner)
    }

    /// The holder's transaction moved: it is `to`'s now. (Called by the
    /// holder only.)
    pub(crate) fn reown(&self, to: Owner) {
        self.state.lock().owner = Some(to);
    }

    /// Releases the lock: the first waiter gets it, or it becomes free.
    pub(crate) fn release(&self) {
        let waker = Self::hand_off(&mut self.state.lock());
        // Outside our lock: waking may run an executor's code.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn hand_off(state: &mut MutexGuard<'_, LockState>) -> Option<Waker> {
        match state.queue.pop_front() {
            Some(next) => {
                state.owner = Some(next.owner);
                state.holder = Some((next.handle.clone(), std::time::Instant::now()));
                let waker = {
                    let mut slot = next.slot.lock();
                    slot.granted = true;
                    slot.waker.take()
                };
                next.granted.notify_all();
                waker
            }
            None => {
                state.held = false;
                state.owner = None;
                state.holder = None;
                None
            }
        }
    }

    /// `waiter` gives up. Returns true when the lock had been handed to it
    /// already: it holds the lock then, and must release it.
    pub(crate) fn leave(&self, waiter: &Arc<Waiter>) -> bool {
        let mut state = self.state.lock();
        if waiter.slot.lock().granted {
            return true;
        }
        state.queue.retain(|w| !Arc::ptr_eq(w, waiter));
        false
    }
}

impl Waiter {
    /// Blocks until the lock is handed over, or `deadline` passes (false).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut slot = self.slot.lock();
        while !slot.granted {
            match deadline {
                None => slot = self.granted.wait(slot),
                Some(d) => {
                    let (s, timed_out) = self.granted.wait_until(slot, d);
                    slot = s;
                    if timed_out {
                        return slot.granted;
                    }
                }
            }
        }
        true
    }

    /// Whether the lock was handed over; if not, `waker` is woken when it
    /// is.
    pub(crate) fn poll_granted(&self, waker: &Waker) -> bool {
        let mut slot = self.slot.lock();
        if slot.granted {
            return true;
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(waker) => {}
            w => *w = Some(waker.clone()),
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hand_off_is_fifo_and_never_frees_the_lock_between() {
        let lock = TableLock::default();
        let (a, b, c) = (owner(1), owner(2), owner(3));
        assert!(matches!(lock.acquire(a, &handle(), true), Acquire::Held));
        let Acquire::Queued(wb) = lock.acquire(b, &handle(), true) else {
            panic!("b not queued")
        };
        let Acquire::Queued(wc) = lock.acquire(c, &handle(), true) else {
            panic!("c not queued")
        };
        lock.release();
        // b has it; a newcomer cannot take it, c is still queued.
        assert!(wb.wait(Some(Instant::now())));
        assert!(lock.held_by(b));
        assert!(matches!(
            lock.acquire(owner(4), &handle(), false),
            Acquire::Busy
        ));
        assert!(!wc.wait(Some(Instant::now() + Duration::from_millis(1))));
        lock.release();
        assert!(wc.wait(None));
        assert!(lock.held_by(c));
        lock.release();
        assert!(matches!(
            lock.acquire(owner(4), &handle(), false),
            Acquire::Held
        ));
    }

    #[test]
    fn the_owner_asking_again_is_a_conflict_not_a_wait() {
        let lock = TableLock::default();
        let a = owner(1);
        assert!(matches!(lock.acquire(a, &handle(), true), Acquire::Held));
        assert!(matches!(
            lock.acquire(owner(1), &handle(), true),
            Acquire::Conflict
        ));
        // Re-owned by another thread: the first one may wait now.
        lock.reown(owner(9));
        assert!(matches!(
            lock.acquire(owner(1), &handle(), true),
            Acquire::Queued(_)
        ));
    }

    #[test]
    fn a_waiter_that_leaves_is_skipped_or_keeps_what_it_was_handed() {
        let lock = TableLock::default();
        assert!(matches!(
            lock.acquire(owner(1), &handle(), true),
            Acquire::Held
        ));
        let Acquire::Queued(w2) = lock.acquire(owner(2), &handle(), true) else {
            panic!()
        };
        let Acquire::Queued(w3) = lock.acquire(owner(3), &handle(), true) else {
            panic!()
        };
        assert!(!lock.leave(&w2));
        lock.release();
        assert!(lock.held_by(owner(3)));
        // Handed over before it left: it holds the lock.
        assert!(lock.leave(&w3));
        lock.release();
        assert!(matches!(
            lock.acquire(owner(5), &handle(), false),
            Acquire::Held
        ));
    }

    fn handle() -> Arc<str> {
        Arc::from("test")
    }

    #[test]
    fn the_holder_is_named_when_taken_and_handed_over_and_cleared_when_free() {
        let lock = TableLock::default();
        let (first, second): (Arc<str>, Arc<str>) = (Arc::from("first"), Arc::from("second"));
        assert!(lock.holder().is_none());
        assert!(matches!(
            lock.acquire(owner(1), &first, true),
            Acquire::Held
        ));
        assert_eq!(lock.holder().map(|h| h.0), Some(first.clone()));
        let Acquire::Queued(w) = lock.acquire(owner(2), &second, true) else {
            panic!("not queued")
        };
        // Queued is not holding.
        assert_eq!(lock.holder().map(|h| h.0), Some(first));
        lock.release();
        assert!(w.wait(None));
        assert_eq!(lock.holder().map(|h| h.0), Some(second));
        lock.release();
        assert!(lock.holder().is_none());
    }

    fn owner(id: u64) -> Owner {
        Owner(id)
    }
}
