//! The reconciliation target: one regular file per memo in a directory the
//! application owns.
//!
//! Safety rules: only regular files directly in the directory are written
//! or removed; never the marker, temp files, sub-directories, or what a
//! symlink points to (files are opened with `O_NOFOLLOW`, replaced by
//! rename, and removed with `unlink`, which does not follow links). Prune
//! removes only files the app recorded as written ([`Store`]): files that
//! were there before adoption or that someone else put there are foreign,
//! reported in the log and never removed.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use reconciler::{OpError, Operations, Pruned};
use statedb::{Objects, ReadTxn};

use crate::memo::{Memo, validate_name};
use crate::store::Store;
use std::sync::Arc;

pub use crate::memo::{MARKER, TEMP_PREFIX};

/// Why the directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory has files but no marker.
    #[error(
        "{0} is not empty and has no {MARKER} marker: refusing to manage it (use --force to adopt it)"
    )]
    Foreign(PathBuf),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Prepares `dir`: creates it if missing; adopts it if empty (or if
/// `force`); refuses a non-empty directory without the marker.
pub fn prepare_directory(dir: &Path, force: bool) -> Result<(), DirError> {
    let io = |source| DirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let marker = dir.join(MARKER);
    if fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let non_empty = fs::read_dir(dir).map_err(io)?.next().is_some();
    if non_empty && !force {
        return Err(DirError::Foreign(dir.to_path_buf()));
    }
    fs::write(&marker, b"This directory is managed by memos.\n").map_err(io)
}

/// Removes the temp files a crashed run left behind (regular files named
/// with [`TEMP_PREFIX`]); call while holding the directory's lock, so no
/// other instance is writing them.
pub fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_temp = name.to_string_lossy().starts_with(TEMP_PREFIX);
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed a temp file of an earlier run")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove a stale temp file")
                }
            }
        }
    }
}

/// Writes memos as files in a directory, through one handle to it.
///
/// The directory is opened once (`O_DIRECTORY | O_NOFOLLOW`) and every
/// read, write, rename and unlink is relative to that handle (`cap-std`):
/// replacing the directory's path with a symlink later changes nothing,
/// and no memo name can reach outside it.
#[derive(Clone)]
pub struct FileTarget {
    dir: Arc<Dir>,
    /// For messages only.
    path: PathBuf,
    store: Arc<Store>,
    /// Files the last prune found that the app did not write.
    foreign: Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::fmt::Debug for FileTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTarget")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Whether `name` in `dir` is a regular file holding exactly `content`:
/// the size first, then 64 KiB at a time, so a large planted file is never
/// read whole. Symlinks and other non-files count as different.
fn holds(dir: &Dir, name: &str, content: &[u8]) -> io::Result<bool> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .follow(FollowSymlinks::No)
        .custom_flags(libc::O_NONBLOCK);
    let mut f = match dir.open_with(name, &opts) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        // A symlink (ELOOP) or anything else that is not our file.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() != content.len() as u64 {
        return Ok(false);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < content.len() {
        let n = f.read(&mut buf)?;
        if n == 0 || at + n > content.len() || buf[..n] != content[at..at + n] {
            return Ok(false);
        }
        at += n;
    }
    // Nothing may follow (the file may have grown since the size check).
    Ok(f.read(&mut buf[..1])? == 0)
}

