//! Per-table state: the immutable snapshot in the root, and the private
//! copy a write transaction changes. Every write of a table goes through
//! [`TableTxn::upsert_with_key`] or [`TableTxn::delete`], with a [`Guard`].

use std::any::Any;
use std::sync::Arc;

use part::{Key, Read, Tree, Txn, Watch, WatchCloser, WatchesToClose};

use crate::Revision;
use crate::error::{Result, WriteError};
use crate::graveyard::{Graveyard, GraveyardTxn};
use crate::index::{IndexPos, KeySet, non_unique_key};
use crate::object::Object;
use crate::table_inner::TableInner;

/// A table's initializers: those registered and not yet done (id, name),
/// and, while any is pending, the closer of this uninitialized period's
/// watch. The period belongs to the committed state, so a reader of an
/// older snapshot holds the watch that the commit ending its period
/// closes (an aborted registration leaves no period behind).
#[derive(Clone, Default)]
pub(crate) struct Initializers {
    pub pending: Vec<(u64, String)>,
    pub period: Option<Arc<WatchCloser>>,
}

pub(crate) type PendingInitializers = Arc<Initializers>;

/// A table in one snapshot of the Db.
pub(crate) struct TableState<T> {
    /// Primary key -> object. Full watches: `get_watch` by key.
    primary: Tree<Object<T>>,
    /// Revision (big-endian) -> object, for change tracking. Root watch
    /// only; it is the table's watch.
    revision: Tree<Object<T>>,
    /// One tree per secondary index.
    secondary: Vec<Tree<Object<T>>>,
    graveyard: Graveyard<T>,
    /// Last revision assigned in this table.
    last_revision: Revision,
    /// Revision of the last delete (0: none yet).
    last_delete: Revision,
    pending_initializers: PendingInitializers,
}

impl<T> Clone for TableState<T> {
    fn clone(&self) -> Self {
        TableState {
            primary: self.primary.clone(),
            revision: self.revision.clone(),
            secondary: self.secondary.clone(),
            graveyard: self.graveyard.clone(),
            last_revision: self.last_revision,
            last_delete: self.last_delete,
            pending_initializers: self.pending_initializers.clone(),
        }
    }
}

impl<T> TableState<T> {
    pub fn new(secondaries: usize) -> Self {
        TableState {
            primary: Tree::new(),
            revision: Tree::new_root_only_watch(),
            secondary: (0..secondaries).map(|_| Tree::new()).collect(),
            graveyard: Graveyard::new(),
            last_revision: 0,
            last_delete: 0,
            pending_initializers: Arc::new(Initializers::default()),
        }
    }

    /// Number of secondary indexes (tests tag states with it).
    #[cfg(test)]
    pub fn secondary_count(&self) -> usize {
        self.secondary.len()
    }

    /// The table watch: closes on any insert or delete.
    pub fn table_watch(&self) -> Watch {
        self.revision.root_watch()
    }
}

/// The reads a snapshot ([`TableState`]) and a write transaction's own
/// state ([`TableTxn`]) share, over `part`'s [`Read`] trait.
pub(crate) trait TableRead<T> {
    type Tree: Read<Object<T>>;
    /// The tree of an index.
    fn index(&self, pos: IndexPos) -> &Self::Tree;
    /// Revision -> object.
    fn by_revision(&self) -> &Self::Tree;
    /// The graveyard by delete revision.
    fn graveyard_by_revision(&self) -> Tree<Object<T>>;
    fn graveyard_len(&self) -> usize;
    fn last_revision(&self) -> Revision;
    fn last_delete(&self) -> Revision;
    fn pending_initializers(&self) -> &[(u64, String)];
    /// The watch of the uninitialized period (`None`: initialized).
    fn init_watch(&self) -> Option<Watch>;
}

