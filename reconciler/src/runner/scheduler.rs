//! The in-flight set: work waits in arrival order, up to `concurrency`
//! units (an operation or a batch) run at once, a new one starts as soon
//! as one finishes, and never two on one key: work for a key in flight
//! waits until it is done (newer work for a waiting key replaces the
//! older).

use std::collections::VecDeque;

use crate::fast_hash::{FastMap, FastSet};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use statedb::Key;

use super::op::Unit;
use super::work::{Outcome, Work};

pub(super) struct Scheduler<Obj> {
    running: FuturesUnordered<Unit<Obj>>,
    /// Keys with an operation in flight.
    busy: FastSet<Key>,
    /// Work not started, by key (at most one per key).
    queued: FastMap<Key, Work<Obj>>,
    /// The queued keys that are not busy, oldest first.
    order: VecDeque<Key>,
    /// Bumped whenever the set of held keys (queued or busy) changes.
    generation: u64,
}

impl<Obj> Scheduler<Obj> {
    pub fn new() -> Self {
        Scheduler {
            running: FuturesUnordered::new(),
            busy: FastSet::default(),
            queued: FastMap::default(),
            order: VecDeque::new(),
            generation: 0,
        }
    }

    /// Queues `w`; returns the older work it replaced (same key, not yet
    /// started).
    pub fn queue(&mut self, w: Work<Obj>) -> Option<Work<Obj>> {
        let pk = w.pk.clone();
        let old = self.queued.insert(pk.clone(), w);
        if old.is_none() {
            self.generation = self.generation.wrapping_add(1);
        }
        if old.is_none() && !self.busy.contains(&pk) {
            self.order.push_back(pk);
        }
        old
    }

    /// Changes whenever [`Scheduler::holds`] may answer differently.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Work for `pk` is queued or running.
    pub fn holds(&self, pk: &[u8]) -> bool {
        self.busy.contains(pk) || self.queued.contains_key(pk)
    }

    /// The `since` of the work queued for `pk`, if any.
    pub fn queued_since(&self, pk: &[u8]) -> Option<statedb::Revision> {
        self.queued.get(pk).map(|w| w.since)
    }

    pub fn is_queued(&self, pk: &[u8]) -> bool {
        self.queued.contains_key(pk)
    }

    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// Queued work that could start now (its key is not busy).
    pub fn startable(&self) -> usize {
        self.order.len()
    }

    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    pub fn busy_len(&self) -> usize {
        self.busy.len()
    }

    /// Takes up to `n` startable works, oldest first; their keys are busy
    /// until [`Scheduler::release`].
    pub fn take(&mut self, n: usize) -> Vec<Work<Obj>> {
        let mut out = Vec::with_capacity(n.min(self.order.len()));
        while out.len() < n {
            let Some(pk) = self.order.pop_front() else {
                break;
            };
            if let Some(w) = self.queued.remove(&pk) {
                self.generation = self.generation.wrapping_add(1);
                self.busy.insert(pk);
                out.push(w);
            }
        }
        out
    }

    /// Takes the oldest startable work, as [`Scheduler::take`] does.
    pub fn take_one(&mut self) -> Option<Work<Obj>> {
        while let Some(pk) = self.order.pop_front() {
            if let Some(w) = self.queued.remove(&pk) {
                self.generation = self.generation.wrapping_add(1);
                self.busy.insert(pk);
                return Some(w);
            }
        }
        None
    }

    /// Runs `unit` (whose keys were taken).
    pub fn spawn(&mut self, unit: Unit<Obj>) {
        self.running.push(unit);
    }

    /// A key's operation is done: work queued for it meanwhile goes first.
    pub fn release(&mut self, pk: &[u8]) {
        self.generation = self.generation.wrapping_add(1);
        if self.busy.remove(pk) && self.queued.contains_key(pk) {
            self.order.push_front(Key::from_slice(pk));
        }
    }

    /// A finished unit, if one is ready now.
    pub fn ready(&mut self) -> Option<Vec<Outcome<Obj>>> {
        if self.running.is_empty() {
            return None;
        }
        self.running.next().now_or_never().flatten()
    }

    /// The next unit to finish; pending forever when none runs.
    pub async fn next(&mut self) -> Vec<Outcome<Obj>> {
        match self.running.next().await {
            Some(o) => o,
            None => std::future::pending().await,
        }
    }

    /// Drops every queued work (at shutdown), returning it.
    pub fn drain_queued(&mut self) -> Vec<Work<Obj>> {
        self.order.clear();
        self.generation = self.generation.wrapping_add(1);
        self.queued.drain().map(|(_, w)| w).collect()
    }
}
