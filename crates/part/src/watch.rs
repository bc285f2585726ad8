//! One-shot watch channels: closed once, waited on from threads or tokio.
//!
//! A [`Watch`] is handed out by queries; it closes when the data it covers
//! changes in a committed and published transaction. Only the tree (through
//! [`WatchesToClose`]) can close a watch: readers can only wait.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
#[cfg(not(loom))]
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::sync::{self, AtomicBool, Condvar, Mutex, Ordering};

/// Closes the watches of a node that a commit replaced (implemented by
/// the tree's nodes; defined here so that this module needs nothing of
/// them).
pub(crate) trait Seal: Send + Sync {
    fn seal(&self, leaf_shared: bool);
}

/// Replaced nodes and whether their leaf watch moved to the copy. Inline
/// room for a few: a root-only tree retires just its root, and a commit
/// over several such trees then needs no allocation.
pub(crate) type Retired = smallvec::SmallVec<[(triomphe::Arc<dyn Seal>, bool); 4]>;

/// A one-shot notification: open until the watched data changes, then
/// closed forever.
///
/// Cloning is cheap (one reference count). A watch can be waited on from a
/// blocking thread ([`Watch::wait`], [`Watch::wait_timeout`]), awaited from
/// async code ([`Watch::closed`]), or combined with others in a
/// [`WatchSet`].
#[derive(Clone)]
pub struct Watch {
    inner: sync::Arc<WatchInner>,
}

struct WatchInner {
    closed: AtomicBool,
    /// Waiters by id: registering and removing one is O(log n) however
    /// many wait on the same watch (it was a linear scan). Ordered, not
    /// hashed: `close` then wakes in registration order on every run,
    /// which loom's replay of executions needs.
    waiters: Mutex<BTreeMap<u64, Waiter>>,
}

enum Waiter {
    Thread(sync::Arc<Signal>),
    Task(Waker),
}