impl<T: Send + Sync + 'static> TableRead<T> for TableState<T> {
    type Tree = Tree<Object<T>>;
    #[inline]
    fn index(&self, pos: IndexPos) -> &Tree<Object<T>> {
        match pos {
            IndexPos::Primary => &self.primary,
            IndexPos::Secondary(i, ..) => &self.secondary[i],
        }
    }
    fn by_revision(&self) -> &Tree<Object<T>> {
        &self.revision
    }
    fn graveyard_by_revision(&self) -> Tree<Object<T>> {
        self.graveyard.by_revision().clone()
    }
    fn graveyard_len(&self) -> usize {
        self.graveyard.len()
    }
    fn last_revision(&self) -> Revision {
        self.last_revision
    }
    fn last_delete(&self) -> Revision {
        self.last_delete
    }
    fn pending_initializers(&self) -> &[(u64, String)] {
        &self.pending_initializers.pending
    }
    fn init_watch(&self) -> Option<Watch> {
        self.pending_initializers.period.as_ref().map(|c| c.watch())
    }
}

impl<T: Send + Sync + 'static> TableRead<T> for TableTxn<T> {
    type Tree = Txn<Object<T>>;
    #[inline]
    fn index(&self, pos: IndexPos) -> &Txn<Object<T>> {
        match pos {
            IndexPos::Primary => &self.primary,
            IndexPos::Secondary(i, ..) => &self.secondary[i],
        }
    }
    fn by_revision(&self) -> &Txn<Object<T>> {
        &self.revision
    }
    fn graveyard_by_revision(&self) -> Tree<Object<T>> {
        self.graveyard.by_revision()
    }
    fn graveyard_len(&self) -> usize {
        self.graveyard.len()
    }
    fn last_revision(&self) -> Revision {
        self.last_revision
    }
    fn last_delete(&self) -> Revision {
        self.last_delete
    }
    fn pending_initializers(&self) -> &[(u64, String)] {
        &self.pending_initializers.pending
    }
    fn init_watch(&self) -> Option<Watch> {
        self.pending_initializers.period.as_ref().map(|c| c.watch())
    }
}

/// Type-erased access to a table's snapshot, for the Db root. `Any`
/// is a supertrait so that a typed read reaches the state by upcasting
/// (a load from the vtable) instead of a virtual `as_any` call.
pub(crate) trait AnyTableState: Any + Send + Sync {
    fn graveyard_len(&self) -> usize;
    /// (objects, revision, initialized), for inspection.
    fn summary(&self) -> (usize, Revision, bool);
}

impl<T: Send + Sync + 'static> AnyTableState for TableState<T> {
    fn graveyard_len(&self) -> usize {
        self.graveyard.len()
    }
    fn summary(&self) -> (usize, Revision, bool) {
        (
            self.primary.len(),
            self.last_revision,
            self.pending_initializers.pending.is_empty(),
        )
    }
}

/// The condition a write checks against the object stored under its
/// primary key (compare-and-swap, compare-and-delete).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Guard {
    /// Write whatever is stored.
    None,
    /// Write only if the stored object has this revision. An upsert of a
    /// missing object is [`WriteError::ObjectNotFound`]; a delete of one
    /// deletes nothing and is no error (as the reference's
    /// `CompareAndDelete`).
    Revision(Revision),
}

/// A table being changed by a write transaction.
pub(crate) struct TableTxn<T> {
    table: Arc<TableInner<T>>,
    primary: Txn<Object<T>>,
    revision: Txn<Object<T>>,
    secondary: Vec<Txn<Object<T>>>,
    graveyard: GraveyardTxn<T>,
    last_revision: Revision,
    last_delete: Revision,
    /// The table's revision when the transaction started.
    base_revision: Revision,
    pending_initializers: PendingInitializers,
    /// The uninitialized period when the transaction started.
    base_init_period: Option<Arc<WatchCloser>>,
}

/// Statistics of a finished table transaction, for metrics.
pub(crate) struct TableStats {
    pub objects: usize,
    pub graveyard: usize,
    /// Revision of the oldest graveyard entry.
    pub graveyard_oldest: Option<Revision>,
    pub revision: Revision,
    /// The uninitialized period this commit ended (all done, or replaced
    /// by a new one): its watch is closed once the state is published.
    pub ended_init_period: Option<Arc<WatchCloser>>,
    /// The graveyard collection this commit ran, if it dropped anything.
    pub collection: Option<Collection>,
    /// Change iterators of the table alive at the commit.
    pub change_iterators: usize,
}