impl FileTarget {
    /// A target writing into `path` (see [`prepare_directory`]), recording
    /// the files it writes in `store`.
    ///
    /// # Errors
    ///
    /// The directory cannot be opened, or its path is a symlink.
    pub fn open(path: &Path, store: Arc<Store>) -> Result<Self, DirError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|source| DirError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FileTarget {
            dir: Arc::new(Dir::from_std_file(file)),
            path: path.to_path_buf(),
            store,
            foreign: Arc::default(),
        })
    }

    /// The files the last prune found in the directory that the app did
    /// not write (kept, never removed), by name.
    pub fn foreign_files(&self) -> Vec<String> {
        self.foreign.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn checked(&self, name: &str) -> Result<(), OpError> {
        validate_name(name).map_err(|e| -> OpError { e.into() })
    }

    fn shown(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    /// Writes `content` unless the file already holds it; returns whether
    /// it wrote.
    fn write(&self, name: &str, content: &str) -> Result<bool, OpError> {
        self.checked(name)?;
        // Recorded before the file exists: a crash in between leaves a
        // record of a missing file (harmless), never an unrecorded file.
        self.store.set_written(name, true)?;
        if holds(&self.dir, name, content.as_bytes())? {
            return Ok(false);
        }
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
        let result = (|| -> io::Result<()> {
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true).follow(FollowSymlinks::No);
            let mut f = self.dir.open_with(&tmp, &opts)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            // rename replaces a symlink itself, never its target.
            self.dir.rename(&tmp, &self.dir, name)
        })();
        if let Err(e) = result {
            let _ = self.dir.remove_file(&tmp);
            return Err(format!("write {}: {e}", self.shown(name)).into());
        }
        Ok(true)
    }

    fn remove(&self, name: &str) -> Result<(), OpError> {
        self.checked(name)?;
        match self.dir.symlink_metadata(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(self.store.set_written(name, false)?)
            }
            Err(e) => Err(format!("remove {}: {e}", self.shown(name)).into()),
            Ok(m) if m.is_file() || m.file_type().is_symlink() => {
                match self.dir.remove_file(name) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        Err(format!("remove {}: {e}", self.shown(name)).into())
                    }
                    _ => Ok(self.store.set_written(name, false)?),
                }
            }
            Ok(_) => {
                // Not ours (a directory, a device): the memo goes, this stays.
                tracing::warn!(name, path = %self.shown(name), "foreign entry at a memo's path kept: not a regular file");
                Ok(self.store.set_written(name, false)?)
            }
        }
    }

    /// Removes the files the app wrote that no memo asks for any more,
    /// and returns their names (the reconciler logs them); reports (never
    /// removes) files it did not write.
    fn prune(&self, desired: &HashSet<String>) -> Result<Pruned, OpError> {
        let written = self.store.written()?;
        let mut errors = Vec::new();
        let mut removed = Vec::new();
        for name in written.iter().filter(|n| !desired.contains(*n)) {
            match self.remove(name) {
                Ok(()) => removed.push(name.clone()),
                Err(e) => errors.push(format!("prune {name}: {e}")),
            }
        }
        let mut foreign = Vec::new();
        for entry in self.dir.entries()? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name == MARKER
                || name.starts_with(TEMP_PREFIX)
                || desired.contains(name.as_ref())
                || written.contains(name.as_ref())
            {
                continue;
            }
            foreign.push(name.into_owned());
        }
        if !foreign.is_empty() {
            tracing::info!(count = foreign.len(), names = ?foreign, "foreign files kept (not written by memos)");
        }
        foreign.sort();
        if let Ok(mut kept) = self.foreign.lock() {
            *kept = foreign;
        }
        if errors.is_empty() {
            Ok(Pruned::removed(removed))
        } else {
            Err(errors.join("; ").into())
        }
    }
}

impl Operations<Memo> for FileTarget {
    async fn update(
        &self,
        _txn: &ReadTxn,
        _revision: statedb::Revision,
        memo: &mut Memo,
        changed: Option<&mut bool>,
    ) -> Result<(), OpError> {
        let this = self.clone();
        let (name, content) = (memo.name.clone(), memo.content.clone());
        // Blocking file I/O stays off the async workers.
        let wrote = tokio::task::spawn_blocking(move || this.write(&name, &content)).await??;
        if let Some(c) = changed {
            *c = wrote;
        }
        Ok(())
    }

    async fn delete(
        &self,
        _txn: &ReadTxn,
        _revision: statedb::Revision,
        memo: &Memo,
    ) -> Result<(), OpError> {
        let this = self.clone();
        let name = memo.name.clone();
        tokio::task::spawn_blocking(move || this.remove(&name)).await?
    }

    async fn prune(&self, _txn: &ReadTxn, memos: Objects<Memo>) -> Result<Pruned, OpError> {
        let desired: HashSet<String> = memos.map(|(m, _)| m.name.clone()).collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.prune(&desired)).await?
    }
}
