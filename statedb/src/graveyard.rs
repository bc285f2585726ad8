//! The graveyard: deleted objects kept until every change iterator has
//! seen their delete, the iterators' delete watermarks, and collection.
//!
//! This module decides what may be dropped; it calls nothing above it.
//! When a collection runs is decided by the transactions (`txn.rs`): every
//! commit collects the tables it wrote, and a change iterator that moves
//! its watermark asks for a clean-up commit there.

use part::{Key, Tree, Txn, WatchesToClose};

use crate::Revision;
use crate::object::Object;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

/// The delete watermarks of a table's live change iterators: each holds
/// the revision of the last delete it has seen.
pub(crate) struct Trackers {
    watermarks: Mutex<Vec<Watermark>>,
    count: AtomicUsize,
    /// Set when the graveyard could be collected but the table was locked:
    /// the lock holder collects when it finishes, commit or abort.
    requested: AtomicBool,
}

/// One change iterator's place, registered with [`Trackers::add`].
pub(crate) struct Tracker {
    /// Revision of the last delete it has seen.
    pub seen: AtomicU64,
    /// How many deleted objects it may hold back (`usize::MAX`: no bound).
    pub max_lag: AtomicUsize,
    /// Set once it fell further behind than `max_lag`: it holds nothing
    /// back any more, and its reads fail until it is dropped.
    pub lapped: AtomicBool,
}

/// A change iterator's [`Tracker`], shared with the table.
pub(crate) type Watermark = Arc<Tracker>;

impl Trackers {
    pub fn new() -> Self {
        Trackers {
            watermarks: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            requested: AtomicBool::new(false),
        }
    }

    /// How many change iterators are alive.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// True if some change iterator is alive: deletes must then be kept.
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Graveyard entries at or below this revision can be collected
    /// (lapped iterators hold nothing back).
    pub fn low_watermark(&self) -> Revision {
        self.watermarks
            .lock()
            .iter()
            .filter(|t| !t.lapped.load(Ordering::Acquire))
            .map(|t| t.seen.load(Ordering::Acquire))
            .min()
            .unwrap_or(Revision::MAX)
    }

    /// Laps every bounded iterator that holds back more than its bound of
    /// the graveyard's entries (those deleted after its watermark). Costs
    /// nothing while the graveyard is within every bound; past one, at
    /// most the entries beyond it are counted.
    pub fn lap_behind<T: Send + Sync + 'static>(&self, graveyard: &GraveyardTxn<T>) {
        let len = graveyard.len();
        if len == 0 {
            return;
        }
        for t in self.watermarks.lock().iter() {
            let max_lag = t.max_lag.load(Ordering::Relaxed);
            if max_lag >= len || t.lapped.load(Ordering::Relaxed) {
                continue;
            }
            // It holds `len - below` entries: too many unless at least
            // `len - max_lag` lie at or below its watermark.
            let seen = t.seen.load(Ordering::Acquire);
            let needed = len - max_lag;
            let below = graveyard
                .by_revision
                .iter()
                .take(needed)
                .take_while(|(_, o)| o.revision <= seen)
                .count();
            if below < needed {
                t.lapped.store(true, Ordering::Release);
            }
        }
    }

    /// Registers an iterator that has seen every delete up to `seen`.
    pub fn add(&self, seen: Revision) -> Watermark {
        let t = Arc::new(Tracker {
            seen: AtomicU64::new(seen),
            max_lag: AtomicUsize::new(usize::MAX),
            lapped: AtomicBool::new(false),
        });
        let mut all = self.watermarks.lock();
        all.push(t.clone());
        self.count.store(all.len(), Ordering::Release);
        t
    }

    pub fn remove(&self, t: &Watermark) {
        let mut all = self.watermarks.lock();
        all.retain(|x| !Arc::ptr_eq(x, t));
        self.count.store(all.len(), Ordering::Release);
    }

    /// Whether the graveyard should be collected now: a collection was
    /// requested while the table was locked, or some of it (from `oldest`
    /// on) is seen by every iterator. Clears the request.
    pub fn wants_collection(&self, oldest: Option<Revision>) -> bool {
        // The watermarks' mutex orders this check against a change
        // iterator dropped concurrently: either we see it gone, or it sees
        // our published graveyard and asks for collection itself. (Its own
        // check can run before we publish, when our deletes are not
        // visible.)
        let collectable = oldest.is_some_and(|r| self.low_watermark() >= r);
        self.requested.swap(false, Ordering::AcqRel) || collectable
    }

    /// Asks the holder of the table's lock to collect when it finishes.
    pub fn request_collection(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// Forgets a pending request (a collection is about to run, or the
    /// table starts afresh in a new Db).
    pub fn clear_request(&self) {
        self.requested.store(false, Ordering::Release);
    }
}