/// A thread parked on one or more watches.
struct Signal {
    fired: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn new() -> sync::Arc<Self> {
        sync::Arc::new(Signal {
            fired: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    fn fire(&self) {
        *self.fired.lock() = true;
        self.cv.notify_all();
    }
    /// Waits until fired or the deadline passes; returns whether fired.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut fired = self.fired.lock();
        while !*fired {
            match deadline {
                None => fired = self.cv.wait(fired),
                Some(d) => {
                    let (guard, timed_out) = self.cv.wait_until(fired, d);
                    if timed_out {
                        return *guard;
                    }
                    fired = guard;
                }
            }
        }
        true
    }
}

// A plain std atomic even under loom: ids only need to be unique.
static NEXT_WAITER_ID: AtomicU64 = AtomicU64::new(1);

fn next_waiter_id() -> u64 {
    NEXT_WAITER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A watch that is closed from the start: handed out for nodes that were
/// already replaced, so a late reader never waits on a dead node. (Loom
/// objects cannot outlive one model run, so under loom each call makes a
/// new one.)
#[cfg(not(loom))]
static CLOSED: LazyLock<Watch> = LazyLock::new(|| Watch::with_state(true));

impl Watch {
    pub(crate) fn new() -> Watch {
        Watch::with_state(false)
    }

    /// Built with its state rather than closed after.
    fn with_state(closed: bool) -> Watch {
        Watch {
            inner: sync::Arc::new(WatchInner {
                closed: AtomicBool::new(closed),
                waiters: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// A watch that is already closed.
    pub fn closed_watch() -> Watch {
        #[cfg(not(loom))]
        {
            CLOSED.clone()
        }
        #[cfg(loom)]
        {
            Watch::with_state(true)
        }
    }

    /// Returns true once the watch has been closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Returns true if both handles refer to the same watch.
    pub fn same_as(&self, other: &Watch) -> bool {
        sync::Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The address of the shared state: equal for handles of one watch.
    fn identity(&self) -> usize {
        let inner: &WatchInner = &self.inner;
        inner as *const WatchInner as usize
    }

    pub(crate) fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiters = std::mem::take(&mut *self.inner.waiters.lock());
        for w in waiters.into_values() {
            match w {
                Waiter::Thread(s) => s.fire(),
                Waiter::Task(waker) => waker.wake(),
            }
        }
    }

    /// Registers a waiter unless already closed. Returns false when closed.
    fn register(&self, id: u64, waiter: Waiter) -> bool {
        let mut waiters = self.inner.waiters.lock();
        // Checked under the lock: `close` sets the flag before taking the
        // list, so a waiter added here is either seen by `close` or we see
        // the flag.
        if self.is_closed() {
            return false;
        }
        waiters.insert(id, waiter);
        true
    }

    fn deregister(&self, id: u64) {
        self.inner.waiters.lock().remove(&id);
    }

    /// Blocks the current thread until the watch closes.
    pub fn wait(&self) {
        self.wait_deadline(None);
    }

    /// Blocks until the watch closes or `timeout` passes. Returns true if
    /// the watch closed.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(Instant::now().checked_add(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> bool {
        if self.is_closed() {
            return true;
        }
        let id = next_waiter_id();
        let signal = Signal::new();
        if !self.register(id, Waiter::Thread(signal.clone())) {
            return true;
        }
        let fired = signal.wait(deadline);
        if !fired {
            self.deregister(id);
        }
        fired || self.is_closed()
    }

    /// A future that completes when the watch closes.
    pub fn closed(&self) -> Closed {
        Closed {
            watch: self.clone(),
            id: None,
        }
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl std::future::IntoFuture for Watch {
    type Output = ();
    type IntoFuture = Closed;
    fn into_future(self) -> Closed {
        Closed {
            watch: self,
            id: None,
        }
    }
}

/// Future returned by [`Watch::closed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Closed {
    watch: Watch,
    id: Option<u64>,
}

impl Future for Closed {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.watch.is_closed() {
            return Poll::Ready(());
        }
        let id = *self.id.get_or_insert_with(next_waiter_id);
        if self.watch.register(id, Waiter::Task(cx.waker().clone())) {
            Poll::Pending
        } else {
            self.id = None;
            Poll::Ready(())
        }
    }
}

impl Drop for Closed {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.watch.deregister(id);
        }
    }
}

/// The closing end of a watch made with [`Watch::channel`]: for watches
/// that are not tied to tree nodes (e.g. "table initialized").
#[derive(Debug)]
pub struct WatchCloser {
    watch: Watch,
}

impl WatchCloser {
    /// Closes the watch, waking every waiter. Closing twice is harmless.
    pub fn close(&self) {
        self.watch.close();
    }

    /// The watch this closer closes.
    pub fn watch(&self) -> Watch {
        self.watch.clone()
    }
}

impl Watch {
    /// A new open watch and the only handle able to close it.
    pub fn channel() -> (WatchCloser, Watch) {
        let w = Watch::new();
        (WatchCloser { watch: w.clone() }, w)
    }
}

/// The watches a commit invalidated. Close them only after the new tree is
/// published, so that a woken reader sees the new data.
#[derive(Default)]
#[must_use = "watches must be closed after publishing the new tree"]
pub struct WatchesToClose {
    pub(crate) watches: Vec<Watch>,
    /// Replaced nodes: their watches (if any was handed out) close, and
    /// those never handed out are sealed closed.
    pub(crate) retired: Retired,
}

impl WatchesToClose {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of watches and replaced nodes to close.
    pub fn len(&self) -> usize {
        self.watches.len() + self.retired.len()
    }

    /// True if there is nothing to close.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty() && self.retired.is_empty()
    }

    /// Moves all of `other` into `self`.
    pub fn append(&mut self, mut other: WatchesToClose) {
        if self.watches.is_empty() {
            self.watches = other.watches;
        } else {
            self.watches.append(&mut other.watches);
        }
        if self.retired.is_empty() {
            self.retired = other.retired;
        } else {
            self.retired.extend(other.retired.drain(..));
        }
    }

    /// Closes every watch, waking all waiters.
    pub fn close(self) {
        for (node, leaf_shared) in &self.retired {
            node.seal(*leaf_shared);
        }
        for w in &self.watches {
            w.close();
        }
    }
}

/// Several watches waited on together: returns when any of them closes.
///
/// Adding is O(1): duplicates are recognised by identity (a hash of the
/// watch's address), so a set of a million watches builds in linear time.
#[derive(Default, Clone, Debug)]
pub struct WatchSet {
    watches: Vec<Watch>,
    ids: HashSet<usize>,
}

impl WatchSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a watch to the set (once: adding the same watch again is a
    /// no-op).
    pub fn add(&mut self, watch: Watch) {
        if self.ids.insert(watch.identity()) {
            self.watches.push(watch);
        }
    }

    /// Moves every watch of `other` into this set.
    pub fn merge(&mut self, other: WatchSet) {
        for w in other.watches {
            self.add(w);
        }
    }

    /// Number of distinct watches in the set.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// True if the set holds no watch.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Removes all watches.
    pub fn clear(&mut self) {
        self.watches.clear();
        self.ids.clear();
    }

    /// The watches of the set that are closed now.
    pub fn closed_now(&self) -> Vec<Watch> {
        self.watches
            .iter()
            .filter(|w| w.is_closed())
            .cloned()
            .collect()
    }

    /// Blocks until at least one watch closes or `timeout` passes; returns
    /// the closed watches (empty on timeout, or if the set is empty).
    pub fn wait_timeout(&self, timeout: Duration) -> Vec<Watch> {
        self.wait_deadline(Instant::now().checked_add(timeout))
    }

    /// Blocks until at least one watch closes; returns the closed watches.
    /// Returns at once with nothing if the set is empty.
    pub fn wait(&self) -> Vec<Watch> {
        self.wait_deadline(None)
    }

    /// Like [`WatchSet::wait_timeout`], then batches: after the first
    /// watch closes, keeps waiting while further watches of the set close
    /// less than `settle` apart, so that a burst of changes is handled in
    /// one go. Returns the closed watches (empty on timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a_closer, a) = part::Watch::channel();
    /// let (_b_closer, b) = part::Watch::channel();
    /// let mut set = part::WatchSet::new();
    /// set.add(a);
    /// set.add(b);
    /// a_closer.close();
    /// let closed = set.wait_settled(Duration::from_secs(5), Duration::from_millis(1));
    /// assert_eq!(closed.len(), 1);
    /// ```
    pub fn wait_settled(&self, timeout: Duration, settle: Duration) -> Vec<Watch> {
        let mut closed = self.wait_timeout(timeout);
        if closed.is_empty() || settle.is_zero() {
            return closed;
        }
        loop {
            let open = self.open_watches();
            if open.is_empty() {
                return closed;
            }
            let more = open.wait_timeout(settle);
            if more.is_empty() {
                return closed;
            }
            closed.extend(more);
        }
    }

    /// The async form of [`WatchSet::wait_settled`] (without a timeout:
    /// drop the future to stop waiting). `sleep` is the runtime's timer,
    /// e.g. `tokio::time::sleep`; this crate depends on no runtime.
    pub async fn wait_async_settled<F>(
        &self,
        settle: Duration,
        mut sleep: impl FnMut(Duration) -> F,
    ) -> Vec<Watch>
    where
        F: Future<Output = ()>,
    {
        let mut closed = self.wait_async().await;
        if settle.is_zero() {
            return closed;
        }
        loop {
            let open = self.open_watches();
            if open.is_empty() {
                return closed;
            }
            let timer = std::pin::pin!(sleep(settle));
            let any = std::pin::pin!(open.wait_async());
            match futures_select(any, timer).await {
                Some(more) => closed.extend(more),
                None => return closed,
            }
        }
    }

    /// The watches not closed yet, as a set of their own.
    fn open_watches(&self) -> WatchSet {
        let mut open = WatchSet::new();
        for w in self.watches.iter().filter(|w| !w.is_closed()) {
            open.add(w.clone());
        }
        open
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Vec<Watch> {
        if self.watches.is_empty() {
            return Vec::new();
        }
        let closed = self.closed_now();
        if !closed.is_empty() {
            return closed;
        }
        let id = next_waiter_id();
        let signal = Signal::new();
        let mut any_closed = false;
        for w in &self.watches {
            if !w.register(id, Waiter::Thread(signal.clone())) {
                any_closed = true;
                break;
            }
        }
        if !any_closed {
            signal.wait(deadline);
        }
        for w in &self.watches {
            w.deregister(id);
        }
        self.closed_now()
    }

    /// Completes when at least one watch closes, with the closed watches.
    /// Never completes for an empty set.
    pub async fn wait_async(&self) -> Vec<Watch> {
        let fut = AnyClosed {
            watches: &self.watches,
            id: next_waiter_id(),
        };
        fut.await;
        self.closed_now()
    }
}

impl Extend<Watch> for WatchSet {
    fn extend<I: IntoIterator<Item = Watch>>(&mut self, iter: I) {
        for w in iter {
            self.add(w);
        }
    }
}

impl FromIterator<Watch> for WatchSet {
    fn from_iter<I: IntoIterator<Item = Watch>>(iter: I) -> Self {
        let mut set = WatchSet::new();
        set.extend(iter);
        set
    }
}

/// The first of two futures to complete: `Some` with the first's output,
/// `None` when the second (a timer) completes first.
async fn futures_select<A, B>(mut a: Pin<&mut A>, mut b: Pin<&mut B>) -> Option<A::Output>
where
    A: Future,
    B: Future<Output = ()>,
{
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if b.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

struct AnyClosed<'a> {
    watches: &'a [Watch],
    id: u64,
}

impl Future for AnyClosed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for w in self.watches {
            if !w.register(self.id, Waiter::Task(cx.waker().clone())) {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

impl Drop for AnyClosed<'_> {
    fn drop(&mut self) {
        for w in self.watches {
            w.deregister(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Duration::MAX` (or any huge timeout) means "no deadline": it used
    /// to panic adding the timeout to the current instant.
    #[test]
    fn huge_timeouts_wait_without_overflow() {
        let closed = Watch::closed_watch();
        assert!(closed.wait_timeout(Duration::MAX));
        let mut set = WatchSet::new();
        set.add(closed);
        assert_eq!(set.wait_timeout(Duration::MAX).len(), 1);
        let w = Watch::new();
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            let mut set = WatchSet::new();
            set.add(w2.clone());
            (
                w2.wait_timeout(Duration::MAX),
                set.wait_timeout(Duration::MAX).len(),
            )
        });
        w.close();
        assert_eq!(t.join().unwrap(), (true, 1));
    }

    #[test]
    fn close_wakes_blocking_waiter() {
        let w = Watch::new();
        assert!(!w.is_closed());
        assert!(!w.wait_timeout(Duration::from_millis(1)));
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait_timeout(Duration::from_secs(30)));
        w.close();
        assert!(t.join().unwrap());
        assert!(w.is_closed());
        // Waiting on a closed watch returns at once.
        w.wait();
    }

    #[test]
    fn timed_out_waiters_are_removed() {
        let w = Watch::new();
        for _ in 0..10 {
            assert!(!w.wait_timeout(Duration::from_micros(10)));
        }
        assert!(w.inner.waiters.lock().is_empty());
    }

    #[test]
    fn watch_set_returns_closed_ones() {
        let a = Watch::new();
        let b = Watch::new();
        let mut set = WatchSet::new();
        set.add(a.clone());
        set.add(b.clone());
        set.add(a.clone());
        assert_eq!(set.len(), 2);
        assert!(set.wait_timeout(Duration::from_millis(1)).is_empty());
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.close());
        let closed = set.wait_timeout(Duration::from_secs(30));
        t.join().unwrap();
        assert_eq!(closed.len(), 1);
        assert!(closed[0].same_as(&b));
        assert!(a.inner.waiters.lock().is_empty());
    }

    #[tokio::test]
    async fn async_wait() {
        let w = Watch::new();
        let w2 = w.clone();
        let h = tokio::spawn(async move { w2.closed().await });
        tokio::task::yield_now().await;
        w.close();
        h.await.unwrap();
        let a = Watch::new();
        let b = Watch::new();
        let mut set = WatchSet::new();
        set.add(a.clone());
        set.add(b.clone());
        let h = tokio::spawn(async move { set.wait_async().await.len() });
        tokio::task::yield_now().await;
        a.close();
        assert_eq!(h.await.unwrap(), 1);
        assert!(b.inner.waiters.lock().is_empty());
    }

    #[test]
    fn closed_watch_is_closed() {
        assert!(Watch::closed_watch().is_closed());
    }
}
