//! The durable desired state: memos and the names of the files the app
//! wrote, in an embedded `redb` database in the app's own state directory.
//!
//! Every accepted write commits here (durably: redb's default `Immediate`
//! durability syncs before the commit returns) before the API answers, so
//! a restart or `kill -9` loses no accepted memo. The set of written files
//! is what prune may remove: files the app did not write are never
//! touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

const MEMOS: TableDefinition<&str, &str> = TableDefinition::new("memos");
const WRITTEN: TableDefinition<&str, ()> = TableDefinition::new("written");

/// Errors of the store, with the failing step.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory or database could not be opened.
    #[error("opening the state store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write failed.
    #[error("state store: {0}")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn io(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Io(Box::new(e))
}

/// The embedded store.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) `state_dir/memos.redb`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`] if the directory or file cannot be created or
    /// the file is not a redb database.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("memos.redb");
        let open = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| open(Box::new(e)))?;
        let db = Database::create(&path).map_err(|e| open(Box::new(e)))?;
        let store = Store { db };
        // Create both tables so that reads never meet a missing table.
        let w = store.db.begin_write().map_err(|e| open(Box::new(e)))?;
        {
            w.open_table(MEMOS).map_err(|e| open(Box::new(e)))?;
            w.open_table(WRITTEN).map_err(|e| open(Box::new(e)))?;
        }
        w.commit().map_err(|e| open(Box::new(e)))?;
        Ok(store)
    }

    /// Every stored memo: name → content.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the read fails.
    pub fn memos(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(MEMOS).map_err(io)?;
        let mut out = BTreeMap::new();
        for entry in t.iter().map_err(io)? {
            let (k, v) = entry.map_err(io)?;
            out.insert(k.value().to_string(), v.value().to_string());
        }
        Ok(out)
    }

    /// Stores a memo durably.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the write or its commit fails.
    pub fn put_memo(&self, name: &str, content: &str) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(io)?;
        w.open_table(MEMOS)
            .map_err(io)?
            .insert(name, content)
            .map_err(io)?;
        w.commit().map_err(io)
    }

    /// Removes a memo durably; true if it was there.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the write or its commit fails.
    pub fn delete_memo(&self, name: &str) -> Result<bool, StoreError> {
        let w = self.db.begin_write().map_err(io)?;
        let existed = w
            .open_table(MEMOS)
            .map_err(io)?
            .remove(name)
            .map_err(io)?
            .is_some();
        w.commit().map_err(io)?;
        Ok(existed)
    }

    /// Records (or forgets) that the app wrote the file `name`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the write or its commit fails.
    pub fn set_written(&self, name: &str, written: bool) -> Result<(), StoreError> {
        // Most calls change nothing (every update of a memo records its
        // file): a read answers those without a durable commit.
        let recorded = {
            let r = self.db.begin_read().map_err(io)?;
            let t = r.open_table(WRITTEN).map_err(io)?;
            t.get(name).map_err(io)?.is_some()
        };
        if recorded == written {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut t = w.open_table(WRITTEN).map_err(io)?;
            if written {
                t.insert(name, ()).map_err(io)?;
            } else {
                t.remove(name).map_err(io)?;
            }
        }
        w.commit().map_err(io)
    }

    /// Whether the app wrote the file `name` (and has not removed it).
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the read fails.
    pub fn is_written(&self, name: &str) -> Result<bool, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(WRITTEN).map_err(io)?;
        Ok(t.get(name).map_err(io)?.is_some())
    }

    /// The files the app wrote and has not removed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the read fails.
    pub fn written(&self) -> Result<BTreeSet<String>, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(WRITTEN).map_err(io)?;
        let mut out = BTreeSet::new();
        for entry in t.iter().map_err(io)? {
            out.insert(entry.map_err(io)?.0.value().to_string());
        }
        Ok(out)
    }
}

/// The default state directory: beside the memos directory, never inside
/// it (`/x/memos` → `/x/.memos.memos-state`).
pub fn default_state_dir(directory: &Path) -> PathBuf {
    let name = directory
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "memos".to_string());
    let parent = directory.parent().unwrap_or(Path::new("."));
    parent.join(format!(".{name}.memos-state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memos_and_written_files_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_memo("a", "1").unwrap();
            s.put_memo("b", "2").unwrap();
            s.put_memo("a", "3").unwrap();
            assert!(s.delete_memo("b").unwrap());
            assert!(!s.delete_memo("b").unwrap());
            s.set_written("a", true).unwrap();
            s.set_written("x", true).unwrap();
            s.set_written("x", false).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.memos().unwrap().into_iter().collect::<Vec<_>>(),
            [("a".to_string(), "3".to_string())]
        );
        assert_eq!(s.written().unwrap().into_iter().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn default_state_dir_is_beside_the_directory() {
        assert_eq!(
            default_state_dir(Path::new("/tmp/memos")),
            PathBuf::from("/tmp/.memos.memos-state")
        );
    }
}