/// A table's graveyard in one snapshot.
pub(crate) struct Graveyard<T> {
    /// Primary key -> deleted object.
    by_key: Tree<Object<T>>,
    /// Delete revision (big-endian) then primary key -> deleted object;
    /// the key carries the primary key so collection needs no user code.
    by_revision: Tree<Object<T>>,
}

impl<T> Clone for Graveyard<T> {
    fn clone(&self) -> Self {
        Graveyard {
            by_key: self.by_key.clone(),
            by_revision: self.by_revision.clone(),
        }
    }
}

impl<T> Graveyard<T> {
    pub fn new() -> Self {
        // Nobody watches the graveyard's own nodes.
        Graveyard {
            by_key: Tree::new_root_only_watch(),
            by_revision: Tree::new_root_only_watch(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Delete revision of the oldest entry.
    pub fn oldest(&self) -> Option<Revision> {
        self.by_revision.first().map(|(_, o)| o.revision)
    }

    /// The entries by delete revision.
    pub fn by_revision(&self) -> &Tree<Object<T>> {
        &self.by_revision
    }
}

impl<T: Send + Sync + 'static> Graveyard<T> {
    pub fn txn(&self) -> GraveyardTxn<T> {
        GraveyardTxn {
            by_key: self.by_key.txn(),
            by_revision: self.by_revision.txn(),
        }
    }
}

/// A table's graveyard being changed by a write transaction.
pub(crate) struct GraveyardTxn<T> {
    by_key: Txn<Object<T>>,
    by_revision: Txn<Object<T>>,
}

impl<T: Send + Sync + 'static> GraveyardTxn<T> {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The entries by delete revision, as of now.
    pub fn by_revision(&self) -> Tree<Object<T>> {
        self.by_revision.snapshot()
    }

    /// Keeps `dead` (deleted at its revision) for the change iterators.
    pub fn bury(&mut self, pk: &[u8], dead: Object<T>) {
        if let Some(prev) = self.by_key.insert(pk, dead.clone()) {
            self.by_revision.delete(&graveyard_key(prev.revision, pk));
        }
        self.by_revision
            .insert(&graveyard_key(dead.revision, pk), dead);
    }

    /// Drops the entry of `pk`: the key was inserted again, and iterators
    /// will see the insert instead.
    #[inline]
    pub fn remove(&mut self, pk: &[u8]) {
        if !self.by_key.is_empty()
            && let Some(g) = self.by_key.delete(pk)
        {
            self.by_revision.delete(&graveyard_key(g.revision, pk));
        }
    }

    /// Drops the entries every live change iterator has seen: those deleted
    /// at or below `low_watermark`. `last_revision` is the table's.
    /// Returns how many entries it dropped.
    pub fn collect(&mut self, low_watermark: Revision, last_revision: Revision) -> usize {
        if self.by_key.is_empty() {
            return 0;
        }
        if low_watermark >= last_revision {
            // Every iterator has seen every delete: drop both trees whole
            // instead of deleting entry by entry.
            let all = self.len();
            *self = Graveyard::new().txn();
            return all;
        }
        let dead: Vec<Key> = self
            .by_revision
            .iter()
            .take_while(|(_, o)| o.revision <= low_watermark)
            .map(|(k, _)| Key::from_slice(k))
            .collect();
        let collected = dead.len();
        for key in dead {
            self.by_revision.delete(&key);
            self.by_key.delete(&key[8..]);
        }
        collected
    }

    pub fn commit(self, watches: &mut WatchesToClose) -> Graveyard<T> {
        let (by_key, w) = self.by_key.commit();
        watches.append(w);
        let (by_revision, w) = self.by_revision.commit();
        watches.append(w);
        Graveyard {
            by_key,
            by_revision,
        }
    }
}

/// Key of the by-revision tree; `graveyard_key(rev, &[])` is where the
/// deletes from `rev` on start.
pub(crate) fn graveyard_key(revision: Revision, pk: &[u8]) -> Key {
    let mut k = Key::from_slice(&revision.to_be_bytes());
    k.extend_from_slice(pk);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(rev: Revision) -> Object<u32> {
        Object {
            data: std::sync::Arc::new(rev as u32),
            revision: rev,
        }
    }

    #[test]
    fn collect_drops_only_what_every_iterator_has_seen() {
        let mut g = Graveyard::<u32>::new().txn();
        g.bury(b"a", dead(3));
        g.bury(b"b", dead(5));
        g.bury(b"c", dead(7));
        g.collect(5, 7);
        assert_eq!(g.len(), 1);
        let left: Vec<Revision> = g.by_revision().iter().map(|(_, o)| o.revision).collect();
        assert_eq!(left, [7]);
        g.collect(7, 7);
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn a_second_delete_of_a_key_replaces_its_entry() {
        let mut g = Graveyard::<u32>::new().txn();
        g.bury(b"a", dead(3));
        g.bury(b"a", dead(6));
        assert_eq!(g.len(), 1);
        assert_eq!(g.by_revision().len(), 1);
        g.remove(b"a");
        assert_eq!(g.by_revision().len(), 0);
    }

    #[test]
    fn a_bounded_tracker_too_far_behind_is_lapped_and_holds_nothing_back() {
        let t = Trackers::new();
        let slow = t.add(0);
        slow.max_lag.store(2, Ordering::Relaxed);
        let fast = t.add(0);
        let mut g = Graveyard::<u32>::new().txn();
        g.bury(b"a", dead(1));
        g.bury(b"b", dead(2));
        t.lap_behind(&g);
        assert!(!slow.lapped.load(Ordering::Relaxed), "2 held, bound 2");
        g.bury(b"c", dead(3));
        // The unbounded one saw everything; the bounded one holds 3.
        fast.seen.store(3, Ordering::Relaxed);
        t.lap_behind(&g);
        assert!(slow.lapped.load(Ordering::Relaxed));
        assert_eq!(t.low_watermark(), 3);
        // Within its bound again by what it has seen: not lapped.
        let caught_up = t.add(0);
        caught_up.max_lag.store(1, Ordering::Relaxed);
        caught_up.seen.store(2, Ordering::Relaxed);
        t.lap_behind(&g);
        assert!(!caught_up.lapped.load(Ordering::Relaxed), "holds only 3");
    }

    #[test]
    fn trackers_low_watermark_is_the_minimum() {
        let t = Trackers::new();
        assert_eq!(t.low_watermark(), Revision::MAX);
        let a = t.add(4);
        let b = t.add(9);
        assert!(t.any());
        assert_eq!(t.low_watermark(), 4);
        t.remove(&a);
        assert_eq!(t.low_watermark(), 9);
        assert!(t.wants_collection(Some(9)));
        assert!(!t.wants_collection(Some(10)));
        t.request_collection();
        assert!(t.wants_collection(None));
        assert!(!t.wants_collection(None));
        t.remove(&b);
        assert!(!t.any());
    }
}
