//! Per-object retry queue with exponential backoff and jitter.

use std::collections::{BTreeMap, BTreeSet};

use crate::fast_hash::FastMap;
use std::sync::Arc;
use std::time::Duration;

use statedb::{Key, Revision};
use tokio::time::Instant;

use crate::time::deadline;

struct Entry<Obj> {
    object: Arc<Obj>,
    /// The object was deleted from the table: retry deleting it from the
    /// target (there is no row to carry its status).
    hard_delete: bool,
    /// The revision of the desired version that failed (for a hard
    /// delete: of the delete): the retry low watermark is the least of
    /// these.
    since: Revision,
    attempts: u32,
    /// When it is due; `None` while its retry is in flight.
    due: Option<Instant>,
    error: String,
}

/// One queued retry, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryInfo {
    pub key: Key,
    pub attempts: u32,
    pub error: String,
    pub due: Option<Instant>,
    pub hard_delete: bool,
    pub since: Revision,
}

/// A retry due now: what to look up again and run.
pub(crate) struct Due<Obj> {
    pub key: Key,
    pub object: Arc<Obj>,
    pub hard_delete: bool,
    pub since: Revision,
    /// An operation failed (not only a lost status race to look at).
    pub failed: bool,
}

/// Failed objects by primary key, ordered by when they are due again.
pub(crate) struct RetryQueue<Obj> {
    min: Duration,
    max: Duration,
    jitter: f64,
    entries: FastMap<Key, Entry<Obj>>,
    by_due: BTreeSet<(Instant, Key)>,
    /// How many entries have each `since`: the low watermark is the first.
    by_since: BTreeMap<Revision, usize>,
    hard_deletes: usize,
    /// Bumped by every change to what [`RetryQueue::info`] shows, so a
    /// reader can tell the list did not move without building it.
    generation: u64,
}

impl<Obj> RetryQueue<Obj> {
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        RetryQueue {
            min,
            max,
            jitter: jitter.clamp(0.0, 1.0),
            entries: FastMap::default(),
            by_due: BTreeSet::new(),
            by_since: BTreeMap::new(),
            hard_deletes: 0,
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Changes with every insert, removal, or change of a due time.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn insert(&mut self, pk: Key, e: Entry<Obj>) {
        self.generation = self.generation.wrapping_add(1);
        *self.by_since.entry(e.since).or_default() += 1;
        self.hard_deletes += usize::from(e.hard_delete);
        if let Some(due) = e.due {
            self.by_due.insert((due, pk.clone()));
        }
        self.entries.insert(pk, e);
    }

    /// The delay before attempt `attempts + 1` without jitter:
    /// min · 2^(attempts-1), capped at max.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(31);
        self.min
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The backoff, up to `jitter` of it earlier at random.
    fn jittered(&self, attempts: u32) -> Duration {
        let d = self.backoff(attempts);
        if self.jitter == 0.0 {
            return d;
        }
        let cut = self.jitter * rand::random::<f64>();
        d.mul_f64(1.0 - cut)
    }

    /// Records a failure of `object` (`since`: the revision of the version
    /// that failed); returns the delay until its retry.
    pub fn add(
        &mut self,
        pk: Key,
        object: Arc<Obj>,
        since: Revision,
        error: String,
        now: Instant,
    ) -> Duration {
        self.add_entry(pk, object, false, since, error, now)
    }

    /// Records a failed delete of an object deleted from the table.
    pub fn add_hard_delete(
        &mut self,
        pk: Key,
        object: Arc<Obj>,
        revision: Revision,
        error: String,
        now: Instant,
    ) -> Duration {
        self.add_entry(pk, object, true, revision, error, now)
    }

    fn add_entry(
        &mut self,
        pk: Key,
        object: Arc<Obj>,
        hard_delete: bool,
        since: Revision,
        error: String,
        now: Instant,
    ) -> Duration {
        let (attempts, since) = match self.entries.get(&pk) {
            // A failure of the same version keeps its first revision.
            Some(e) => (e.attempts.saturating_add(1), e.since.min(since)),
            None => (1, since),
        };
        self.remove(&pk);
        let delay = self.jittered(attempts);
        let due = deadline(now, delay);
        self.insert(
            pk,
            Entry {
                object,
                hard_delete,
                since,
                attempts,
                due: Some(due),
                error,
            },
        );
        delay
    }

    /// Makes `pk` due at once, keeping its attempts (or queues it with
    /// `error` if absent): its status write lost a race, so it must be
    /// looked at again.
    pub fn recheck(&mut self, pk: Key, object: Arc<Obj>, since: Revision, now: Instant) {
        if let Some(e) = self.entries.get_mut(&pk) {
            self.generation = self.generation.wrapping_add(1);
            if let Some(due) = e.due.take() {
                self.by_due.remove(&(due, pk.clone()));
            }
            e.due = Some(now);
            e.object = object;
            self.by_due.insert((now, pk));
            return;
        }
        self.insert(
            pk,
            Entry {
                object,
                hard_delete: false,
                since,
                attempts: 0,
                due: Some(now),
                error: "status write lost a race; looking again".into(),
            },
        );
    }

    /// The revision `pk`'s retry stands for, if it has one.
    pub fn since_of(&self, pk: &[u8]) -> Option<Revision> {
        self.entries.get(pk).map(|e| e.since)
    }

    /// Forgets `pk`'s retry if it stands for nothing newer than `since`:
    /// an operation's success settles the failures it covers, not one of
    /// a version that came after it started. A newer one parked behind
    /// the operation is made due now, to be looked at again.
    pub fn remove_up_to(&mut self, pk: &[u8], since: Revision, now: Instant) {
        let Some(e) = self.entries.get_mut(pk) else {
            return;
        };
        if e.since <= since {
            self.remove(pk);
        } else if e.due.is_none() {
            self.generation = self.generation.wrapping_add(1);
            e.due = Some(now);
            self.by_due.insert((now, Key::from_slice(pk)));
        }
    }

    /// Forgets `pk` (success, a new version, or deletion).
    pub fn remove(&mut self, pk: &[u8]) {
        let Some(e) = self.entries.remove(pk) else {
            return;
        };
        self.generation = self.generation.wrapping_add(1);
        if let Some(due) = e.due {
            self.by_due.remove(&(due, Key::from_slice(pk)));
        }
        self.hard_deletes -= usize::from(e.hard_delete);
        if let Some(n) = self.by_since.get_mut(&e.since) {
            *n -= 1;
            if *n == 0 {
                self.by_since.remove(&e.since);
            }
        }
    }

    /// When the earliest retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_due.first().map(|(t, _)| *t)
    }

