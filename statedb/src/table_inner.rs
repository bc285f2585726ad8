//! What every handle of one table shares: its declaration, its lock, its
//! registration with a Db, its change iterators' watermarks and its
//! "initialized" watch. The per-snapshot data lives in `state.rs`.

use std::any::Any;
use std::sync::{Arc, Weak};

use crate::error::{Result, TxnError};
use crate::graveyard::Trackers;
use crate::index::{IndexInner, IndexPos};
use crate::lock::TableLock;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// Bits of the packed registration that hold the position.
pub(crate) const POS_BITS: u32 = 24;

/// The shared part of a [`crate::Table`] (an implementation detail, named
/// only inside the crate).
pub struct TableInner<T> {
    name: String,
    primary: Arc<IndexInner<T>>,
    secondary: Vec<Arc<IndexInner<T>>>,
    lock: TableLock,
    /// (Db id, position in the root) packed as `id << 24 | position`; 0
    /// while unregistered. One atomic load on every query.
    registration: AtomicU64,
    /// The Db registered with, to tell a live one from a dropped one.
    registered_db: Mutex<Option<Weak<dyn Any + Send + Sync>>>,
    trackers: Trackers,
    next_initializer: AtomicU64,
}

impl<T> TableInner<T> {
    /// A table declared valid (see `table/schema.rs`), unregistered.
    pub(crate) fn new(
        name: String,
        primary: Arc<IndexInner<T>>,
        secondary: Vec<Arc<IndexInner<T>>>,
    ) -> Self {
        TableInner {
            name,
            primary,
            secondary,
            lock: TableLock::default(),
            registration: AtomicU64::new(0),
            registered_db: Mutex::new(None),
            trackers: Trackers::new(),
            next_initializer: AtomicU64::new(1),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn primary(&self) -> &IndexInner<T> {
        &self.primary
    }

    pub(crate) fn secondary(&self) -> &[Arc<IndexInner<T>>] {
        &self.secondary
    }

    pub(crate) fn lock(&self) -> &TableLock {
        &self.lock
    }

    pub(crate) fn trackers(&self) -> &Trackers {
        &self.trackers
    }

    /// (Db id, position in the root), if registered.
    #[inline]
    pub(crate) fn registration(&self) -> Option<(u64, usize)> {
        match self.registration.load(Ordering::Acquire) {
            0 => None,
            packed => Some((
                packed >> POS_BITS,
                (packed & ((1 << POS_BITS) - 1)) as usize,
            )),
        }
    }

    /// Registers with `db` unless registered with another live Db;
    /// `publish` adds the table to the Db's root and returns its position.
    pub(crate) fn register(
        &self,
        db_id: u64,
        db: Weak<dyn Any + Send + Sync>,
        publish: &mut dyn FnMut() -> Result<usize, TxnError>,
    ) -> Result<(), TxnError> {
        let mut registered = self.registered_db.lock();
        if let Some((old, _)) = self.registration() {
            if old == db_id {
                return Err(TxnError::DuplicateTable(self.name.clone()));
            }
            if registered.as_ref().is_some_and(|w| w.strong_count() > 0) {
                return Err(TxnError::TableFromOtherDb(self.name.clone()));
            }
        }
        if db_id >= 1 << (64 - POS_BITS) {
            return Err(TxnError::TooManyTables);
        }
        let pos = publish()?;
        // A table of a dropped Db starts afresh: no iterator of that Db
        // can be alive (each holds its Db).
        self.trackers.clear_request();
        self.registration
            .store(db_id << POS_BITS | pos as u64, Ordering::Release);
        *registered = Some(db);
        Ok(())
    }

    #[inline]
    pub(crate) fn index_pos(&self, name: &str) -> Result<IndexPos, TxnError> {
        // Queries carry the index's own `&'static str`: pointer equality
        // settles the common case without comparing bytes.
        if std::ptr::eq(name, self.primary.name()) || name == self.primary.name() {
            return Ok(IndexPos::Primary);
        }
        self.secondary
            .iter()
            .position(|i| i.name() == name)
            .map(|i| {
                let idx = &self.secondary[i];
                IndexPos::Secondary(i, idx.is_unique(), idx.is_lpm())
            })
            .ok_or_else(|| TxnError::UnknownIndex {
                table: self.name.clone(),
                index: name.to_string(),
            })
    }

    /// A fresh id for an initializer.
    pub(crate) fn next_initializer_id(&self) -> u64 {
        self.next_initializer.fetch_add(1, Ordering::Relaxed)
    }
}
