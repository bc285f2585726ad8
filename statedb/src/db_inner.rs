//! The shared state behind every handle of one Db: its root, the lock
//! that orders root swaps, its tables and its metrics.

use std::any::Any;
use std::sync::Arc;

use crate::erased::ErasedTable;
use crate::error::Result;
use crate::metrics::DbMetrics;
use crate::root::Root;
use crate::sync::{AtomicArc, Mutex, MutexGuard};

pub(crate) struct DbInner {
    id: u64,
    root: AtomicArc<Root>,
    /// Held only while swapping the root.
    commit_lock: Mutex<()>,
    tables: Mutex<Vec<Arc<dyn ErasedTable>>>,
    metrics: Option<Arc<dyn DbMetrics>>,
    #[cfg(feature = "json")]
    /// Per-table values of modules above this one, by table name (the
    /// untyped inspection handles of `inspect.rs`), type-erased so that
    /// this module names nothing above it.
    extensions: Mutex<Vec<(String, Arc<dyn Any + Send + Sync>)>>,
    /// Values shared by the users of this Db, by key ([`crate::Db::shared`]).
    shared: Mutex<Vec<(String, Arc<dyn Any + Send + Sync>)>>,
}

impl DbInner {
    pub fn new(id: u64, metrics: Option<Arc<dyn DbMetrics>>) -> Self {
        DbInner {
            id,
            root: AtomicArc::new(Arc::new(Root::new())),
            commit_lock: Mutex::new(()),
            tables: Mutex::new(Vec::new()),
            metrics,
            #[cfg(feature = "json")]
            extensions: Mutex::new(Vec::new()),
            shared: Mutex::new(Vec::new()),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The current root: one atomic load.
    #[inline]
    pub fn root(&self) -> Arc<Root> {
        self.root.load_full()
    }

    /// Publishes a new root made by `change` from the current one; root
    /// swaps are serialized, so none is lost. Returns the new root and
    /// what `change` returned.
    pub fn publish<R, E>(
        &self,
        change: impl FnOnce(&mut Root) -> Result<R, E>,
    ) -> Result<(Arc<Root>, R), E> {
        let _commit = self.commit_lock.lock();
        let mut next = Root::clone(&self.root.load_full());
        let out = change(&mut next)?;
        let next = Arc::new(next);
        self.root.store(next.clone());
        Ok((next, out))
    }

    /// The registered tables, in registration order.
    pub fn tables(&self) -> MutexGuard<'_, Vec<Arc<dyn ErasedTable>>> {
        self.tables.lock()
    }

    pub fn metrics(&self) -> Option<&dyn DbMetrics> {
        self.metrics.as_deref()
    }

    /// The value shared under `key`, made with `T::default()` on first
    /// use; `None` if the key holds another type.
    pub fn shared<T: Default + Send + Sync + 'static>(&self, key: &str) -> Option<Arc<T>> {
        let mut all = self.shared.lock();
        if let Some((_, v)) = all.iter().find(|(k, _)| k == key) {
            return v.clone().downcast::<T>().ok();
        }
        let v = Arc::new(T::default());
        all.push((key.to_string(), v.clone()));
        Some(v)
    }

    /// Attaches `value` to table `name` (replacing an earlier one).
    #[cfg(feature = "json")]
    pub fn set_extension(&self, name: &str, value: Arc<dyn Any + Send + Sync>) {
        let mut all = self.extensions.lock();
        all.retain(|(n, _)| n != name);
        all.push((name.to_string(), value));
    }

    /// The value attached to table `name`.
    #[cfg(feature = "json")]
    pub fn extension(&self, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.extensions
            .lock()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}