/// A graveyard collection, for [`crate::DbMetrics::graveyard_collected`].
pub(crate) struct Collection {
    pub collected: usize,
    pub low_watermark: Revision,
    pub duration: std::time::Duration,
}

pub(crate) trait AnyTableTxn: Any + Send {
    /// Collects the graveyard (timed if `timed`: metrics are installed)
    /// and freezes the state.
    fn finish(self: Box<Self>, timed: bool)
    -> (Arc<dyn AnyTableState>, WatchesToClose, TableStats);
    /// Discards the changes; closes the watches handed out for them.
    fn abort(self: Box<Self>);
    fn name(&self) -> &str;
}

impl<T: Send + Sync + 'static> TableTxn<T> {
    pub fn new(table: Arc<TableInner<T>>, state: &TableState<T>) -> Self {
        TableTxn {
            table,
            primary: state.primary.txn(),
            revision: state.revision.txn(),
            secondary: state.secondary.iter().map(|t| t.txn()).collect(),
            graveyard: state.graveyard.txn(),
            last_revision: state.last_revision,
            last_delete: state.last_delete,
            base_revision: state.last_revision,
            pending_initializers: state.pending_initializers.clone(),
            base_init_period: state.pending_initializers.period.clone(),
        }
    }

    /// The table this transaction changes.
    pub fn table(&self) -> &Arc<TableInner<T>> {
        &self.table
    }

    /// True once the transaction has written to the table.
    pub fn has_written(&self) -> bool {
        self.last_revision != self.base_revision
    }

    pub fn initializers_mut(&mut self) -> &mut Initializers {
        Arc::make_mut(&mut self.pending_initializers)
    }

    /// A watch of the object now stored under `pk` that closes when a
    /// later committed write replaces or deletes it (or at once if this
    /// transaction aborts).
    pub fn watch_key(&mut self, pk: &[u8]) -> Watch {
        self.primary
            .get_watch(pk)
            .unwrap_or_else(Watch::closed_watch)
    }

    #[inline]
    pub fn primary_key(&self, obj: &T) -> Result<Key, WriteError> {
        let keys = self.table.primary().keys_of(obj);
        if keys.len() != 1 {
            return Err(WriteError::PrimaryKeyCount {
                table: self.table.name().to_string(),
                count: keys.len(),
            });
        }
        Ok(keys.into_first().unwrap_or_default())
    }

    fn secondary_keys(&self, i: usize, obj: &T, pk: &[u8]) -> KeySet {
        let idx = &self.table.secondary()[i];
        let keys = idx.keys_of(obj);
        if idx.is_unique() {
            keys
        } else {
            let mut out = KeySet::new();
            for k in keys.iter() {
                out.push_bytes(&non_unique_key(k, pk));
            }
            out
        }
    }

    /// A unique secondary key may belong only to the object being
    /// replaced (`old`, same primary key): any other owner is a conflict.
    fn check_unique(
        &self,
        i: usize,
        keys: &KeySet,
        old: Option<&Arc<T>>,
    ) -> Result<(), WriteError> {
        for k in keys.iter() {
            if let Some(owner) = self.secondary[i].get(k)
                && !old.is_some_and(|o| Arc::ptr_eq(o, &owner.data))
            {
                let idx = &self.table.secondary()[i];
                return Err(WriteError::UniqueConflict {
                    table: self.table.name().to_string(),
                    index: idx.name().to_string(),
                    // An LPM key's bytes are a bit path: print the key.
                    key: if idx.is_lpm() {
                        idx.format_key(k)
                    } else {
                        crate::error::display_key(k)
                    },
                });
            }
        }
        Ok(())
    }

    /// Checks `guard` against `current`, the object stored under the key;
    /// `Ok(false)` when a guarded delete finds nothing to delete.
    fn check_guard(
        current: Option<&Object<T>>,
        guard: Guard,
        deleting: bool,
    ) -> Result<bool, WriteError> {
        let Guard::Revision(expected) = guard else {
            return Ok(true);
        };
        match current {
            None if deleting => Ok(false),
            None => Err(WriteError::ObjectNotFound),
            Some(cur) if cur.revision != expected => Err(WriteError::RevisionNotEqual {
                expected,
                found: cur.revision,
            }),
            Some(_) => Ok(true),
        }
    }

    /// Inserts or replaces the object under `pk` if `guard` holds; with
    /// `merge`, a replaced object is merged with the new one instead.
    /// Returns the replaced object. On error nothing is changed.
    #[inline]
    pub fn upsert_with_key<F>(
        &mut self,
        pk: Key,
        obj: Arc<T>,
        guard: Guard,
        merge: Option<F>,
    ) -> Result<Option<Object<T>>, WriteError>
    where
        F: FnOnce(&T, &T) -> T,
    {
        // One lookup of the stored object serves the guard, the merge and
        // the secondary indexes; a plain insert into a table without
        // secondary indexes needs none.
        let needs_current =
            !matches!(guard, Guard::None) || merge.is_some() || !self.secondary.is_empty();
        let current = if needs_current {
            self.primary.get(&pk).cloned()
        } else {
            None
        };
        Self::check_guard(current.as_ref(), guard, false)?;
        let obj = match (merge, &current) {
            (Some(merge), Some(old)) => {
                let merged = Arc::new(merge(&old.data, &obj));
                if self.primary_key(&merged)? != pk {
                    return Err(WriteError::PrimaryKeyChanged(self.table.name().to_string()));
                }
                merged
            }
            _ => obj,
        };
        self.insert_unguarded(pk, obj, current.map(|o| o.data))
    }

    /// [`TableTxn::upsert_with_key`] with the key taken from `obj`.
    #[inline]
    pub fn upsert<F>(
        &mut self,
        obj: Arc<T>,
        guard: Guard,
        merge: Option<F>,
    ) -> Result<Option<Object<T>>, WriteError>
    where
        F: FnOnce(&T, &T) -> T,
    {
        let pk = self.primary_key(&obj)?;
        self.upsert_with_key(pk, obj, guard, merge)
    }

    #[inline]
    /// Inserts `data` under `pk`; `old` is the stored object (looked up by
    /// the caller whenever the table has secondary indexes).
    fn insert_unguarded(
        &mut self,
        pk: Key,
        data: Arc<T>,
        old: Option<Arc<T>>,
    ) -> Result<Option<Object<T>>, WriteError> {
        // Run every user key function before changing anything, so that a
        // panic in one leaves this table's trees consistent.
        let mut index_keys: Vec<(KeySet, KeySet)> = Vec::new();
        if !self.secondary.is_empty() {
            for i in 0..self.secondary.len() {
                let new_keys = self.secondary_keys(i, &data, &pk);
                if self.table.secondary()[i].is_unique() {
                    self.check_unique(i, &new_keys, old.as_ref())?;
                }
                let old_keys = match &old {
                    Some(o) => self.secondary_keys(i, o, &pk),
                    None => KeySet::new(),
                };
                index_keys.push((new_keys, old_keys));
            }
        }
        self.last_revision += 1;
        let obj = Object {
            data,
            revision: self.last_revision,
        };
        let old = self.primary.insert(&pk, obj.clone());
        if let Some(o) = &old {
            self.revision.delete(&o.revision.to_be_bytes());
        }
        self.revision
            .insert(&obj.revision.to_be_bytes(), obj.clone());
        for (i, (new_keys, old_keys)) in index_keys.iter().enumerate() {
            for k in old_keys.iter() {
                if !new_keys.iter().any(|n| n == k) {
                    self.secondary[i].delete(k);
                }
            }
            for k in new_keys.iter() {
                self.secondary[i].insert(k, obj.clone());
            }
        }
        self.graveyard.remove(&pk);
        Ok(old)
    }

    /// Deletes the object with `obj`'s primary key if `guard` holds;
    /// returns it, or `None` if there was none.
    pub fn delete(&mut self, obj: &T, guard: Guard) -> Result<Option<Object<T>>, WriteError> {
        let pk = self.primary_key(obj)?;
        if !Self::check_guard(self.primary.get(&pk), guard, true)? {
            return Ok(None);
        }
        Ok(self.delete_key(&pk))
    }

    /// Deletes every object; returns how many.
    pub fn delete_all(&mut self) -> usize {
        let keys: Vec<Key> = self
            .primary
            .iter()
            .map(|(k, _)| Key::from_slice(k))
            .collect();
        for k in &keys {
            self.delete_key(k);
        }
        keys.len()
    }

    fn delete_key(&mut self, pk: &[u8]) -> Option<Object<T>> {
        let old = self.primary.get(pk)?.clone();
        let index_keys: Vec<KeySet> = (0..self.secondary.len())
            .map(|i| self.secondary_keys(i, &old.data, pk))
            .collect();
        self.primary.delete(pk);
        self.last_revision += 1;
        self.last_delete = self.last_revision;
        self.revision.delete(&old.revision.to_be_bytes());
        for (i, keys) in index_keys.iter().enumerate() {
            for k in keys.iter() {
                self.secondary[i].delete(k);
            }
        }
        if self.table.trackers().any() {
            let dead = Object {
                data: old.data.clone(),
                revision: self.last_revision,
            };
            self.graveyard.bury(pk, dead);
        }
        Some(old)
    }
}

