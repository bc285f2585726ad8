//! Per-table state: the immutable snapshot in the root, and the private
//! copy a write transaction changes.

use std::any::Any;
use std::sync::Arc;

use part::{Key, Tree, Txn, WatchesToClose};

use crate::Revision;
use crate::error::{Error, Result};
use crate::index::{KeySet, non_unique_key};
use crate::table::TableInner;

/// An object as stored: shared, immutable, with the revision of its last
/// change.
pub(crate) struct Object<T> {
    pub data: Arc<T>,
    pub revision: Revision,
}

impl<T> Clone for Object<T> {
    fn clone(&self) -> Self {
        Object {
            data: self.data.clone(),
            revision: self.revision,
        }
    }
}

/// A table in one snapshot of the Db.
pub(crate) struct TableState<T> {
    /// Primary key -> object. Full watches: `get_watch` by key.
    pub primary: Tree<Object<T>>,
    /// Revision (big-endian) -> object, for change tracking. Root watch
    /// only; it is the table's watch.
    pub revision: Tree<Object<T>>,
    /// One tree per secondary index.
    pub secondary: Vec<Tree<Object<T>>>,
    /// Primary key -> deleted object, kept while change iterators need it.
    pub graveyard: Tree<Object<T>>,
    /// Delete revision (big-endian) followed by the primary key -> deleted
    /// object; the key carries the primary key so collection needs no
    /// user code.
    pub graveyard_revision: Tree<Object<T>>,
    /// Last revision assigned in this table.
    pub last_revision: Revision,
    /// Initializers registered and not yet done: (id, name).
    pub pending_initializers: Arc<Vec<(u64, String)>>,
}

impl<T> Clone for TableState<T> {
    fn clone(&self) -> Self {
        TableState {
            primary: self.primary.clone(),
            revision: self.revision.clone(),
            secondary: self.secondary.clone(),
            graveyard: self.graveyard.clone(),
            graveyard_revision: self.graveyard_revision.clone(),
            last_revision: self.last_revision,
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
            graveyard: Tree::new_root_only_watch(),
            graveyard_revision: Tree::new_root_only_watch(),
            last_revision: 0,
            pending_initializers: Arc::new(Vec::new()),
        }
    }
}

/// Type-erased access to a table's snapshot, for the Db root.
pub(crate) trait AnyTableState: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn graveyard_len(&self) -> usize;
}

impl<T: Send + Sync + 'static> AnyTableState for TableState<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn graveyard_len(&self) -> usize {
        self.graveyard.len()
    }
}

/// A table being changed by a write transaction.
pub(crate) struct TableTxn<T> {
    pub table: Arc<TableInner<T>>,
    pub primary: Txn<Object<T>>,
    pub revision: Txn<Object<T>>,
    pub secondary: Vec<Txn<Object<T>>>,
    pub graveyard: Txn<Object<T>>,
    pub graveyard_revision: Txn<Object<T>>,
    pub last_revision: Revision,
    /// The table's revision when the transaction started.
    pub base_revision: Revision,
    pub pending_initializers: Arc<Vec<(u64, String)>>,
}

/// Statistics of a finished table transaction, for metrics.
pub(crate) struct TableStats {
    pub objects: usize,
    pub graveyard: usize,
    /// Revision of the oldest graveyard entry.
    pub graveyard_oldest: Option<Revision>,
    pub revision: Revision,
    pub initialized: bool,
}