    /// Takes up to `limit` retries due at `now`. Taken entries stay
    /// queued, with their attempts, but are not due again until re-added
    /// or rechecked. Due keys for which `skip` holds (work for them is
    /// queued or running) are parked the same way without being taken:
    /// that work's outcome re-adds, rechecks or removes them. Left due,
    /// they would keep the loop awake with nothing it may do.
    pub fn take_due(
        &mut self,
        now: Instant,
        limit: usize,
        skip: impl Fn(&[u8]) -> bool,
    ) -> Vec<Due<Obj>> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((t, k)) = self.by_due.first().cloned() else {
                break;
            };
            if t > now {
                break;
            }
            self.by_due.remove(&(t, k.clone()));
            self.generation = self.generation.wrapping_add(1);
            let Some(e) = self.entries.get_mut(&k) else {
                continue;
            };
            e.due = None;
            if !skip(&k) {
                out.push(Due {
                    key: k,
                    object: e.object.clone(),
                    hard_delete: e.hard_delete,
                    since: e.since,
                    failed: e.attempts > 0,
                });
            }
        }
        out
    }

    /// True if `pk` is queued.
    pub fn contains(&self, pk: &[u8]) -> bool {
        self.entries.contains_key(pk)
    }

    /// True if `pk` waits for a retry of a hard delete.
    pub fn is_hard_delete(&self, pk: &[u8]) -> bool {
        self.entries.get(pk).is_some_and(|e| e.hard_delete)
    }

    /// Queued hard deletes.
    pub fn hard_deletes(&self) -> usize {
        self.hard_deletes
    }

    /// The least revision still failing (the retry low watermark).
    pub fn low_watermark(&self) -> Option<Revision> {
        self.by_since.keys().next().copied()
    }

    /// The queued retries, due first (then those in flight), up to
    /// `limit`. Costs `limit` steps, not the queue's length: it runs after
    /// every pass that changed the queue.
    pub fn info(&self, limit: usize) -> Vec<RetryInfo> {
        let due = self.by_due.iter().map(|(_, k)| k);
        let parked = self
            .entries
            .iter()
            .filter(|(_, e)| e.due.is_none())
            .map(|(k, _)| k);
        due.chain(parked)
            .take(limit)
            .filter_map(|k| {
                let e = self.entries.get(k)?;
                Some(RetryInfo {
                    key: k.clone(),
                    attempts: e.attempts,
                    error: e.error.clone(),
                    due: e.due,
                    hard_delete: e.hard_delete,
                    since: e.since,
                })
            })
            .collect()
    }

    /// The last error of up to `limit` queued objects.
    pub fn errors(&self, limit: usize) -> Vec<&str> {
        self.entries
            .values()
            .take(limit)
            .map(|e| e.error.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let q: RetryQueue<()> =
            RetryQueue::new(Duration::from_millis(10), Duration::from_millis(50), 0.0);
        let d: Vec<u64> = (1..=6).map(|a| q.backoff(a).as_millis() as u64).collect();
        assert_eq!(d, [10, 20, 40, 50, 50, 50]);
        assert_eq!(q.backoff(u32::MAX), Duration::from_millis(50));
        let q: RetryQueue<()> = RetryQueue::new(Duration::MAX, Duration::MAX, 0.5);
        assert_eq!(q.backoff(40), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_delays_within_bounds() {
        let mut q = RetryQueue::new(Duration::from_millis(100), Duration::from_secs(1), 0.5);
        let now = Instant::now();
        let delays: BTreeSet<Duration> = (0..50u32)
            .map(|i| {
                let k = Key::from_slice(&i.to_be_bytes());
                q.add(k, Arc::new(()), 1, "e".into(), now)
            })
            .collect();
        assert!(delays.len() > 10, "delays in lockstep: {delays:?}");
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(50) && *d <= Duration::from_millis(100))
        );
        // Duration::MAX backoff: far in the future, no panic.
        let mut q = RetryQueue::new(Duration::MAX, Duration::MAX, 0.2);
        q.add(Key::from_slice(b"a"), Arc::new(()), 1, "e".into(), now);
        assert!(q.next_due().unwrap() > now + Duration::from_secs(86_400));
    }

    #[tokio::test(start_paused = true)]
    async fn queue_orders_by_due_takes_and_rechecks() {
        let mut q = RetryQueue::new(Duration::from_millis(10), Duration::from_secs(1), 0.0);
        let now = Instant::now();
        let a = Key::from_slice(b"a");
        let b = Key::from_slice(b"b");
        assert_eq!(
            q.add(a.clone(), Arc::new(1), 5, "e1".into(), now),
            Duration::from_millis(10)
        );
        assert_eq!(
            q.add(a.clone(), Arc::new(1), 7, "e2".into(), now),
            Duration::from_millis(20)
        );
        q.add(b.clone(), Arc::new(2), 3, "e3".into(), now);
        assert_eq!(q.len(), 2);
        assert_eq!(q.low_watermark(), Some(3));
        assert_eq!(q.next_due(), Some(now + Duration::from_millis(10)));
        let taken = q.take_due(now + Duration::from_millis(15), 10, |_| false);
        assert_eq!(taken.len(), 1);
        assert_eq!(&taken[0].key[..], b"b");
        // Taken: in flight, not due again, still counted. A due key with
        // work in the scheduler is parked, not taken, and wakes nobody.
        assert!(
            q.take_due(now + Duration::from_secs(5), 10, |k| k == b"a")
                .is_empty()
        );
        assert_eq!(q.len(), 2);
        assert_eq!(q.next_due(), None, "a parked key keeps the loop awake");
        q.recheck(b.clone(), Arc::new(2), 3, now);
        assert_eq!(q.next_due(), Some(now));
        q.remove(&a);
        q.remove(&b);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_due(), None);
        // After removal, attempts start over.
        assert_eq!(
            q.add(a, Arc::new(1), 1, "e".into(), now),
            Duration::from_millis(10)
        );
    }

    /// The published failing list is rebuilt only when the generation
    /// moved: every change to what `info` shows must move it, and reads
    /// must not.
    #[tokio::test(start_paused = true)]
    async fn every_change_info_shows_moves_the_generation() {
        let mut q = RetryQueue::new(Duration::from_millis(10), Duration::from_secs(1), 0.0);
        let now = Instant::now();
        let a = Key::from_slice(b"a");
        let mut last = q.generation();
        let mut moved = |q: &RetryQueue<i32>, what: &str| {
            assert_ne!(q.generation(), last, "{what} did not move the generation");
            last = q.generation();
        };
        q.add(a.clone(), Arc::new(1), 5, "e1".into(), now);
        moved(&q, "add");
        q.add(a.clone(), Arc::new(1), 5, "e2".into(), now);
        moved(&q, "a second failure (attempts, error)");
        q.take_due(now + Duration::from_secs(1), 10, |_| false);
        moved(&q, "take_due (no longer due)");
        q.remove_up_to(&a, 4, now);
        moved(&q, "remove_up_to of an older version (due again)");
        q.take_due(now + Duration::from_secs(1), 10, |_| false);
        moved(&q, "take_due again");
        q.recheck(a.clone(), Arc::new(1), 5, now);
        moved(&q, "recheck");
        let before = q.generation();
        let _ = (
            q.info(10),
            q.errors(10),
            q.len(),
            q.low_watermark(),
            q.next_due(),
        );
        assert_eq!(q.generation(), before, "reads moved the generation");
        q.remove(&a);
        assert_ne!(q.generation(), before, "remove did not move the generation");
    }
}