impl<T: Send + Sync + 'static> AnyTableTxn for TableTxn<T> {
    fn name(&self) -> &str {
        self.table.name()
    }
    fn abort(self: Box<Self>) {
        // Only the primary tree hands out watches of its own nodes
        // (`insert_watch`); every other watch comes from the snapshot the
        // transaction started from.
        self.primary.abort();
    }
    fn finish(
        self: Box<Self>,
        timed: bool,
    ) -> (Arc<dyn AnyTableState>, WatchesToClose, TableStats) {
        let mut this = *self;
        let trackers = this.table.trackers();
        let change_iterators = trackers.count();
        trackers.clear_request();
        let mut collection = None;
        if this.graveyard.len() > 0 {
            // Timed only for metrics, and only here: a commit with an
            // empty graveyard reads no clock.
            let started = timed.then(std::time::Instant::now);
            trackers.lap_behind(&this.graveyard);
            // The watermarks' lock is only taken when there is something
            // to collect.
            let low_watermark = trackers.low_watermark();
            let collected = this.graveyard.collect(low_watermark, this.last_revision);
            if let (true, Some(started)) = (collected > 0, started) {
                collection = Some(Collection {
                    collected,
                    low_watermark: low_watermark.min(this.last_revision),
                    duration: started.elapsed(),
                });
            }
        }
        let mut watches = WatchesToClose::new();
        let (primary, w) = this.primary.commit();
        watches.append(w);
        let (revision, w) = this.revision.commit();
        watches.append(w);
        let mut secondary = Vec::with_capacity(this.secondary.len());
        for t in this.secondary {
            let (t, w) = t.commit();
            watches.append(w);
            secondary.push(t);
        }
        let graveyard = this.graveyard.commit(&mut watches);
        let ended_init_period = this.base_init_period.filter(|base| {
            !this
                .pending_initializers
                .period
                .as_ref()
                .is_some_and(|now| Arc::ptr_eq(base, now))
        });
        let state = TableState {
            primary,
            revision,
            secondary,
            graveyard,
            last_revision: this.last_revision,
            last_delete: this.last_delete,
            pending_initializers: this.pending_initializers,
        };
        let stats = TableStats {
            objects: state.primary.len(),
            graveyard: state.graveyard.len(),
            graveyard_oldest: state.graveyard.oldest(),
            revision: state.last_revision,
            ended_init_period,
            collection,
            change_iterators,
        };
        (Arc::new(state), watches, stats)
    }
}
