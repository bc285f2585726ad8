//! Per-object retry queue with exponential backoff.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use statedb::Key;
use tokio::time::Instant;

struct Entry<Obj> {
    object: Arc<Obj>,
    /// The object was deleted from the table: retry deleting it from the
    /// target (there is no row to carry its status).
    hard_delete: bool,
    /// For a hard delete: the revision of the delete.
    revision: statedb::Revision,
    attempts: u32,
    due: Instant,
    error: String,
}

/// Failed objects by primary key, ordered by when they are due again.
pub(crate) struct RetryQueue<Obj> {
    min: Duration,
    max: Duration,
    entries: HashMap<Key, Entry<Obj>>,
    by_due: BTreeSet<(Instant, Key)>,
}

impl<Obj> RetryQueue<Obj> {
    pub fn new(min: Duration, max: Duration) -> Self {
        RetryQueue {
            min,
            max,
            entries: HashMap::new(),
            by_due: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The delay before attempt `attempts + 1`: min · 2^(attempts-1), capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(32);
        self.min
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Records a failure of `object`; returns the delay until its retry.
    pub fn add(&mut self, pk: Key, object: Arc<Obj>, error: String, now: Instant) -> Duration {
        self.add_entry(pk, object, (false, 0), error, now)
    }

    /// Records a failed delete of an object deleted from the table.
    pub fn add_hard_delete(
        &mut self,
        pk: Key,
        object: Arc<Obj>,
        revision: statedb::Revision,
        error: String,
        now: Instant,
    ) -> Duration {
        self.add_entry(pk, object, (true, revision), error, now)
    }

    fn add_entry(
        &mut self,
        pk: Key,
        object: Arc<Obj>,
        (hard_delete, revision): (bool, statedb::Revision),
        error: String,
        now: Instant,
    ) -> Duration {
        let attempts = self.entries.get(&pk).map_or(0, |e| e.attempts) + 1;
        self.remove(&pk);
        let delay = self.backoff(attempts);
        let due = now + delay;
        self.by_due.insert((due, pk.clone()));
        self.entries.insert(
            pk,
            Entry {
                object,
                hard_delete,
                revision,
                attempts,
                due,
                error,
            },
        );
        delay
    }

    /// Forgets `pk` (success, a new version, or deletion).
    pub fn remove(&mut self, pk: &[u8]) {
        if let Some(e) = self.entries.remove(pk) {
            self.by_due.remove(&(e.due, Key::from_slice(pk)));
        }
    }

    /// When the earliest retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_due.first().map(|(t, _)| *t)
    }

    /// The objects due at `now`, at most `limit`, each with whether it is
    /// a hard delete and that delete's revision; they stay queued (with
    /// their attempt count) until removed or re-added.
    pub fn due(&self, now: Instant, limit: usize) -> Vec<(Key, Arc<Obj>, bool, statedb::Revision)> {
        self.by_due
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .filter_map(|(_, k)| {
                self.entries
                    .get(k)
                    .map(|e| (k.clone(), e.object.clone(), e.hard_delete, e.revision))
            })
            .collect()
    }

    /// True if `pk` is queued.
    pub fn contains(&self, pk: &[u8]) -> bool {
        self.entries.contains_key(pk)
    }

    /// True if `pk` waits for a retry of a hard delete.
    pub fn is_hard_delete(&self, pk: &[u8]) -> bool {
        self.entries.get(pk).is_some_and(|e| e.hard_delete)
    }

    /// The keys of the queued objects, by when they are due.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.by_due.iter().map(|(_, k)| k)
    }

    /// The last error of every queued object.
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.by_due
            .iter()
            .filter_map(|(_, k)| self.entries.get(k).map(|e| e.error.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let q: RetryQueue<()> =
            RetryQueue::new(Duration::from_millis(10), Duration::from_millis(50));
        let d: Vec<u64> = (1..=6).map(|a| q.backoff(a).as_millis() as u64).collect();
        assert_eq!(d, [10, 20, 40, 50, 50, 50]);
        assert_eq!(q.backoff(1000), Duration::from_millis(50));
    }

    #[test]
    fn queue_orders_by_due_and_resets() {
        let mut q = RetryQueue::new(Duration::from_millis(10), Duration::from_secs(1));
        let now = Instant::now();
        let a = Key::from_slice(b"a");
        let b = Key::from_slice(b"b");
        assert_eq!(
            q.add(a.clone(), Arc::new(1), "e1".into(), now),
            Duration::from_millis(10)
        );
        assert_eq!(
            q.add(a.clone(), Arc::new(1), "e2".into(), now),
            Duration::from_millis(20)
        );
        q.add(b.clone(), Arc::new(2), "e3".into(), now);
        assert_eq!(q.len(), 2);
        assert_eq!(q.next_due(), Some(now + Duration::from_millis(10)));
        assert_eq!(q.due(now + Duration::from_millis(15), 10).len(), 1);
        assert_eq!(q.errors().collect::<Vec<_>>(), ["e3", "e2"]);
        q.remove(&a);
        q.remove(&b);
        assert_eq!(q.len(), 0);
        // After removal, attempts start over.
        assert_eq!(
            q.add(a, Arc::new(1), "e".into(), now),
            Duration::from_millis(10)
        );
    }
}
