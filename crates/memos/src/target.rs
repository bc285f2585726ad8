//! The reconciliation target: one regular file per memo in a directory the
//! application owns.
//!
//! Safety rules: only regular files directly in the directory are written
//! or removed; never the marker, temp files, sub-directories, or what a
//! symlink points to (files are opened with `O_NOFOLLOW`, replaced by
//! rename, and removed with `unlink`, which does not follow links). Only
//! files the app recorded as written ([`Store`]) are ever replaced or
//! removed: files that were there before adoption or that someone else put
//! there are foreign. A memo whose name holds a foreign file stays in
//! error naming it (retried, so it is written once the file is gone);
//! deleting such a memo leaves the file; prune reports foreign files and
//! never removes them.

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
    /// The directory's path is a symlink.
    #[error(
        "{0} is a symlink: give the directory's own path (memos does not follow links for its directory)"
    )]
    Symlink(PathBuf),
    /// The path is not a directory.
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// The marker is not a regular file (a symlink, a directory).
    #[error("{0} is not a regular file: refusing to use it as the memos marker (remove it)")]
    BadMarker(PathBuf),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The directory as an absolute path with no symlink in it (`.` becomes
/// the working directory), or why it cannot be used: a symlink (memos
/// never follows links for its directory) or something other than a
/// directory. A missing directory is fine (it is created later).
pub fn resolve_directory(dir: &Path) -> Result<PathBuf, DirError> {
    let io = |source| DirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(DirError::Symlink(dir.to_path_buf())),
        Ok(m) if !m.is_dir() => Err(DirError::NotADirectory(dir.to_path_buf())),
        Ok(_) => fs::canonicalize(dir).map_err(io),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::path::absolute(dir).map_err(io),
        Err(e) => Err(io(e)),
    }
}

/// Prepares `dir`: creates it if missing; adopts it if empty (or if
/// `force`); refuses a non-empty directory without the marker, and a
/// marker that is not a regular file (a symlink, say), with `force` too.
pub fn prepare_directory(dir: &Path, force: bool) -> Result<(), DirError> {
    let io = |source| DirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let marker = dir.join(MARKER);
    match fs::symlink_metadata(&marker) {
        Ok(m) if m.is_file() => return Ok(()),
        Ok(_) => return Err(DirError::BadMarker(marker)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let non_empty = fs::read_dir(dir).map_err(io)?.next().is_some();
    if non_empty && !force {
        return Err(DirError::Foreign(dir.to_path_buf()));
    }
    // Never through a link, never over anything that appeared meanwhile.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&marker)
        .map_err(io)?;
    f.write_all(b"This directory is managed by memos.\n")
        .map_err(io)
}

/// Opens the marker to lock it: not through a symlink, and only if it is
/// a regular file.
pub fn open_marker(dir: &Path) -> Result<fs::File, DirError> {
    let marker = dir.join(MARKER);
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&marker)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => DirError::BadMarker(marker.clone()),
            _ => DirError::Io {
                path: marker.clone(),
                source,
            },
        })?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        Ok(_) => Err(DirError::BadMarker(marker)),
        Err(source) => Err(DirError::Io {
            path: marker,
            source,
        }),
    }
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

    /// The error for a foreign entry at a memo's path.
    fn foreign(&self, name: &str) -> OpError {
        format!(
            "{} is a foreign file (not written by memos): refusing to replace it; remove it to let the memo be written",
            self.shown(name)
        )
        .into()
    }

    /// Writes `content` unless the file already holds it; returns whether
    /// it wrote. A name the app has not written is written only if it is
    /// free, and never over a file that appears meanwhile.
    fn write(&self, name: &str, content: &str) -> Result<bool, OpError> {
        self.checked(name)?;
        let ours = self.store.is_written(name)?;
        if !ours {
            match self.dir.symlink_metadata(name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Ok(_) => return Err(self.foreign(name)),
                Err(e) => return Err(format!("inspect {}: {e}", self.shown(name)).into()),
            }
            // Recorded before the file exists: a crash in between leaves a
            // record of a missing file (harmless), never an unrecorded file.
            self.store.set_written(name, true)?;
        } else if holds(&self.dir, name, content.as_bytes())? {
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
            if ours {
                // rename replaces a symlink itself, never its target.
                self.dir.rename(&tmp, &self.dir, name)
            } else {
                // A new file: a link fails if anything took the name since
                // we looked, where a rename would replace it.
                self.dir.hard_link(&tmp, &self.dir, name)?;
                self.dir.remove_file(&tmp)
            }
        })();
        if let Err(e) = result {
            let _ = self.dir.remove_file(&tmp);
            if !ours && e.kind() == io::ErrorKind::AlreadyExists {
                self.store.set_written(name, false)?;
                return Err(self.foreign(name));
            }
            return Err(format!("write {}: {e}", self.shown(name)).into());
        }
        Ok(true)
    }

    fn remove(&self, name: &str) -> Result<(), OpError> {
        self.checked(name)?;
        if !self.store.is_written(name)? {
            // Nothing of ours there: a foreign file at the name stays.
            if self.dir.symlink_metadata(name).is_ok() {
                tracing::warn!(name, path = %self.shown(name), "memo deleted; the foreign file at its path is kept");
            }
            return Ok(());
        }
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
            // A desired name that holds a foreign file is foreign too.
            if name == MARKER || name.starts_with(TEMP_PREFIX) || written.contains(name.as_ref()) {
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