pub(crate) trait AnyTableTxn: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
    /// Collects the graveyard and freezes the state.
    fn finish(self: Box<Self>) -> (Arc<dyn AnyTableState>, WatchesToClose, TableStats);
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
            graveyard_revision: state.graveyard_revision.txn(),
            last_revision: state.last_revision,
            base_revision: state.last_revision,
            pending_initializers: state.pending_initializers.clone(),
        }
    }

    pub fn primary_key(&self, obj: &T) -> Result<Key> {
        let keys = self.table.primary.keys_of(obj);
        if keys.len() != 1 {
            return Err(Error::PrimaryKeyCount {
                table: self.table.name.clone(),
                count: keys.len(),
            });
        }
        Ok(keys.into_first().unwrap_or_default())
    }

    fn secondary_keys(&self, i: usize, obj: &T, pk: &[u8]) -> KeySet {
        let idx = &self.table.secondary[i];
        let keys = idx.keys_of(obj);
        if idx.unique {
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
    fn check_unique(&self, i: usize, keys: &KeySet, old: Option<&Arc<T>>) -> Result<()> {
        for k in keys.iter() {
            if let Some(owner) = self.secondary[i].get(k)
                && !old.is_some_and(|o| Arc::ptr_eq(o, &owner.data))
            {
                return Err(Error::UniqueConflict {
                    table: self.table.name.clone(),
                    index: self.table.secondary[i].name.to_string(),
                    key: crate::error::display_key(k),
                });
            }
        }
        Ok(())
    }

    /// Inserts or replaces; returns the replaced object.
    pub fn insert(&mut self, data: Arc<T>) -> Result<Option<Object<T>>> {
        let pk = self.primary_key(&data)?;
        self.insert_with_key(pk, data)
    }

    /// Inserts with the primary key already computed.
    pub fn insert_with_key(&mut self, pk: Key, data: Arc<T>) -> Result<Option<Object<T>>> {
        // Run every user key function before changing anything, so that a
        // panic in one leaves this table's trees consistent.
        let mut index_keys: Vec<(KeySet, KeySet)> = Vec::new();
        if !self.secondary.is_empty() {
            let old = self.primary.get(&pk).map(|o| o.data.clone());
            for i in 0..self.secondary.len() {
                let new_keys = self.secondary_keys(i, &data, &pk);
                if self.table.secondary[i].unique {
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
        if !self.graveyard.is_empty()
            && let Some(g) = self.graveyard.delete(&pk)
        {
            self.graveyard_revision
                .delete(&graveyard_key(g.revision, &pk));
        }
        Ok(old)
    }

    /// Deletes by primary key; returns the deleted object.
    pub fn delete_key(&mut self, pk: &[u8]) -> Option<Object<T>> {
        let old = self.primary.get(pk)?.clone();
        let index_keys: Vec<KeySet> = (0..self.secondary.len())
            .map(|i| self.secondary_keys(i, &old.data, pk))
            .collect();
        self.primary.delete(pk);
        self.last_revision += 1;
        self.revision.delete(&old.revision.to_be_bytes());
        for (i, keys) in index_keys.iter().enumerate() {
            for k in keys.iter() {
                self.secondary[i].delete(k);
            }
        }
        if self.table.has_delete_trackers() {
            let dead = Object {
                data: old.data.clone(),
                revision: self.last_revision,
            };
            if let Some(prev) = self.graveyard.insert(pk, dead.clone()) {
                self.graveyard_revision
                    .delete(&graveyard_key(prev.revision, pk));
            }
            self.graveyard_revision
                .insert(&graveyard_key(dead.revision, pk), dead);
        }
        Some(old)
    }

    /// Drops graveyard entries every live change iterator has seen.
    pub fn collect_graveyard(&mut self) {
        self.table
            .gc_requested
            .store(false, std::sync::atomic::Ordering::Release);
        if self.graveyard.is_empty() {
            return;
        }
        let low = self.table.graveyard_low_watermark();
        if low >= self.last_revision {
            // Every iterator has seen every delete: drop both trees whole
            // instead of deleting entry by entry. Nobody watches them.
            self.graveyard = Tree::new_root_only_watch().txn();
            self.graveyard_revision = Tree::new_root_only_watch().txn();
            return;
        }
        let dead: Vec<Key> = self
            .graveyard_revision
            .iter()
            .take_while(|(_, o)| o.revision <= low)
            .map(|(k, _)| Key::from_slice(k))
            .collect();
        for key in dead {
            self.graveyard_revision.delete(&key);
            self.graveyard.delete(&key[8..]);
        }
    }
}

/// Key of the graveyard revision index.
pub(crate) fn graveyard_key(revision: Revision, pk: &[u8]) -> Key {
    let mut k = Key::from_slice(&revision.to_be_bytes());
    k.extend_from_slice(pk);
    k
}

impl<T: Send + Sync + 'static> AnyTableTxn for TableTxn<T> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        &self.table.name
    }
    fn abort(self: Box<Self>) {
        // Only the primary tree hands out watches of its own nodes
        // (`insert_watch`); every other watch comes from the snapshot the
        // transaction started from.
        self.primary.abort();
    }
    fn finish(mut self: Box<Self>) -> (Arc<dyn AnyTableState>, WatchesToClose, TableStats) {
        self.collect_graveyard();
        let this = *self;
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
        let (graveyard, w) = this.graveyard.commit();
        watches.append(w);
        let (graveyard_revision, w) = this.graveyard_revision.commit();
        watches.append(w);
        let state = TableState {
            primary,
            revision,
            secondary,
            graveyard,
            graveyard_revision,
            last_revision: this.last_revision,
            pending_initializers: this.pending_initializers,
        };
        let stats = TableStats {
            objects: state.primary.len(),
            graveyard: state.graveyard.len(),
            graveyard_oldest: state.graveyard_revision.first().map(|(_, o)| o.revision),
            revision: state.last_revision,
            initialized: state.pending_initializers.is_empty(),
        };
        (Arc::new(state), watches, stats)
    }
}
